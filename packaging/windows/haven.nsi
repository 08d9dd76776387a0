; Haven's Windows installer (NSIS 3, zlib licence: free for any use, commercial included).
;
; Built by `python packaging/build.py --installer` on Windows, which passes:
;   /DVERSION=0.1.0  /DSOURCE_DIR=<dist\Haven>  /DOUTPUT=<dist\Haven-0.1.0-windows-x86_64-setup.exe>
;   /DICON=<packaging\icons\haven.ico>
;
; * Per user: no administrator rights; Haven goes to %LOCALAPPDATA%\Programs\Haven, its Start-menu
;   shortcut and its "Apps & features" entry belong to the current user only.
; * Updating: run a newer installer; it replaces the program files and keeps everything else.
; * Uninstalling keeps the user's conversations, settings and models (in %LOCALAPPDATA%\Haven, where
;   platformdirs puts them) unless the user says yes to deleting them, or passes /PURGE to a silent
;   uninstall (uninstall.exe /S /PURGE).

Unicode true
ManifestDPIAware true
SetCompressor /SOLID lzma

!ifndef VERSION
  !define VERSION "0.0.0"
!endif
!ifndef SOURCE_DIR
  !error "Pass /DSOURCE_DIR=<folder holding haven.exe> (packaging/build.py does)"
!endif
!ifndef OUTPUT
  !define OUTPUT "Haven-${VERSION}-setup.exe"
!endif

!define APP "Haven"
!define PUBLISHER "Haven contributors"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP}"
!define USER_DATA "$LOCALAPPDATA\${APP}"

!include "MUI2.nsh"
!include "FileFunc.nsh"

Name "${APP}"
OutFile "${OUTPUT}"
RequestExecutionLevel user
InstallDir "$LOCALAPPDATA\Programs\${APP}"
InstallDirRegKey HKCU "Software\${APP}" "InstallDir"
BrandingText "${APP} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP} installer"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "${PUBLISHER}, Apache-2.0"

!ifdef ICON
  !define MUI_ICON "${ICON}"
  !define MUI_UNICON "${ICON}"
!endif
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\haven.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP}"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "Haven" SecMain
  SetShellVarContext current
  SetOutPath "$INSTDIR"
  ; An update: the previous version's support files go first, so none of them lingers next to the new
  ; ones. The user's data is not here (it is in ${USER_DATA}).
  RMDir /r "$INSTDIR\_internal"
  File /r "${SOURCE_DIR}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\haven.exe" "" "$INSTDIR\haven.exe" 0

  WriteRegStr HKCU "Software\${APP}" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\haven.exe"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"
SectionEnd

Section "Uninstall"
  SetShellVarContext current
  Delete "$SMPROGRAMS\${APP}.lnk"
  ; Only what the installer put there: the folder may be one the user chose and shares with other files.
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\haven.exe"
  Delete "$INSTDIR\haven-cli.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "Software\${APP}"

  ; The user's conversations, settings and models stay unless asked for (default: keep).
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/PURGE" $R1
  IfErrors 0 purge
  MessageBox MB_YESNO|MB_ICONQUESTION|MB_DEFBUTTON2 \
    "Also delete your Haven conversations, settings and downloaded models?$\r$\n$\r$\n${USER_DATA}$\r$\n$\r$\nChoose No to keep them for a later install." \
    /SD IDNO IDYES purge
  Goto done
  purge:
    RMDir /r "${USER_DATA}"
  done:
SectionEnd
