#!/usr/bin/env python3
"""What llama.cpp's native libraries in a bundle must look like; ``packaging/build.py`` runs it on every bundle.

    python packaging/native_libraries.py dist/Haven [--release] [--gpu vulkan|cuda|metal|none]
    python packaging/native_libraries.py --installed --release     # the llama_cpp/lib of this Python

Release builds load their CPU code at run time: ggml picks, from one ``libggml-cpu-<variant>.so``
(``ggml-cpu-<variant>.dll``) per x86-64 level, the best one the CPU runs, and loads each GPU backend whose
driver is present. A bundle that misses a variant, or whose baseline holds an instruction an old CPU lacks,
does not fail on the build machine: it dies with SIGILL on a user's computer. So this checks:

* the bundle carries the CPU variants of its platform (x86-64: x64, sse42, haswell, skylakex, icelake,
  alderlake, and sapphirerapids where not built by MSVC, which skips AMX), the GPU backend the build was
  asked for, and every CPU and GPU backend module the installed llama-cpp-python has (ggml loads them by
  name at run time, so PyInstaller's analysis never sees them);
* the libraries every CPU loads (libggml-base, libggml, libllama, the GPU backends, the x64 and sse42
  variants) hold no AVX or AVX-512 instruction, and the AVX2-level variants (sandybridge ... haswell,
  alderlake) no AVX-512 one: ``objdump -d`` (GNU binutils; on Windows the MinGW build the GitHub runners
  carry, or ``HAVEN_OBJDUMP``), read for zmm registers, opmasks and registers 16-31 (AVX-512), and for
  VEX-coded instructions and BMI (AVX, AVX2);
* no GPU driver library is bundled (the Vulkan loader, libcuda): the user's driver installs it, and a
  copy from the build machine would shadow it.

Two exceptions on Windows, both from MSVC: its C++ library links AVX2 code that it runs only after
checking the CPU (``std::find`` and friends), so VEX instructions are not counted there; and it keeps
switch tables inside the code section, which a disassembler decodes as instructions, so a few stray
"AVX-512" decodes are noted rather than failed. A library built for AVX-512 has thousands.

A development build (one ``libggml-cpu`` built for this CPU) has no variants to check: that is a note,
and only the libraries every CPU loads are read. Standard library only (build.py runs it with any Python).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

__all__ = [
    "Ceiling", "NativeCheckError", "check_bundle", "check_library_folder", "cpu_variants", "expected_variants",
    "find_objdump", "is_driver_library", "offending_instructions", "scan_library",
]

X86_64 = ("x86_64", "amd64")
# The variants every x86-64 release must carry; MSVC builds leave out AMX (sapphirerapids) and BF16.
REQUIRED_VARIANTS = frozenset({"x64", "sse42", "haswell", "skylakex", "icelake", "alderlake"})
NOT_MSVC_VARIANTS = frozenset({"sapphirerapids"})
# Libraries owned by the user's GPU driver: never bundled (haven.spec drops them, build.py's Windows DLL
# check counts them as the system's). Without the Vulkan loader ggml cannot load its Vulkan backend and
# uses the CPU without a word, which is what a computer without a Vulkan driver should get.
_DRIVER_LIBRARY = re.compile(
    r"^(libvulkan\.so(\.\d+)*|vulkan-1\.dll|libvulkan(\.\d+)*\.dylib|libmoltenvk\.dylib"
    r"|libcuda\.so(\.\d+)*|nvcuda\.dll)$", re.IGNORECASE)
_SUFFIX = r"(\.so(\.\d+)*|\.dll|(\.\d+)*\.dylib)"
_ALWAYS_LOADED = re.compile(rf"^(lib)?(ggml-base|ggml|llama){_SUFFIX}$", re.IGNORECASE)
_CPU_LIBRARY = re.compile(rf"^(lib)?ggml-cpu(-(?P<variant>[a-z0-9_.]+?))?{_SUFFIX}$", re.IGNORECASE)
_GPU_BACKEND = re.compile(rf"^(lib)?ggml-(?P<backend>vulkan|cuda|metal|hip|musa|sycl|opencl|blas|rpc|cann|webgpu)"
                          rf"{_SUFFIX}$", re.IGNORECASE)
_LIBRARY = re.compile(rf"^(lib)?(ggml|llama)[a-z0-9_.-]*{_SUFFIX}$", re.IGNORECASE)
# On Windows, more than this many AVX-512 decodes in a library are real code, not a misread switch table.
PE_STRAY_LIMIT = 16
WINDOWS_OBJDUMPS = (r"C:\mingw64\bin\objdump.exe", r"C:\msys64\mingw64\bin\objdump.exe",
                    r"C:\msys64\ucrt64\bin\objdump.exe", r"C:\msys64\usr\bin\objdump.exe",
                    r"C:\Strawberry\c\bin\objdump.exe")

# objdump's AT&T syntax, one instruction a line: "    1139:\tvmovups %zmm0,(%rax)".
_LINE = r"^[ \t]*(?P<address>[0-9a-f]+):[ \t]+(?P<instruction>"
_AVX512 = re.compile(_LINE + r"[^\n]*?(%zmm\d|%[xy]mm(1[6-9]|2\d|3[01])\b|%k[0-7]\b|\{1to\d+\})[^\n]*)$", re.MULTILINE)
_AVX = re.compile(_LINE + r"(\{vex\}[ \t]*)?(v[a-z0-9]+[ \t][^\n]*%[xy]mm[^\n]*|vzero(upper|all)\b[^\n]*"
                  r"|[a-z0-9]+[ \t][^\n]*%ymm[^\n]*"
                  r"|(andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx)[ \t][^\n]*))$", re.MULTILINE)


class NativeCheckError(Exception):
    """The bundle's native libraries would fail on some user's computer; the message lists why."""


class Ceiling(StrEnum):
    """The newest instructions a library may hold."""

    SSE = "SSE"  # runs on every x86-64 CPU: no AVX, AVX2, BMI or AVX-512
    AVX2 = "AVX2"  # Haswell-level at most: no AVX-512
    ANY = "any"


# Variants not listed may use anything (ggml loads them only on CPUs that score for them).
VARIANT_CEILINGS = {
    "x64": Ceiling.SSE, "sse42": Ceiling.SSE, "sandybridge": Ceiling.AVX2, "ivybridge": Ceiling.AVX2,
    "piledriver": Ceiling.AVX2, "haswell": Ceiling.AVX2, "alderlake": Ceiling.AVX2,
}


def is_driver_library(name: str) -> bool:
    """True for a library the user's GPU driver provides (``libvulkan.so.1``, ``vulkan-1.dll``, libcuda)."""
    return _DRIVER_LIBRARY.match(Path(name).name) is not None


