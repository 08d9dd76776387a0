#!/usr/bin/env python3
"""How llama.cpp (through llama-cpp-python) is compiled for Haven: the CMake flags of each build, in one
place. Standard library only; `scripts/dev.py` imports it and the release workflow runs it.

    python3 scripts/llama_build.py dev                 # this machine's development build
    python3 scripts/llama_build.py release [--gpu vulkan|cuda|metal|none]

Why these flags (docs/install.md tells the longer story):

* Never ``GGML_NATIVE``. A native build is tuned to the CPU it was built on: a wheel or bundle copied to
  an older CPU dies with SIGILL, and on this project's Xeon machines it also switches on llama.cpp's AMX
  path, which faults (llama.cpp issue 20824). Every build names its instruction sets explicitly, so the
  same flags give the same library and the wheel cache can be keyed on them.
* ``GGML_BACKEND_DL`` always: the CPU code and each GPU backend are separate libraries that ggml loads at
  run time (``assistant.engine`` points it at them). A backend whose driver is missing (no Vulkan
  loader, no CUDA runtime) is skipped without a word, so one bundle serves machines with and without a
  GPU, and the CPU library is chosen by what the CPU can run.
* Releases add ``GGML_CPU_ALL_VARIANTS``: one CPU library per x86-64 level (SSE4.2 ... AVX-512, AMX) and
  ggml picks the best one the CPU supports at run time, so one bundle runs on any x86-64 CPU.
* Development builds compile only the variant for this CPU (instruction sets read from /proc/cpuinfo,
  AMX included where the CPU has it): a tenth of the build time, and the suite then exercises the same
  extra buffer types (AMX, weight repacking) that a release picks on this CPU, which the engine's
  self-test must prove safe (docs/core.md).
* ``LLAVA_BUILD=OFF``: Haven uses no vision model, and the multimodal library is a quarter of the build.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
from pathlib import Path

# Flags every build shares. CMAKE_INSTALL_BINDIR puts the run-time-loaded backends (libggml-cpu*.so,
# libggml-vulkan.so ...) next to libllama in the wheel's llama_cpp/lib, where the engine looks for them.
COMMON = ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DCMAKE_INSTALL_BINDIR=llama_cpp/lib", "-DLLAVA_BUILD=OFF")

# /proc/cpuinfo flag -> ggml's CMake option, in the order ggml's own CPU variants stack them.
X86_FEATURES = (
    ("sse4_2", "GGML_SSE42"),
    ("avx", "GGML_AVX"),
    ("f16c", "GGML_F16C"),
    ("fma", "GGML_FMA"),
    ("avx2", "GGML_AVX2"),
    ("bmi2", "GGML_BMI2"),
    ("avx_vnni", "GGML_AVX_VNNI"),
    ("avx512f", "GGML_AVX512"),
    ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx512_vnni", "GGML_AVX512_VNNI"),
    ("avx512_bf16", "GGML_AVX512_BF16"),
    ("amx_tile", "GGML_AMX_TILE"),
    ("amx_int8", "GGML_AMX_INT8"),
    ("amx_bf16", "GGML_AMX_BF16"),
)
# ggml's AVX512 option means F, CD, VL, DQ and BW together (its -mavx512* flags).
AVX512_PARTS = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")


def linux_cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def x86_feature_args(flags: set[str]) -> list[str]:
    """Explicit ON/OFF for every x86 option ggml has, from the CPU's flags."""
    args = []
    for flag, option in X86_FEATURES:
        present = flag in flags
        if option == "GGML_AVX512":
            present = all(part in flags for part in AVX512_PARTS)
        args.append(f"-D{option}={'ON' if present else 'OFF'}")
    return args


def dev_args(system: str | None = None, machine: str | None = None, cpuinfo: str | None = None) -> list[str]:
    """The development build for this machine."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if system == "Darwin":
        # Apple Silicon: llama-cpp-python switches Metal on itself; the CPU code is the arm64 baseline.
        return [*COMMON, "-DGGML_METAL=ON"]
    if system == "Linux" and machine in ("x86_64", "amd64"):
        if cpuinfo is None:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        return [*COMMON, *x86_feature_args(linux_cpu_flags(cpuinfo))]
    # Windows and other systems: the portable release set. Slower to build once, but correct anywhere
    # (reading CPU features there needs more than the standard library).
    return release_args("none", system=system, machine=machine)


def release_args(gpu: str, system: str | None = None, machine: str | None = None) -> list[str]:
    """A release build: every CPU variant (x86-64) or the arm64 baseline, plus the chosen GPU backend."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    args = list(COMMON)
    if machine in ("x86_64", "amd64"):
        args.append("-DGGML_CPU_ALL_VARIANTS=ON")
    if system == "Windows":
        # llama.cpp's own threads instead of OpenMP: no vcomp140.dll to ship (packaging/build.py checks
        # that the bundle carries every DLL it needs).
        args.append("-DGGML_OPENMP=OFF")
    if gpu == "vulkan":
        args.append("-DGGML_VULKAN=ON")
    elif gpu == "cuda":
        # Turing (20xx) to Blackwell; the CUDA runtime is a driver-side dependency, loaded only if present.
        args += ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=75-real;80-real;86-real;89-real;90-virtual"]
    elif gpu == "metal" or (gpu == "auto" and system == "Darwin"):
        args.append("-DGGML_METAL=ON")
    return args


def cache_key(version: str, sdist_sha256: str, args: list[str]) -> str:
    """The wheel cache folder's name: the version, then a digest of the exact source and flags."""
    digest = hashlib.sha256("\n".join([sdist_sha256, *args]).encode()).hexdigest()[:16]
    return f"{version}-{digest}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", choices=("dev", "release"))
    parser.add_argument("--gpu", choices=("none", "vulkan", "cuda", "metal", "auto"), default="auto")
    options = parser.parse_args()
    args = dev_args() if options.profile == "dev" else release_args(options.gpu)
    print(" ".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
