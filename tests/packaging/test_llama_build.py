"""The llama.cpp build flags (scripts/llama_build.py) and the wheel cache that scripts/dev.py keys on them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

# /proc/cpuinfo "flags" lines, cut to what matters: a Xeon with AMX (this project's machines), a laptop
# with AVX2 only, and an old CPU with SSE4.2 only.
XEON_AMX = ("flags : fpu sse4_2 avx f16c fma avx2 bmi2 avx_vnni avx512f avx512cd avx512vl avx512dq avx512bw "
            "avx512vbmi avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n")
LAPTOP_AVX2 = "flags : fpu sse4_2 avx f16c fma avx2 bmi2\n"
OLD_SSE42 = "flags : fpu sse4_2\n"


def load_script(name: str) -> ModuleType:
    scripts = str(ROOT / "scripts")
    sys.path.insert(0, scripts)  # dev.py imports llama_build as its sibling, as when run as a script
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(scripts)


@pytest.fixture(scope="module")
def llama_build() -> ModuleType:
    return load_script("llama_build")


def options(args: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("-D").split("=", 1) for a in args)


def test_no_build_is_native_and_every_build_loads_its_backends_at_run_time(llama_build: ModuleType) -> None:
    builds = (llama_build.dev_args("Linux", "x86_64", XEON_AMX), llama_build.dev_args("Darwin", "arm64"),
              llama_build.release_args("vulkan", "Windows", "AMD64"),
              llama_build.release_args("metal", "Darwin", "arm64"))
    for args in builds:
        flags = options(args)
        assert flags["GGML_NATIVE"] == "OFF"
        assert flags["GGML_BACKEND_DL"] == "ON"
        assert flags["CMAKE_INSTALL_BINDIR"] == "llama_cpp/lib"


def test_a_dev_build_names_exactly_the_instruction_sets_of_this_cpu(llama_build: ModuleType) -> None:
    xeon = options(llama_build.dev_args("Linux", "x86_64", XEON_AMX))
    assert all(xeon[o] == "ON" for o in ("GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AMX_INT8"))
    laptop = options(llama_build.dev_args("Linux", "x86_64", LAPTOP_AVX2))
    assert laptop["GGML_AVX2"] == "ON" and laptop["GGML_FMA"] == "ON"
    assert all(laptop[o] == "OFF" for o in ("GGML_AVX512", "GGML_AVX_VNNI", "GGML_AMX_TILE", "GGML_AMX_INT8"))
    old = options(llama_build.dev_args("Linux", "x86_64", OLD_SSE42))
    assert old["GGML_SSE42"] == "ON" and old["GGML_AVX"] == "OFF" and old["GGML_AVX2"] == "OFF"
    # AVX-512 in ggml's sense needs all five parts: a CPU with F alone gets no AVX512 code.
    partial = options(llama_build.dev_args("Linux", "x86_64", LAPTOP_AVX2.rstrip() + " avx512f\n"))
    assert partial["GGML_AVX512"] == "OFF"


def test_a_release_build_carries_every_cpu_variant_and_the_chosen_gpu(llama_build: ModuleType) -> None:
    linux = options(llama_build.release_args("vulkan", "Linux", "x86_64"))
    assert linux["GGML_CPU_ALL_VARIANTS"] == "ON" and linux["GGML_VULKAN"] == "ON"
    assert not any(k.startswith(("GGML_AVX", "GGML_AMX")) for k in linux)  # the variants choose, not the flags
    cuda = options(llama_build.release_args("cuda", "Windows", "AMD64"))
    assert cuda["GGML_CUDA"] == "ON" and cuda["GGML_OPENMP"] == "OFF" and "GGML_VULKAN" not in cuda
    mac = options(llama_build.release_args("auto", "Darwin", "arm64"))
    assert mac["GGML_METAL"] == "ON" and "GGML_CPU_ALL_VARIANTS" not in mac


def test_the_wheel_cache_folder_changes_with_any_flag_or_source(llama_build: ModuleType) -> None:
    xeon = llama_build.dev_args("Linux", "x86_64", XEON_AMX)
    laptop = llama_build.dev_args("Linux", "x86_64", LAPTOP_AVX2)
    key = llama_build.cache_key("0.3.36", "a" * 64, xeon)
    assert key.startswith("0.3.36-")
    assert key == llama_build.cache_key("0.3.36", "a" * 64, list(xeon))
    assert key != llama_build.cache_key("0.3.36", "a" * 64, laptop)
    assert key != llama_build.cache_key("0.3.36", "b" * 64, xeon)


def test_dev_py_keys_its_wheel_folder_on_the_locked_sdist_and_the_flags(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    dev = load_script("dev")
    monkeypatch.setenv("HAVEN_WHEEL_CACHE", str(tmp_path))
    monkeypatch.delenv("HAVEN_LLAMA_BUILD", raising=False)
    version, sdist = dev.locked_llama()
    assert len(sdist) == 64
    dev_folder = dev.llama_wheel_folder()
    assert dev_folder.parent == tmp_path and dev_folder.name.startswith(version + "-")
    monkeypatch.setenv("HAVEN_LLAMA_BUILD", "release")
    monkeypatch.setenv("HAVEN_LLAMA_GPU", "vulkan")
    release_folder = dev.llama_wheel_folder()
    assert release_folder != dev_folder
    assert "-DGGML_CPU_ALL_VARIANTS=ON" in dev.llama_flags()


def test_every_lock_pins_every_package_by_hash() -> None:
    for lock in sorted((ROOT / "requirements").glob("*.txt")):
        text = lock.read_text(encoding="utf-8")
        requirements = [line for line in text.splitlines()
                        if line and not line[0].isspace() and not line.startswith("#")]
        assert requirements, lock
        for line in requirements:
            assert "==" in line, f"{lock.name}: {line} is not pinned"
        assert text.count("--hash=sha256:") >= len(requirements), lock.name
    dev_lock = (ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8")
    # Every third-party package the code imports is declared and locked (httpx2 was once only a dependency's).
    for package in ("httpx2", "filelock", "huggingface-hub", "pyside6-essentials", "pytest-qt", "pyyaml", "jinja2"):
        assert f"\n{package}==" in dev_lock, package
    assert "\nllama-cpp-python==" not in dev_lock  # built from its own hash-pinned sdist (requirements/llama.txt)
