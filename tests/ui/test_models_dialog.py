"""The model manager with real clicks: download from a local hub server, pause, resume, import, default."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from assistant.models.download import DownloadState
from tests.gguf_writer import write_gguf
from tests.hub_server import FakeHub

REPO, FILE = "QuantFactory/Llama-Guard-3-1B-GGUF", "Llama-Guard-3-1B.Q4_K_M.gguf"  # no pinned checksum


@pytest.fixture
def hub(tmp_path: Path, monkeypatch):
    server = FakeHub()
    server.add(REPO, FILE, write_gguf(tmp_path / "guard.gguf", tensor_bytes=2 * 1024 * 1024).read_bytes())
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    yield server
    server.stop()


def row_status(dialog, model_id: str) -> str:
    for r, row in enumerate(dialog.rows):
        if row.id == model_id:
            return dialog.table.item(r, 5).text()
    return ""


def test_download_pause_resume_from_the_manager(qtbot, haven, hub) -> None:
    hub.switches.seconds_per_chunk = 0.2
    haven.open_models(select="llama-guard-3-1b")
    dialog = haven.models_dialog
    assert dialog.selected_id() == "llama-guard-3-1b"
    qtbot.mouseClick(dialog.buttons["Download"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "%" in row_status(dialog, "llama-guard-3-1b"), timeout=20_000)
    qtbot.mouseClick(dialog.buttons["Pause"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row_status(dialog, "llama-guard-3-1b") == "paused", timeout=5_000)
    hub.switches.seconds_per_chunk = 0.0
    qtbot.mouseClick(dialog.buttons["Resume"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row_status(dialog, "llama-guard-3-1b").startswith("installed"), timeout=20_000)
    assert hub.ranges(), "resuming asked the server for the rest only"
    assert haven.registry.find("llama-guard-3-1b") is not None
    dialog.close()


def test_a_failed_download_says_why(qtbot, haven, hub) -> None:
    hub.switches.corrupt = True
    haven.open_models(select="llama-guard-3-1b")
    dialog = haven.models_dialog
    qtbot.mouseClick(dialog.buttons["Download"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row_status(dialog, "llama-guard-3-1b").startswith("failed"), timeout=20_000)
    assert "checksum" in row_status(dialog, "llama-guard-3-1b")
    assert [j.state for j in haven.downloads.jobs()] == [DownloadState.FAILED]
    dialog.close()


def test_import_and_set_default(qtbot, haven, tmp_path: Path, starter_path: Path) -> None:
    copy = tmp_path / "my-model.gguf"
    copy.write_bytes(starter_path.read_bytes())
    haven.open_models()
    dialog = haven.models_dialog
    dialog.import_file(str(copy))
    assert dialog.selected_id() == "my-model"
    qtbot.mouseClick(dialog.buttons["Set as default"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: haven.window.session is not None and haven.window.session.model_id == "my-model",
                    timeout=30_000)
    assert "default" in row_status(dialog, "my-model")
    dialog.close()


def test_first_run_recommends_a_model(haven) -> None:
    assert haven.window.welcome.isVisible()
    assert "recommend" in haven.window.welcome_text.text()


def test_each_conversation_keeps_its_model(qtbot, haven, tmp_path: Path, starter_path: Path) -> None:
    copy = tmp_path / "other.gguf"
    copy.write_bytes(starter_path.read_bytes())
    haven.registry.import_file(copy, "other-model")
    window = haven.window
    window.input.setPlainText("Hi from the starter model")
    window.send()
    qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
    first = window.conversation_id
    haven.set_default_model("other-model")
    qtbot.waitUntil(lambda: window.session is not None and window.session.model_id == "other-model", timeout=30_000)
    window.new_chat()
    window.input.setPlainText("Hi from the other model")
    window.send()
    qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
    assert haven.store.conversation(window.conversation_id).model == "other-model"
    window.open_conversation(first)
    qtbot.waitUntil(lambda: window.session is not None and window.session.model_id == "smollm2-135m-instruct",
                    timeout=30_000)