def expected_variants(system: str) -> frozenset[str]:
    """The CPU variants an x86-64 release for ``system`` ("Linux", "Windows", ...) must carry."""
    return REQUIRED_VARIANTS if system == "Windows" else REQUIRED_VARIANTS | NOT_MSVC_VARIANTS


def cpu_variants(names: Iterable[str]) -> dict[str, str]:
    """Variant -> file name, for the ``ggml-cpu-<variant>`` libraries among ``names``."""
    found = {}
    for name in names:
        match = _CPU_LIBRARY.match(name)
        if match and match["variant"]:
            found[match["variant"].lower()] = name
    return found


def find_objdump() -> str | None:
    """``HAVEN_OBJDUMP``, else objdump on the PATH, else a MinGW or MSYS2 one where GitHub's images keep it."""
    configured = os.environ.get("HAVEN_OBJDUMP")
    if configured:
        return configured
    return shutil.which("objdump") or next((p for p in WINDOWS_OBJDUMPS if Path(p).is_file()), None)


def _patterns(ceiling: Ceiling, *, pe: bool) -> list[tuple[str, re.Pattern[str]]]:
    checks = [] if ceiling is Ceiling.ANY else [("AVX-512", _AVX512)]
    if ceiling is Ceiling.SSE and not pe:
        checks.append(("AVX/AVX2", _AVX))
    return checks


def _tally(text: str, checks: list[tuple[str, re.Pattern[str]]], found: dict[str, tuple[int, str]]) -> None:
    for kind, pattern in checks:
        matches = pattern.finditer(text)
        first = next(matches, None)
        if first is not None:
            count, earlier = found.get(kind, (0, ""))
            instruction = f"0x{first['address']}: {' '.join(first['instruction'].split())}"
            found[kind] = (count + 1 + sum(1 for _ in matches), earlier or instruction)


def _verdict(found: dict[str, tuple[int, str]]) -> tuple[str, int, str] | None:
    for kind in ("AVX-512", "AVX/AVX2"):
        if kind in found:
            return (kind, *found[kind])
    return None


