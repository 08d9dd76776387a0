"""packaging/native_libraries.py on real machine code: tiny libraries compiled here with gcc, named like
llama.cpp's, one with AVX-512 code (zmm registers), one with AVX2, one for any x86-64 CPU. Needs gcc and
objdump on x86-64 Linux (the CI and developer machines); a few seconds."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
         and shutil.which("gcc") and shutil.which("objdump")),
    reason="compiles x86-64 code with gcc and reads it with objdump (x86-64 Linux with gcc and binutils)")

# A loop the compiler vectorises with the widest registers it is allowed.
SOURCE = "void scale(float *restrict x, const float *restrict y, int n) { for (int i = 0; i < n; i++) " \
         "x[i] = x[i] * 2.0f + y[i]; }\n"
FLAGS = {
    "baseline": ["-O2", "-mno-avx"],
    "avx2": ["-O3", "-mavx2", "-mfma"],
    "avx512": ["-O3", "-mavx512f", "-mprefer-vector-width=512"],
}
# A release for Linux: every variant llama.cpp builds there, each compiled to its level's ceiling or above.
RELEASE_LAYOUT = {
    "libggml-base.so.0": "baseline", "libggml.so.0": "baseline", "libllama.so.0": "baseline",
    "libggml-cpu-x64.so": "baseline", "libggml-cpu-sse42.so": "baseline", "libggml-cpu-sandybridge.so": "avx2",
    "libggml-cpu-haswell.so": "avx2", "libggml-cpu-alderlake.so": "avx2", "libggml-cpu-skylakex.so": "avx512",
    "libggml-cpu-icelake.so": "avx512", "libggml-cpu-zen4.so": "avx512", "libggml-cpu-sapphirerapids.so": "avx512",
    "libggml-vulkan.so": "baseline",
}


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("native_libraries", ROOT / "packaging" / "native_libraries.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["native_libraries"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One shared library per instruction level."""
    folder = tmp_path_factory.mktemp("compiled")
    (folder / "scale.c").write_text(SOURCE)
    built = {}
    for level, flags in FLAGS.items():
        target = folder / f"{level}.so"
        subprocess.run(["gcc", "-shared", "-fPIC", *flags, str(folder / "scale.c"), "-o", str(target)], check=True)
        built[level] = target
    return built


@pytest.fixture
def make_lib(tmp_path: Path, compiled: dict[str, Path]) -> Callable[..., Path]:
    """A llama_cpp/lib folder: RELEASE_LAYOUT, with ``changes`` (name -> level, or None to leave it out)."""
    made = []

    def make(changes: dict[str, str | None] | None = None, base: dict[str, str] | None = None) -> Path:
        lib = tmp_path / f"bundle{len(made)}" / "Haven" / "_internal" / "llama_cpp" / "lib"
        lib.mkdir(parents=True)
        made.append(lib)
        layout: dict[str, str | None] = {**(RELEASE_LAYOUT if base is None else base), **(changes or {})}
        for name, level in layout.items():
            if level is not None:
                shutil.copyfile(compiled[level], lib / name)
        return lib
    return make


def check(checker: ModuleType, lib: Path, *, release: bool = True, **options: object) -> list[str]:
    settings = {"system": "Linux", "machine": "x86_64", "gpu": None, "objdump": "objdump", **options}
    return checker.check_library_folder(lib, release=release, **settings)


def test_the_compiled_libraries_hold_what_their_flags_allow(checker: ModuleType,
                                                           compiled: dict[str, Path]) -> None:
    """The stand-ins are what the other tests take them for (if gcc stops using zmm, these tests prove nothing)."""
    scan = checker.scan_library
    assert scan("objdump", compiled["avx512"], checker.Ceiling.AVX2)[0] == "AVX-512"
    assert "zmm" in scan("objdump", compiled["avx512"], checker.Ceiling.AVX2)[2]
    assert scan("objdump", compiled["avx2"], checker.Ceiling.AVX2) is None
    assert scan("objdump", compiled["avx2"], checker.Ceiling.SSE)[0] == "AVX/AVX2"
    assert scan("objdump", compiled["baseline"], checker.Ceiling.SSE) is None


