"""The message-based transcript against a real ChatSession on a scripted engine (tests/fakes.py): branches,
editing an early message, copy buttons, the thinking block, auto-scroll, keyboard and screen-reader names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication, QTextCursor
from PySide6.QtWidgets import QAbstractSlider

from assistant.session import ChatSession
from assistant.store import Store
from tests.fakes import FakeEngine, WordPolicy
from ui.chat_view import ChatView, ViewMessage
from ui.main_window import MainWindow
from ui.selectable import SelectableText


@pytest.fixture
def scripted(qtbot, tmp_path: Path) -> Iterator[tuple[MainWindow, FakeEngine, Store]]:
    """The real window and session; the engine streams whatever the test enqueues."""
    store = Store(tmp_path / "conversations.sqlite3")
    engine = FakeEngine()
    session = ChatSession(engine, store, WordPolicy(), model_id="fake-model")
    window = MainWindow(store)
    qtbot.addWidget(window)
    window.attach_session(session, "fake-model")
    window.resize(1000, 700)
    window.show()
    yield window, engine, store
    window.close()
    store.close()


def turn(qtbot, window: MainWindow, text: str) -> None:
    window.input.setPlainText(text)
    window.send()
    qtbot.waitUntil(lambda: window.turn is None, timeout=10_000)


def wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.turn is None, timeout=10_000)


def click_button(qtbot, view: ChatView, row: int, name: str) -> None:
    index = view.model().index(row, 0)
    view.scrollTo(index)
    _, _, lay = view.prepared(row, view.visualRect(index))
    assert name in lay.buttons, (name, list(lay.buttons))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=lay.buttons[name].center())


def contents(view: ChatView) -> list[str]:
    return [m.content for m in view.messages]


def test_regenerate_keeps_the_old_reply_and_the_arrows_switch(qtbot, scripted) -> None:
    window, engine, store = scripted
    engine.enqueue("First", " answer.")
    turn(qtbot, window, "Hello")
    engine.enqueue("Second", " answer.")
    click_button(qtbot, window.chat, 1, "regenerate")
    wait_idle(qtbot, window)
    assert contents(window.chat) == ["Hello", "Second answer."]
    reply = window.chat.messages[1]
    assert (reply.sibling_index, reply.sibling_count) == (2, 2)
    click_button(qtbot, window.chat, 1, "previous")
    assert contents(window.chat) == ["Hello", "First answer."]
    assert (window.chat.messages[1].sibling_index, window.chat.messages[1].sibling_count) == (1, 2)
    window.chat.setFocus()
    window.chat.setCurrentIndex(window.chat.model().index(1, 0))
    qtbot.keyClick(window.chat, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert contents(window.chat) == ["Hello", "Second answer."]
    assert [m.content for m in store.messages(window.conversation_id)] == ["Hello", "Second answer."]


def test_editing_an_early_message_starts_a_branch_and_keeps_the_old_one(qtbot, scripted) -> None:
    window, engine, store = scripted
    for number in (1, 2, 3):
        engine.enqueue(f"Reply {number}.")
        turn(qtbot, window, f"Message {number}")
    assert len(window.chat.messages) == 6
    click_button(qtbot, window.chat, 0, "edit")
    assert window.input.toPlainText() == "Message 1"
    window.input.setPlainText("Message 1, edited")
    engine.enqueue("A new reply.")
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    wait_idle(qtbot, window)
    assert contents(window.chat) == ["Message 1, edited", "A new reply."]
    assert (window.chat.messages[0].sibling_index, window.chat.messages[0].sibling_count) == (2, 2)
    click_button(qtbot, window.chat, 0, "previous")
    assert contents(window.chat) == ["Message 1", "Reply 1.", "Message 2", "Reply 2.", "Message 3", "Reply 3."]
    assert len(store.all_messages(window.conversation_id)) == 8


def copy_link_position(view: ChatView, row: int, number: int) -> QPoint:
    """Where the ``number``-th code block's "Copy" link of a message is drawn, in viewport coordinates."""
    index = view.model().index(row, 0)
    view.scrollTo(index)
    _, cache, lay = view.prepared(row, view.visualRect(index))
    top = lay.body.top()
    for doc in cache.segments:
        cursor = QTextCursor(doc)
        while not (cursor := doc.find("Copy", cursor)).isNull():
            char = QTextCursor(doc)
            char.setPosition(cursor.selectionStart() + 1)
            if char.charFormat().anchorHref() == f"haven-copy:{number}":
                block = char.block()
                line = block.layout().lineForTextPosition(char.positionInBlock())
                box = doc.documentLayout().blockBoundingRect(block)
                x = box.left() + line.cursorToX(char.positionInBlock())[0] + 2
                y = box.top() + line.y() + line.height() / 2
                return QPoint(lay.body.left() + int(x), top + int(y))
        top += int(doc.size().height())
    raise AssertionError(f"no copy link {number}")