def offending_instructions(disassembly: str, ceiling: Ceiling, *, pe: bool) -> tuple[str, int, str] | None:
    """What in ``disassembly`` (objdump -d output) breaks ``ceiling``: (kind, count, first instruction)."""
    found: dict[str, tuple[int, str]] = {}
    _tally(disassembly, _patterns(ceiling, pe=pe), found)
    return _verdict(found)


def scan_library(objdump: str, path: Path, ceiling: Ceiling) -> tuple[str, int, str] | None:
    """:func:`offending_instructions` for a library, reading objdump's output in pieces (a CUDA backend's
    disassembly runs to gigabytes)."""
    checks = _patterns(ceiling, pe=path.suffix.lower() == ".dll")
    found: dict[str, tuple[int, str]] = {}
    command = [objdump, "-d", "--no-show-raw-insn", str(path)]
    with tempfile.TemporaryFile() as errors, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, encoding="utf-8", errors="replace") as process:
        assert process.stdout is not None
        piece: list[str] = []
        for line in process.stdout:
            piece.append(line)
            if len(piece) >= 100_000:
                _tally("".join(piece), checks, found)
                piece = []
        _tally("".join(piece), checks, found)
        if process.wait() != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()[:400]
            raise NativeCheckError(f"{objdump} could not read {path.name}: {message}")
    return _verdict(found)


def _check_instructions(objdump: str, path: Path, ceiling: Ceiling, notes: list[str]) -> str | None:
    found = scan_library(objdump, path, ceiling)
    if found is None:
        return None
    kind, count, first = found
    if path.suffix.lower() == ".dll" and kind == "AVX-512" and count <= PE_STRAY_LIMIT:
        notes.append(f"{path.name}: {count} isolated AVX-512-looking decode(s), taken for a switch table in "
                     f"the code section (first {first})")
        return None
    allowed = "any x86-64 CPU" if ceiling is Ceiling.SSE else "CPUs without AVX-512"
    return (f"{path.name} must run on {allowed} but holds {count} {kind} instruction(s), the first at {first}: "
            "was llama.cpp built with GGML_NATIVE or -march flags? Build with `HAVEN_LLAMA_BUILD=release`.")


def _distinct_libraries(lib: Path) -> dict[str, Path]:
    """Name -> path of llama.cpp's libraries in ``lib`` that are files, not links; identical copies of one
    library (``libllama.so`` and ``libllama.so.0`` in a wheel) once, by the shortest name."""
    copies: dict[tuple[str, str], Path] = {}
    for path in sorted(lib.iterdir(), key=lambda p: (len(p.name), p.name)):
        if path.is_file() and not path.is_symlink() and _LIBRARY.match(path.name):
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            copies.setdefault((re.sub(f"{_SUFFIX}$", "", path.name.lower()), digest), path)
    return {path.name: path for path in copies.values()}


def _wanted_gpu(gpu: str | None, system: str) -> str | None:
    if gpu == "auto":
        return "metal" if system == "Darwin" else None
    return gpu if gpu in ("vulkan", "cuda", "metal") else None


def check_library_folder(lib: Path, *, system: str, machine: str, release: bool, gpu: str | None = None,
                         objdump: str | None = None, source: Path | None = None) -> list[str]:
    """Check llama.cpp's library folder; return notes, or raise NativeCheckError listing every problem."""
    if not lib.is_dir():
        raise NativeCheckError(f"{lib} does not exist: is packaging/hooks/hook-llama_cpp.py in use?")
    names = {path.name for path in lib.iterdir()}
    notes: list[str] = []
    problems = _presence_problems(lib, names, gpu=_wanted_gpu(gpu, system), source=source)
    if machine.lower() not in X86_64:
        notes.append(f"{machine}: the x86-64 CPU variant and instruction checks do not apply")
        return _finish(notes, problems)
    variants = cpu_variants(names)
    if variants:
        missing = sorted(expected_variants(system) - variants.keys())
        if missing:
            problems.append(f"{lib} lacks the CPU variant(s) {', '.join(missing)} (it has "
                            f"{', '.join(sorted(variants))}): was llama.cpp built with GGML_CPU_ALL_VARIANTS?")
    elif release:
        problems.append(f"{lib} has no CPU variants (ggml-cpu-<variant>): a release needs GGML_CPU_ALL_VARIANTS "
                        "and GGML_BACKEND_DL (`HAVEN_LLAMA_BUILD=release`)")
    else:
        notes.append("development build: one CPU library for this CPU, no variants to check; reading only the "
                     "libraries every CPU loads")
    targets = _instruction_targets(lib, variants)
    if objdump is None:
        message = "objdump (GNU binutils) was not found, so the instructions were not checked; set HAVEN_OBJDUMP"
        (problems if release or variants else notes).append(message)
        return _finish(notes, problems)
    for path, ceiling in targets:
        problem = _check_instructions(objdump, path, ceiling, notes)
        if problem:
            problems.append(problem)
    notes.append(f"read {len(targets)} libraries with {objdump} for instructions beyond their CPU level: "
                 f"{', '.join(path.name for path, _ in targets)}")
    return _finish(notes, problems)