def test_a_release_layout_passes(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    notes = check(checker, make_lib(), gpu="vulkan")
    read = next(note for note in notes if note.startswith("read "))
    # The capped libraries were read (x64, sse42, sandybridge, haswell, alderlake, the three always loaded
    # and the Vulkan backend), the AVX-512 variants not.
    assert "libggml-cpu-x64.so" in read and "libllama.so.0" in read and "libggml-cpu-haswell.so" in read
    assert "skylakex" not in read


def test_avx512_in_the_x64_baseline_is_refused_naming_the_file_and_instruction(
        checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError) as caught:
        check(checker, make_lib({"libggml-cpu-x64.so": "avx512"}))
    message = str(caught.value)
    assert "libggml-cpu-x64.so must run on any x86-64 CPU" in message
    assert "AVX-512" in message and "%zmm" in message


def test_avx2_in_the_x64_baseline_is_refused(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError, match=r"libggml-cpu-x64\.so .* AVX/AVX2 .*%ymm"):
        check(checker, make_lib({"libggml-cpu-x64.so": "avx2"}))


@pytest.mark.parametrize("name", ["libllama.so.0", "libggml-base.so.0", "libggml-vulkan.so", "libggml-cpu-haswell.so",
                                  "libggml-cpu-alderlake.so"])
def test_avx512_where_cpus_without_it_load_the_library_is_refused(
        checker: ModuleType, make_lib: Callable[..., Path], name: str) -> None:
    with pytest.raises(checker.NativeCheckError, match=rf"{name.replace('.', '[.]')} must run on .*AVX-512"):
        check(checker, make_lib({name: "avx512"}))


def test_a_missing_variant_is_refused(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError, match=r"lacks the CPU variant\(s\) icelake, sapphirerapids"):
        check(checker, make_lib({"libggml-cpu-icelake.so": None, "libggml-cpu-sapphirerapids.so": None}))


def test_msvc_builds_need_no_amx_variant(checker: ModuleType) -> None:
    assert "sapphirerapids" in checker.expected_variants("Linux")
    assert "sapphirerapids" not in checker.expected_variants("Windows")
    assert {"x64", "sse42", "haswell", "skylakex", "icelake", "alderlake"} <= checker.expected_variants("Windows")


def test_every_problem_is_reported_at_once(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError) as caught:
        check(checker, make_lib({"libggml-cpu-haswell.so": None, "libllama.so.0": "avx512"}), gpu="cuda")
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert "haswell" in lines[1] and "cuda backend" in lines[0] and "libllama.so.0" in lines[2]


DEV_LAYOUT = {"libggml-base.so.0": "baseline", "libggml.so.0": "baseline", "libllama.so.0": "baseline",
              "libggml-cpu.so": "avx512"}


def test_a_development_build_has_no_variants_to_check_but_its_shared_libraries_are_read(
        checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    # The one CPU library is built for this CPU (AVX-512 here): fine for a development build.
    notes = check(checker, make_lib(base=DEV_LAYOUT), release=False)
    assert any(note.startswith("development build") for note in notes)
    assert any("libllama.so.0" in note and "libggml-cpu.so" not in note for note in notes if note.startswith("read"))


def test_a_development_build_still_may_not_put_avx512_in_what_every_cpu_loads(
        checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError, match=r"libggml-base\.so\.0 must run on any x86-64 CPU"):
        check(checker, make_lib({"libggml-base.so.0": "avx512"}, base=DEV_LAYOUT), release=False)


def test_a_release_without_variants_is_refused(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError, match="no CPU variants"):
        check(checker, make_lib(base=DEV_LAYOUT))


def test_a_release_needs_objdump_and_a_development_build_notes_its_absence(
        checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError, match="objdump"):
        check(checker, make_lib(), objdump=None)
    notes = check(checker, make_lib(base=DEV_LAYOUT), release=False, objdump=None)
    assert any("objdump" in note for note in notes)


def test_identical_copies_are_read_once(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    lib = make_lib({"libllama.so": "baseline"})
    read = next(note for note in check(checker, lib) if note.startswith("read "))
    names = read.partition(": ")[2].split(", ")
    assert "libllama.so" in names and "libllama.so.0" not in names
    assert len(names) == 9  # the x64, sse42 and always-loaded copies of one file are separate libraries


def test_a_backend_the_installed_package_has_must_be_in_the_bundle(
        checker: ModuleType, make_lib: Callable[..., Path], tmp_path: Path, compiled: dict[str, Path]) -> None:
    source = tmp_path / "site-packages" / "llama_cpp" / "lib"
    source.mkdir(parents=True)
    for name in ("libggml-cpu-x64.so", "libggml-vulkan.so", "libggml-rpc.so", "libllama.so.0", "libllama.so"):
        shutil.copyfile(compiled["baseline"], source / name)
    # libllama.so.0 is linked, not loaded by name: it may be missing; the rpc backend may not.
    lib = make_lib({"libllama.so": None})
    with pytest.raises(checker.NativeCheckError) as caught:
        check(checker, lib, source=source)
    assert str(caught.value).startswith("libggml-rpc.so is in") and len(str(caught.value).splitlines()) == 1


def test_the_gpu_backend_asked_for_must_be_there(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    with pytest.raises(checker.NativeCheckError, match="asked for the vulkan backend"):
        check(checker, make_lib({"libggml-vulkan.so": None}), gpu="vulkan")
    check(checker, make_lib({"libggml-vulkan.so": None}), gpu="none")


def test_arm64_needs_no_x86_checks(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    notes = check(checker, make_lib(base={"libggml-cpu.so": "avx512", "libggml-metal.so": "baseline"}),
                  system="Darwin", machine="arm64", gpu="auto")
    assert notes == ["arm64: the x86-64 CPU variant and instruction checks do not apply"]


@pytest.mark.parametrize(("name", "driver"), [
    ("libvulkan.so.1", True), ("vulkan-1.dll", True), ("VULKAN-1.DLL", True), ("libcuda.so.1", True),
    ("nvcuda.dll", True), ("_internal/libvulkan.so.1", True),
    ("libggml-vulkan.so", False), ("ggml-vulkan.dll", False), ("cudart64_12.dll", False),
    ("libcublas.so.12", False), ("libcudart.so.12", False),
])
def test_driver_libraries_are_told_apart_from_what_the_bundle_carries(
        checker: ModuleType, name: str, driver: bool) -> None:
    assert checker.is_driver_library(name) is driver


def test_a_bundled_vulkan_loader_is_refused(checker: ModuleType, make_lib: Callable[..., Path]) -> None:
    lib = make_lib()
    bundle = lib.parents[2]
    (bundle / "_internal" / "libvulkan.so.1").write_bytes(b"loader")
    with pytest.raises(checker.NativeCheckError, match=r"GPU driver libraries \(_internal/libvulkan\.so\.1\)"):
        checker.check_bundle(bundle, release=True, system="Linux", machine="x86_64", objdump="objdump")
    (bundle / "_internal" / "libvulkan.so.1").unlink()
    assert checker.check_bundle(bundle, release=True, system="Linux", machine="x86_64", objdump="objdump")


ZMM_DECODE = "   1a2b:\tvpaddd %zmm3,%zmm2,%zmm1\n"


def test_on_windows_a_few_avx512_decodes_are_switch_tables_and_many_are_code(
        checker: ModuleType, tmp_path: Path, make_lib: Callable[..., Path]) -> None:
    """MSVC keeps jump tables in .text; objdump decodes them as instructions. The verdict, not objdump, is
    tested here (no PE files on this machine): a few stray decodes pass with a note, a real build does not."""
    lib = make_lib()
    (tmp_path / "few.txt").write_text(ZMM_DECODE * 3)
    (tmp_path / "many.txt").write_text(ZMM_DECODE * 40)
    fake = tmp_path / "fake-objdump"
    fake.write_text(f'#!/bin/sh\ncase "$3" in *llama.dll) cat {tmp_path}/few.txt;;\n'
                    f'*ggml.dll) cat {tmp_path}/many.txt;; esac\n')
    fake.chmod(0o755)
    (lib / "llama.dll").write_bytes(b"pe")
    notes = check(checker, lib, objdump=str(fake))
    assert any(note.startswith("llama.dll: 3 isolated AVX-512-looking decode(s)") for note in notes)
    (lib / "ggml.dll").write_bytes(b"pe too")
    with pytest.raises(checker.NativeCheckError, match=r"ggml\.dll must run on any x86-64 CPU but holds 40 AVX"):
        check(checker, lib, objdump=str(fake))


def test_vex_code_counts_on_linux_but_not_in_a_windows_dll(checker: ModuleType) -> None:
    """MSVC's C++ library links AVX2 code behind a CPU check into every DLL that uses std::find."""
    text = "    10:\tvmovdqu (%rcx),%ymm0\n    14:\tvpcmpeqb %ymm1,%ymm0,%ymm0\n"
    assert checker.offending_instructions(text, checker.Ceiling.SSE, pe=False) == (
        "AVX/AVX2", 2, "0x10: vmovdqu (%rcx),%ymm0")
    assert checker.offending_instructions(text, checker.Ceiling.SSE, pe=True) is None
    for line in ("20:\tshlx %eax,%ebx,%ecx", "24:\tvaddss %xmm1,%xmm2,%xmm3", "28:\tvzeroupper"):
        assert checker.offending_instructions(f"  {line}\n", checker.Ceiling.SSE, pe=False)[0] == "AVX/AVX2"
    for line in ("30:\tkmovw %k1,%eax", "34:\tvaddps %xmm17,%xmm1,%xmm1", "38:\tvaddps (%rax){1to4},%xmm1,%xmm1"):
        assert checker.offending_instructions(f"  {line}\n", checker.Ceiling.AVX2, pe=True)[0] == "AVX-512"
    plain = "  40:\tmovups (%rdi),%xmm0\n  44:\ttzcnt %eax,%eax\n  48:\tcall 1a0 <vaddps_wrapper@plt>\n"
    assert checker.offending_instructions(plain, checker.Ceiling.SSE, pe=False) is None


def test_pyinstaller_collects_the_run_time_loaded_modules_by_its_default_patterns() -> None:
    """The hook relies on collect_dynamic_libs' patterns catching ggml's MODULE libraries on all systems."""
    from fnmatch import fnmatch

    from PyInstaller.utils.hooks import PY_DYLIB_PATTERNS

    for name in ("libggml-cpu-x64.so", "libggml-cpu-sapphirerapids.so", "libggml-vulkan.so", "libggml-metal.so",
                 "ggml-cpu-x64.dll", "ggml-vulkan.dll", "ggml-cuda.dll", "libggml-cuda.so", "libllama.dylib"):
        assert any(fnmatch(name, pattern) for pattern in PY_DYLIB_PATTERNS), name


def test_the_command_line_reports_failure_with_exit_status_one(
        checker: ModuleType, make_lib: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    lib = make_lib({"libggml-cpu-x64.so": "avx512"})
    assert checker.main([str(lib), "--release"]) == 1
    assert "libggml-cpu-x64.so must run on any x86-64 CPU" in capsys.readouterr().err