def test_copy_buttons_put_the_message_and_each_code_block_on_the_clipboard(qtbot, scripted) -> None:
    window, engine, _ = scripted
    reply = "Two blocks:\n\n```python\nprint('one')\n```\n\nand\n\n```sh\necho two\n```\n"
    engine.enqueue(reply)
    turn(qtbot, window, "Show me code")
    view = window.chat
    assert view.code_blocks(1) == ["print('one')", "echo two"]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=copy_link_position(view, 1, 1))
    assert QGuiApplication.clipboard().text() == "echo two"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=copy_link_position(view, 1, 0))
    assert QGuiApplication.clipboard().text() == "print('one')"
    click_button(qtbot, view, 1, "copy")
    assert QGuiApplication.clipboard().text() == reply


def test_thinking_is_a_collapsed_block_with_its_duration(qtbot, scripted) -> None:
    window, engine, store = scripted
    engine.enqueue("<think>", "The user wants colours.", " Pick two.", "</think>", "Red and blue.")
    turn(qtbot, window, "Name two colours")
    view = window.chat
    reply = view.messages[1]
    assert reply.content == "Red and blue."
    assert reply.reasoning == "The user wants colours. Pick two."
    assert reply.reasoning_ms is not None and not reply.reasoning_open
    assert "Pick two" not in view.toPlainText(), "collapsed: the thinking is not drawn"
    index = view.model().index(1, 0)
    _, _, lay = view.prepared(1, view.visualRect(index))
    assert lay.thinking is not None and lay.reasoning is None
    closed_height = lay.height
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=lay.thinking.center())
    assert reply.reasoning_open
    _, _, lay = view.prepared(1, view.visualRect(index))
    assert lay.reasoning is not None and lay.height > closed_height
    stored = store.messages(window.conversation_id)[1]
    assert stored.reasoning == reply.reasoning and stored.content == "Red and blue."
    engine.enqueue("Fine.")
    turn(qtbot, window, "Thanks")
    assert all("Pick two" not in m.content for m in engine.prompts[-1]), "thinking never goes back to the model"


def test_auto_scroll_follows_new_text_and_stops_when_scrolled_up(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    view.set_messages([ViewMessage("user" if i % 2 == 0 else "assistant", f"Message {i}\n\nwith two paragraphs.",
                                   message_id=i + 1) for i in range(30)])
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    view.add(ViewMessage("assistant", "", complete=False))
    for line in range(20):
        view.append_text(f"Line {line} of a streaming reply.\n\n")
        view.render_now()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=3000)
    assert view.following
    bar.triggerAction(QAbstractSlider.SliderAction.SliderPageStepSub)  # the person scrolls up
    qtbot.waitUntil(lambda: not view.following, timeout=1000)
    top = view.indexAt(QPoint(40, 0)).row()
    for line in range(20, 40):
        view.append_text(f"Line {line} of a streaming reply.\n\n")
        view.render_now()
    qtbot.wait(300)
    assert view.indexAt(QPoint(40, 0)).row() == top, "new text does not pull the transcript down"
    assert bar.value() < bar.maximum() - 100
    bar.triggerAction(QAbstractSlider.SliderAction.SliderToMaximum)  # back to the bottom: follow again
    qtbot.waitUntil(lambda: view.following, timeout=1000)
    view.append_text("More.\n\n")
    view.render_now()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=3000)