def _presence_problems(lib: Path, names: set[str], *, gpu: str | None, source: Path | None) -> list[str]:
    """The run-time-loaded modules of ``source`` (the installed package) and the GPU backend asked for."""
    uncollected = sorted(_backend_modules(source) - names) if source else []
    problems = [f"{name} is in {source} but not in the bundle: ggml loads it by name at run time, so the "
                "llama_cpp hook must collect it" for name in uncollected]
    backends = {match["backend"].lower() for match in map(_GPU_BACKEND.match, names) if match}
    if gpu and gpu not in backends:
        problems.append(f"the build was asked for the {gpu} backend, but {lib} has no ggml-{gpu} library")
    return problems


def _instruction_targets(lib: Path, variants: dict[str, str]) -> list[tuple[Path, Ceiling]]:
    """The libraries to read, each with its ceiling: those every CPU loads, and the capped variants."""
    distinct = _distinct_libraries(lib)
    targets = {name: Ceiling.SSE for name in distinct if _ALWAYS_LOADED.match(name) or _GPU_BACKEND.match(name)}
    for variant, name in variants.items():
        if name in distinct:
            targets[name] = VARIANT_CEILINGS.get(variant, Ceiling.ANY)
    return [(distinct[name], ceiling) for name, ceiling in sorted(targets.items()) if ceiling is not Ceiling.ANY]


def _backend_modules(folder: Path) -> set[str]:
    """The libraries ggml loads by name at run time (CPU variants, GPU backends), which no import names."""
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if _CPU_LIBRARY.match(p.name) or _GPU_BACKEND.match(p.name)}


def _finish(notes: list[str], problems: list[str]) -> list[str]:
    if problems:
        raise NativeCheckError("\n".join(problems))
    return notes


def check_bundle(bundle: Path, *, release: bool, gpu: str | None = None, source: Path | None = None,
                 system: str | None = None, machine: str | None = None, objdump: str | None = None) -> list[str]:
    """Check a frozen bundle (``dist/Haven``): no driver library anywhere, and its llama.cpp libraries."""
    drivers = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if is_driver_library(p.name))
    if drivers:
        raise NativeCheckError(f"The bundle carries GPU driver libraries ({', '.join(drivers)}): the user's driver "
                               "provides them, and a bundled copy would shadow it. haven.spec drops them; was it "
                               "bypassed?")
    return check_library_folder(bundle / "_internal" / "llama_cpp" / "lib", system=system or platform.system(),
                                machine=machine or platform.machine(), release=release, gpu=gpu,
                                objdump=objdump or find_objdump(), source=source)


def installed_library_folder() -> Path | None:
    """``llama_cpp/lib`` of the llama-cpp-python installed in this Python (found without importing it)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "lib"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("path", nargs="?", type=Path, help="a bundle (dist/Haven) or a llama_cpp/lib folder")
    where.add_argument("--installed", action="store_true", help="the llama_cpp/lib of the Python running this")
    parser.add_argument("--release", action="store_true", help="a release: CPU variants and objdump required")
    parser.add_argument("--gpu", choices=("none", "vulkan", "cuda", "metal", "auto"), help="the GPU backend built")
    args = parser.parse_args(argv)
    path = installed_library_folder() if args.installed else args.path
    if path is None:
        print("[native-libraries] llama-cpp-python is not installed in this Python", file=sys.stderr)
        return 1
    try:
        if (path / "_internal").is_dir():
            notes = check_bundle(path, release=args.release, gpu=args.gpu)
        else:
            notes = check_library_folder(path, system=platform.system(), machine=platform.machine(),
                                         release=args.release, gpu=args.gpu, objdump=find_objdump())
    except NativeCheckError as exc:
        print(f"[native-libraries] failed:\n{exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"[native-libraries] {note}")
    print(f"[native-libraries] {path}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
