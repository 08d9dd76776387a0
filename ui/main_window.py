"""The main window: conversations on the left, the chat on the right, the message box below.

Keyboard: Enter sends, Shift+Enter starts a new line, Esc stops a reply (or cancels an edit), Ctrl+N
starts a new chat, Ctrl+R regenerates the reply the transcript's keyboard focus is on (else the last),
Ctrl+E edits the user message it is on (else the last one), Alt+Left / Alt+Right switch between its
versions, Ctrl+= / Ctrl+- / Ctrl+0 change the text size, Ctrl+M opens the model manager, Ctrl+, the
settings, Ctrl+O imports conversations. F6 moves between the conversation list, the transcript and the
message box.

Edit and regenerate never lose anything: the session stores the new message or reply as a sibling of
the old one (a branch), and the transcript's arrows ("‹ 2 / 3 ›") switch between them.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QThread
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from assistant.export import conversations_to_markdown, export_json
from assistant.importing import ImportResult, import_file
from assistant.session import ChatSession, TurnResult
from assistant.store import Store
from ui.branch_actions import BranchActions
from ui.chat_view import ChatView, ViewMessage
from ui.conversation_list import ConversationList
from ui.errors import show_error
from ui.message_item import view_messages
from ui.workers import TaskWorker, Turn, TurnWorker, start

__all__ = ["MainWindow"]

log = logging.getLogger(__name__)

CLOSE_WAIT_MS = 1500


class MessageBox(QPlainTextEdit):
    """Enter sends; Shift+Enter is a new line."""

    def __init__(self, send: Callable[[], None]) -> None:
        super().__init__()
        self._send = send
        self.setObjectName("message-box")
        self.setPlaceholderText("Message Haven…  (Enter sends, Shift+Enter for a new line)")
        self.setAccessibleName("Message")
        self.setMaximumHeight(120)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self._send()
            return
        super().keyPressEvent(event)


class MainWindow(BranchActions, QMainWindow):
    def __init__(self, store: Store, *, model_label: str = "") -> None:
        super().__init__()
        self.setWindowTitle("Haven")
        self.resize(1100, 720)
        self.store = store
        self.session: ChatSession | None = None
        self.conversation_id: str | None = None
        self.turn: TurnWorker | None = None
        self.turn_thread: QThread | None = None
        self._unsent: str | None = None  # the message of a turn that has not been stored yet
        self._editing: int | None = None  # the id of the user message the box holds a new version of
        self._import_thread: QThread | None = None
        self.settings_opener: Callable[[], None] | None = None
        self.models_opener: Callable[[], None] | None = None
        self.model_switcher: Callable[[str], None] | None = None  # per-conversation model

        self.sidebar = ConversationList(store)
        self.sidebar.selected.connect(self.open_conversation)
        self.sidebar.new_requested.connect(self.new_chat)
        self.sidebar.deleted.connect(self._deleted)
        self.chat = ChatView()
        self.chat.refused_link.connect(
            lambda url: self.statusBar().showMessage(f"Haven does not open this kind of link: {url}", 5000))
        self.chat.copied.connect(lambda text: self.statusBar().showMessage(text, 3000))
        self.chat.edit_requested.connect(self.edit_message)
        self.chat.regenerate_requested.connect(self.regenerate_reply)
        self.chat.branch_requested.connect(self.switch_branch)
        self.chat.delete_requested.connect(self.delete_message)
        self.input = MessageBox(self.send)
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)

        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        column = QVBoxLayout()
        column.addWidget(self.send_button)
        column.addWidget(self.stop_button)
        row.addLayout(column)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        self.welcome = QFrame()
        self.welcome.setFrameShape(QFrame.Shape.StyledPanel)
        self.welcome_text = QLabel()
        self.welcome_text.setWordWrap(True)
        self.welcome_download = QPushButton("Download it")
        self.welcome_download.setAccessibleName("Download the recommended model")
        dismiss = QPushButton("Not now")
        dismiss.clicked.connect(self.welcome.hide)
        welcome_row = QHBoxLayout(self.welcome)
        welcome_row.addWidget(self.welcome_text, 1)
        welcome_row.addWidget(self.welcome_download)
        welcome_row.addWidget(dismiss)
        self.welcome.hide()
        right_layout.addWidget(self.welcome)
        right_layout.addWidget(self.chat, 1)
        right_layout.addLayout(row)
        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(right)
        splitter.setSizes([260, 840])
        self.setCentralWidget(splitter)

        self.model_status = QLabel(model_label)
        self.speed_status = QLabel("")
        self.statusBar().addPermanentWidget(self.speed_status)
        self.statusBar().addPermanentWidget(self.model_status)
        self._actions()
        self.set_ready(False, "Loading the model…")
        self.input.setFocus()

    def _actions(self) -> None:
        menu = self.menuBar().addMenu("&Chat")
        new = QAction("&New chat", self, shortcut=QKeySequence("Ctrl+N"), triggered=self.new_chat)
        stop = QAction("&Stop", self, shortcut=QKeySequence(Qt.Key.Key_Escape), triggered=self.stop_or_cancel_edit)
        settings = QAction("Se&ttings…", self, shortcut=QKeySequence("Ctrl+,"),
                           triggered=lambda: self.settings_opener() if self.settings_opener else None)
        models = QAction("&Models…", self, shortcut=QKeySequence("Ctrl+M"),
                         triggered=lambda: self.models_opener() if self.models_opener else None)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close)
        import_action = QAction("&Import conversations…", self, shortcut=QKeySequence("Ctrl+O"),
                                triggered=self.import_conversations)
        for action in (new, stop, import_action, models, settings, quit_action):
            menu.addAction(action)
            self.addAction(action)
        edit = self.menuBar().addMenu("&Message")
        for label, key, handler in (
            ("&Regenerate reply", "Ctrl+R", self.regenerate),
            ("&Edit message", "Ctrl+E", self.edit_last),
            ("&Previous version", "Alt+Left", lambda: self.chat.activate(self.chat.current_row(), "previous")),
            ("&Next version", "Alt+Right", lambda: self.chat.activate(self.chat.current_row(), "next")),
            ("Show or hide &thinking", "Ctrl+T", lambda: self.chat.toggle_thinking(self._last_reply_row())),
            ("&Copy reply", "Ctrl+Shift+C", self.copy_last_reply),
            ("Copy last code &block", "Ctrl+Shift+B", self.copy_last_code),
            ("Go to the &transcript", "Ctrl+L", self._focus_transcript),
            ("Next &pane", "F6", self.focus_next_pane),
            ("Conversation &instructions…", "Ctrl+I", self.edit_instructions),
            ("E&xport conversation…", "Ctrl+Shift+E", self.export_conversation),
            ("&Larger text", "Ctrl+=", lambda: self.chat.zoom_by(1)),
            ("&Smaller text", "Ctrl+-", lambda: self.chat.zoom_by(-1)),
            ("&Default text size", "Ctrl+0", lambda: self.chat.zoom_by(0)),
        ):
            action = QAction(label, self, shortcut=QKeySequence(key), triggered=handler)
            edit.addAction(action)
            self.addAction(action)

    # -- state ---------------------------------------------------------------------------------

    def set_ready(self, ready: bool, message: str = "") -> None:
        busy = self.turn is not None
        self.send_button.setEnabled(ready and not busy)
        self.input.setReadOnly(not ready)
        if message:
            self.statusBar().showMessage(message)

    def attach_session(self, session: ChatSession, model_label: str) -> None:
        self.session = session
        self.model_status.setText(model_label)
        self.set_ready(True, "Ready")
        self.input.setFocus()

    def show_welcome(self, html: str, download: Callable[[], None]) -> None:
        self.welcome_text.setText(html)
        self.welcome_download.clicked.connect(download)
        self.welcome_download.clicked.connect(self.welcome.hide)
        self.welcome.show()

    # -- conversations -------------------------------------------------------------------------

    def new_chat(self) -> None:
        if self.turn is not None:
            return
        self.conversation_id = None
        self.chat.set_messages([])
        self.sidebar.select(None)
        self.input.setFocus()

    def open_conversation(self, conversation_id: str) -> None:
        if self.turn is not None:
            return
        self.conversation_id = conversation_id
        model = self.store.conversation(conversation_id).model
        if self.model_switcher is not None and self.session is not None and model != self.session.model_id:
            self.model_switcher(model)
        self.chat.set_messages(view_messages(self.store.messages(conversation_id)))

    def _deleted(self, conversation_id: str) -> None:
        if conversation_id == self.conversation_id:
            self.new_chat()

    # -- a turn --------------------------------------------------------------------------------

    def send(self) -> None:
        typed = self.input.toPlainText()
        text = typed.strip()
        if not text or self.session is None or self.turn is not None:
            return
        self.input.clear()
        self._unsent = typed
        session, conversation, editing = self.session, self.conversation_id, self._editing
        turn: Turn | None = None
        if editing is not None and conversation is not None:
            self.chat.truncate(self._row_of(editing))
            turn = functools.partial(lambda c, m, t, cancel: session.edit(c, m, t, cancel=cancel),
                                     conversation, editing, text)
        self._set_editing(None)
        self.chat.add(ViewMessage("user", text))
        self._start_turn(TurnWorker(session, text, conversation, turn=turn))

    def _start_turn(self, worker: TurnWorker) -> None:
        self.chat.add(ViewMessage("assistant", "", complete=False, model=self.model_status.text() or None))
        worker.turn_started.connect(self._turn_started)
        worker.text.connect(self.chat.append_text)
        worker.reasoning.connect(self.chat.append_reasoning)
        worker.reasoning_done.connect(self.chat.set_reasoning_time)
        worker.finished.connect(self._turn_finished)
        worker.failed.connect(self._turn_failed)
        worker.done.connect(self._turn_done)
        self.turn = worker
        self.send_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.statusBar().showMessage("Haven is writing…")
        self.turn_thread = start(worker, worker.run)

    def stop(self) -> None:
        if self.turn is not None:
            self.turn.cancel.set()

    def _turn_started(self, conversation_id: str, _user_message_id: int) -> None:
        self._unsent = None  # stored now
        self.conversation_id = conversation_id
        self.sidebar.refresh()
        self.sidebar.select(conversation_id)

    def _turn_finished(self, result: TurnResult) -> None:
        self.chat.replace_last(ViewMessage("assistant", result.reply, result.complete, result.blocked,
                                           result.category, message_id=result.reply_message_id,
                                           model=result.model, reasoning=result.reasoning,
                                           reasoning_ms=result.reasoning_ms))
        if result.blocked:
            self.statusBar().showMessage("The safety system stopped this turn.", 8000)
        else:
            self.statusBar().showMessage("Stopped." if not result.complete else "Done.", 4000)
        if result.tokens_per_second:
            self.speed_status.setText(f"{result.tokens_per_second:.1f} tokens/s")

    def _turn_failed(self, message: str, details: str) -> None:
        unsent, self._unsent = self._unsent, None
        if unsent is None and self.conversation_id is not None:  # stored: show what the store has
            self.chat.show_branch(view_messages(self.store.messages(self.conversation_id)))
        if self.chat.messages and self.chat.messages[-1].role == "assistant" and not self.chat.messages[-1].content:
            self.chat.pop()
            if unsent is not None and self.chat.messages and self.chat.messages[-1].role == "user":
                self.chat.pop()  # refused before it was stored (too long, say): back to the box
        if unsent is not None and not self.input.toPlainText():
            self.input.setPlainText(unsent)
        show_error(self, message, details)

    def _turn_done(self) -> None:
        self.turn = None
        self.turn_thread = None
        self.stop_button.setEnabled(False)
        if self.conversation_id is not None:  # ids, times and the "2 / 3" counts from the store
            self.chat.show_branch(view_messages(self.store.messages(self.conversation_id)))
        self.sidebar.refresh()
        self.set_ready(self.session is not None)

    def focus_next_pane(self) -> None:
        """F6: the conversation list, the transcript, the message box, in turn."""
        panes = [self.sidebar.list, self.chat, self.input]
        current = next((i for i, pane in enumerate(panes) if pane.hasFocus()), len(panes) - 1)
        target = panes[(current + 1) % len(panes)]
        if target is self.chat:
            self._focus_transcript()
        else:
            target.setFocus()

    def _last_reply(self) -> str:
        row = self._chosen_row("assistant")
        return self.chat.messages[row].content if row >= 0 else ""

    def copy_last_reply(self) -> None:
        QGuiApplication.clipboard().setText(self._last_reply())
        self.statusBar().showMessage("Copied the reply.", 3000)

    def copy_last_code(self) -> None:
        row = self._chosen_row("assistant")
        blocks = self.chat.code_blocks(row) if row >= 0 else []
        if blocks:
            QGuiApplication.clipboard().setText(blocks[-1])
            self.statusBar().showMessage("Copied the last code block.", 3000)
        else:
            self.statusBar().showMessage("The reply has no code block.", 3000)

    def import_conversations(self, path: str | None = None) -> None:
        """Chat > Import: Haven's JSON export or a ChatGPT ``conversations.json``; all or nothing."""
        chosen = path or QFileDialog.getOpenFileName(self, "Import conversations", "",
                                                     "Conversation exports (*.json);;All files (*)")[0]
        if not chosen:
            return
        store = self.store
        worker = TaskWorker(lambda: import_file(store, Path(chosen)))  # a big export takes a while to read
        worker.result.connect(self._imported)  # bound methods: queued to the UI thread
        worker.failed.connect(self._import_failed)
        self.statusBar().showMessage(f"Importing {Path(chosen).name}…")
        self._import_thread = start(worker, worker.run)

    def _imported(self, result: ImportResult) -> None:
        created = [c.id for c in result.conversations]
        self.sidebar.refresh()
        self.statusBar().showMessage(
            f"Imported {len(created)} conversation{'s' if len(created) != 1 else ''} "
            f"({result.messages} messages, {result.format.value} format).", 8000)
        if created and self.turn is None:
            self.open_conversation(created[0])
            self.sidebar.select(created[0])

    def _import_failed(self, message: str, details: str) -> None:
        self.statusBar().clearMessage()
        show_error(self, message, details)

    def edit_instructions(self) -> None:
        if self.conversation_id is None:
            self.statusBar().showMessage("Start a conversation first; new ones use the instructions in settings.", 5000)
            return
        current = self.store.conversation(self.conversation_id).instructions
        text, ok = QInputDialog.getMultiLineText(self, "Conversation instructions",
                                                 "How Haven should answer in this conversation:", current)
        if ok:
            self.store.update_conversation(self.conversation_id, instructions=text)

    def export_conversation(self, path: str | None = None) -> None:
        if self.conversation_id is None:
            return
        chosen = path or QFileDialog.getSaveFileName(self, "Export conversation", "conversation.md",
                                                     "Markdown (*.md);;JSON (*.json)")[0]
        if not chosen:
            return
        if chosen.endswith(".json"):
            text = json.dumps(export_json(self.store, [self.conversation_id]), ensure_ascii=False, indent=2)
        else:
            text = conversations_to_markdown(self.store, [self.conversation_id])
        try:
            Path(chosen).write_text(text, encoding="utf-8")
        except OSError as exc:
            show_error(self, f"Haven could not write {chosen} ({exc.strerror or exc}).")
            return
        self.statusBar().showMessage(f"Exported to {chosen}", 5000)

    # -- closing -------------------------------------------------------------------------------

    def finish_turn(self, wait_ms: int = CLOSE_WAIT_MS) -> None:
        """Mid-reply: stop it (what was shown is stored, marked incomplete) and wait briefly for the thread.

        Closing the window and the end of the desktop session (``ui/shutdown.py``) both come here."""
        if self.turn is not None and self.turn_thread is not None:
            self.turn.cancel.set()
            self.turn_thread.wait(wait_ms)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.finish_turn()
        event.accept()