def test_messages_have_names_and_every_action_a_keyboard_path(qtbot, scripted) -> None:
    window, engine, _ = scripted
    engine.enqueue("Sure.")
    turn(qtbot, window, "Hi")
    view = window.chat
    spoken = [view.model().index(row, 0).data(Qt.ItemDataRole.AccessibleTextRole) for row in range(2)]
    assert spoken == ["You: Hi", "Haven (fake-model): Sure."]
    menu = view.actions_menu(1)
    assert [a.text().replace("&", "") for a in menu.actions()] == [
        "Copy message", "Select text…", "Regenerate", "Delete…"]
    assert [a.text().replace("&", "") for a in view.actions_menu(0).actions()] == [
        "Copy message", "Select text…", "Edit…", "Delete…"]
    view.setFocus()
    view.setCurrentIndex(view.model().index(1, 0))
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "Sure."
    qtbot.keyClick(view, Qt.Key.Key_Return)  # open it for selecting text
    box = view.viewport().findChild(SelectableText)
    assert box is not None and box.toPlainText() == "Sure." and box.isReadOnly()
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: box.isHidden() and view.hasFocus(), timeout=2000)
    size = view.message_font().pointSizeF()
    qtbot.keyClick(window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert view.message_font().pointSizeF() == size + 1
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert view.message_font().pointSizeF() == size
    assert window.sidebar.list.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    window.input.setFocus()
    for pane in (window.sidebar.list, view, window.input):  # F6 walks the panes
        window.focus_next_pane()
        assert pane.hasFocus()


def test_a_long_conversation_opens_by_rendering_only_what_is_on_screen(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    view.set_messages([ViewMessage("assistant", f"Reply {i}\n\n```python\nx = {i}\n```\n", message_id=i)
                       for i in range(2000)])
    qtbot.wait(50)
    rendered = sum(1 for m in view.messages if m.cache is not None)
    assert 0 < rendered < 100, rendered
    bar = view.verticalScrollBar()
    assert bar.value() == bar.maximum()


CHATGPT = Path(__file__).parent.parent / "core" / "data" / "chatgpt_conversations.json"


def test_import_from_the_menu_opens_the_conversation_with_its_branches(qtbot, scripted, tmp_path: Path,
                                                                       monkeypatch) -> None:
    window, _, store = scripted
    errors: list[str] = []
    monkeypatch.setattr("ui.main_window.show_error", lambda parent, message, details="": errors.append(message))
    broken = tmp_path / "broken.json"
    broken.write_text('[{"mapping": ', encoding="utf-8")
    window.import_conversations(str(broken))
    qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
    assert store.list_conversations() == [], "a malformed file imports nothing"
    window.import_conversations(str(CHATGPT))
    qtbot.waitUntil(lambda: window.sidebar.list.count() == 2, timeout=10_000)
    qtbot.waitUntil(lambda: window.conversation_id is not None, timeout=10_000)
    assert "Imported 2 conversations" in window.statusBar().currentMessage()
    view = window.chat
    assert [m.role for m in view.messages][:2] == ["user", "assistant"]
    assert any(m.sibling_count == 2 for m in view.messages), "the branches came along: arrows show"
    assert len(errors) == 1


def test_deleting_a_reply_keeps_its_other_version(qtbot, scripted, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    window, engine, store = scripted
    engine.enqueue("First.")
    turn(qtbot, window, "Hello")
    engine.enqueue("Second.")
    window.regenerate()
    wait_idle(qtbot, window)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.chat.setFocus()
    window.chat.setCurrentIndex(window.chat.model().index(1, 0))
    qtbot.keyClick(window.chat, Qt.Key.Key_Delete)
    assert contents(window.chat) == ["Hello", "First."]
    assert window.chat.messages[1].sibling_count == 1
    assert [m.content for m in store.all_messages(window.conversation_id)] == ["Hello", "First."]
