"""The desktop app with real clicks and keys, offscreen, on the real starter model."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from PySide6.QtCore import Qt

from assistant.settings import load_settings


def test_type_send_stream_and_store(qtbot, haven) -> None:
    window = haven.window
    assert "Haven" in window.windowTitle()
    qtbot.keyClicks(window.input, "Name three colours.")
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert window.input.toPlainText() == ""
    qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
    reply = window.chat.messages[-1]
    assert reply.role == "assistant" and reply.content.strip() and reply.complete
    assert window.speed_status.text().endswith("tokens/s")
    exported = subprocess.run([sys.executable, "-m", "assistant", "history", "export", "--format", "json"],
                              capture_output=True, text=True, timeout=60)
    [conversation] = json.loads(exported.stdout)["conversations"]
    assert [m["content"] for m in conversation["messages"]] == ["Name three colours.", reply.content]
    assert window.sidebar.list.count() == 1


def test_shift_enter_is_a_new_line_and_escape_stops(qtbot, haven) -> None:
    window = haven.window
    qtbot.keyClicks(window.input, "Write a very long story about the sea")
    qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert "\n" in window.input.toPlainText() and window.turn is None
    haven.window.session.sampling = haven.window.session.sampling.__class__(max_tokens=400, seed=3)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(window.chat.messages[-1].content) > 0, timeout=60_000)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.turn is None, timeout=10_000)
    stopped = window.chat.messages[-1]
    assert not stopped.complete
    stored = haven.store.messages(window.conversation_id)[-1]
    assert stored.complete is False and stored.stop_reason == "cancelled" and stored.content == stopped.content


def test_closing_mid_reply_is_quick_and_keeps_the_reply(qtbot, haven) -> None:
    window = haven.window
    window.session.sampling = window.session.sampling.__class__(max_tokens=500, seed=4)
    window.input.setPlainText("Write a very long essay about mountains.")
    window.send()
    qtbot.waitUntil(lambda: len(window.chat.messages[-1].content) > 0, timeout=60_000)
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 2.0
    qtbot.waitUntil(lambda: window.turn is None, timeout=5_000)
    stored = haven.store.messages(window.conversation_id)[-1]
    assert stored.role == "assistant" and stored.content and not stored.complete


def test_new_chat_rename_search_delete(qtbot, haven, monkeypatch) -> None:
    from PySide6.QtWidgets import QInputDialog, QMessageBox

    window = haven.window
    for text in ("Tell me about quokkas.", "Tell me about axolotls."):
        window.input.setPlainText(text)
        window.send()
        qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
        qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
        assert window.conversation_id is None and window.chat.messages == []
    sidebar = window.sidebar
    assert sidebar.list.count() == 2
    qtbot.keyClicks(sidebar.search, "quokka")
    assert sidebar.list.count() == 1
    sidebar.list.setCurrentRow(0)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Fruit talk", True))
    sidebar.rename_current()
    assert sidebar.list.item(0).text() == "Fruit talk"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    sidebar.list.setCurrentRow(0)
    sidebar.delete_current()
    sidebar.search.clear()
    assert sidebar.list.count() == 1


def test_settings_are_saved(qtbot, haven, monkeypatch) -> None:
    from ui.settings_dialog import SettingsDialog

    def accept_with_changes(dialog: SettingsDialog) -> int:
        dialog.temperature.setValue(0.3)
        dialog.instructions.setPlainText("Answer briefly.")
        return SettingsDialog.DialogCode.Accepted

    monkeypatch.setattr(SettingsDialog, "exec", accept_with_changes)
    haven.open_settings()
    saved = load_settings(haven.paths.settings_file).settings
    assert saved.temperature == 0.3 and saved.user_instructions == "Answer briefly."
    assert haven.window.session.sampling.temperature == 0.3
    assert haven.window.session.user_instructions == "Answer briefly."


def test_regenerate_edit_copy_export_instructions(qtbot, haven, tmp_path, monkeypatch) -> None:
    from PySide6.QtWidgets import QApplication, QInputDialog

    window = haven.window
    window.session.sampling = window.session.sampling.__class__(max_tokens=40, seed=1)
    window.input.setPlainText("Write a Python function that adds two numbers, in a code block.")
    window.send()
    qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
    conversation = window.conversation_id
    first_ids = [m.id for m in haven.store.messages(conversation)]
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
    second_ids = [m.id for m in haven.store.messages(conversation)]
    assert second_ids[0] == first_ids[0] and second_ids[1] != first_ids[1], "a new reply to the same message"
    assert len(haven.store.all_messages(conversation)) == 3, "the old reply is kept, one arrow away"
    assert window.chat.messages[1].sibling_count == 2

    window.copy_last_reply()
    assert QApplication.clipboard().text() == haven.store.messages(conversation)[-1].content

    window.edit_last()
    assert window.input.toPlainText().startswith("Write a Python function")
    assert len(haven.store.messages(conversation)) == 2, "nothing changes until the edit is sent"
    qtbot.keyClick(window, Qt.Key.Key_Escape)  # cancels the edit
    assert window.input.toPlainText() == ""
    window.new_chat()

    monkeypatch.setattr(QInputDialog, "getMultiLineText", lambda *a, **k: ("Answer like a pirate.", True))
    window.input.setPlainText("Hello")
    window.send()
    qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
    window.edit_instructions()
    assert haven.store.conversation(window.conversation_id).instructions == "Answer like a pirate."

    target = tmp_path / "out.json"
    window.export_conversation(str(target))
    exported = json.loads(target.read_text())
    assert exported["conversations"][0]["messages"][0]["content"] == "Hello"
    window.export_conversation(str(tmp_path / "out.md"))
    assert "**You**" in (tmp_path / "out.md").read_text()


def test_settings_panel_shows_hardware_token_and_safety_log(qtbot, haven) -> None:
    from ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(haven.settings, hardware="test machine", models=[("a", "A")], paths=haven.paths)
    qtbot.addWidget(dialog)
    dialog.token.setText("hf_secret_value")
    dialog._save_token()
    assert "Saved" in dialog.token_status.text() and dialog.tokens.get() == "hf_secret_value"
    dialog._remove_token()
    assert dialog.tokens.get() is None
    log_window = dialog.show_safety_log()
    qtbot.addWidget(log_window)
    assert log_window.isVisible()


def test_regenerate_and_edit_without_a_model_change_nothing_and_say_why(qtbot, tmp_path) -> None:
    from assistant.store import Store
    from ui.main_window import MainWindow

    with Store(tmp_path / "c.sqlite3") as store:
        conversation = store.create_conversation("m").id
        store.add_user_message(conversation, "Hello?")
        before = store.messages(conversation)
        window = MainWindow(store)  # no session: the model is still loading, or none could be loaded
        qtbot.addWidget(window)
        window.open_conversation(conversation)
        window.edit_last()
        assert "need a model" in window.statusBar().currentMessage()
        window.regenerate()
        assert store.messages(conversation) == before and window.input.toPlainText() == ""
