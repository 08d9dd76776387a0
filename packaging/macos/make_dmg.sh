#!/usr/bin/env bash
# Haven's macOS disk image: Haven.app and a link to /Applications, signed and notarized when the
# secrets for that are present, and with a clear message for each step skipped when they are not.
#
#   packaging/macos/make_dmg.sh dist/Haven.app dist/Haven-0.1.0-macos-arm64.dmg
#
# packaging/build.py --installer runs it after PyInstaller has built (and signed) the app.
#
# Signing:       HAVEN_CODESIGN_IDENTITY   "Developer ID Application: Name (TEAMID)", in the keychain
#                                          (packaging/macos/ci_signing_setup.sh imports it in CI)
# Notarization:  APPLE_API_KEY_PATH, APPLE_API_KEY_ID, APPLE_API_ISSUER   (App Store Connect API key), or
#                APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD              (an app-specific password)
set -euo pipefail

app=${1:?usage: make_dmg.sh Haven.app OUTPUT.dmg}
dmg=${2:?usage: make_dmg.sh Haven.app OUTPUT.dmg}
identity=${HAVEN_CODESIGN_IDENTITY:-}

say() { printf '[dmg] %s\n' "$*"; }

if [[ ! -x "$app/Contents/MacOS/haven" ]]; then
    say "$app is not a built Haven.app: run python packaging/build.py first"
    exit 1
fi

# 1. The app's signature: PyInstaller signed every binary (with the identity and the hardened runtime,
#    or ad hoc without one). An unsigned or broken signature stops here rather than at the user.
codesign --verify --deep --strict --verbose=2 "$app"
if [[ -z "$identity" ]]; then
    say "signing skipped: HAVEN_CODESIGN_IDENTITY is not set, so the app is signed ad hoc."
    say "It runs on this Mac; on others Gatekeeper refuses it until the user allows it in System Settings."
fi

# 2. The image: a compressed, read-only HFS+ image holding the app and a link to /Applications.
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ditto "$app" "$staging/Haven.app"  # ditto keeps the bundle's symbolic links and extended attributes
ln -s /Applications "$staging/Applications"
rm -f "$dmg"
hdiutil create -volname "Haven" -srcfolder "$staging" -fs HFS+ -format UDZO -imagekey zlib-level=9 "$dmg"

# 3. Sign the image itself.
if [[ -n "$identity" ]]; then
    codesign --sign "$identity" --timestamp "$dmg"
    codesign --verify --verbose=2 "$dmg"
else
    say "image signing skipped: no HAVEN_CODESIGN_IDENTITY."
fi

# 4. Notarize (Apple scans the image and everything in it), then staple the ticket to the image so
#    Gatekeeper accepts it offline.
notary_auth=()
if [[ -n "${APPLE_API_KEY_PATH:-}" && -n "${APPLE_API_KEY_ID:-}" && -n "${APPLE_API_ISSUER:-}" ]]; then
    notary_auth=(--key "$APPLE_API_KEY_PATH" --key-id "$APPLE_API_KEY_ID" --issuer "$APPLE_API_ISSUER")
elif [[ -n "${APPLE_ID:-}" && -n "${APPLE_TEAM_ID:-}" && -n "${APPLE_APP_PASSWORD:-}" ]]; then
    notary_auth=(--apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" --password "$APPLE_APP_PASSWORD")
fi

if [[ ${#notary_auth[@]} -eq 0 ]]; then
    say "notarization skipped: set APPLE_API_KEY_PATH, APPLE_API_KEY_ID and APPLE_API_ISSUER (or APPLE_ID,"
    say "APPLE_TEAM_ID and APPLE_APP_PASSWORD) to notarize."
elif [[ -z "$identity" ]]; then
    say "notarization skipped: Apple notarizes only Developer ID signed apps; set HAVEN_CODESIGN_IDENTITY."
else
    say "notarizing $dmg (this usually takes a few minutes)"
    result=$(xcrun notarytool submit "$dmg" "${notary_auth[@]}" --wait --output-format json)
    printf '%s\n' "$result"
    status=$(plutil -extract status raw -o - - <<<"$result")
    if [[ "$status" != "Accepted" ]]; then
        submission=$(plutil -extract id raw -o - - <<<"$result")
        say "notarization failed ($status); Apple's log follows"
        xcrun notarytool log "$submission" "${notary_auth[@]}" || true
        exit 1
    fi
    xcrun stapler staple "$dmg"
    xcrun stapler validate "$dmg"
    spctl --assess --type open --context context:primary-signature --verbose=2 "$dmg"
fi

say "made $dmg"
