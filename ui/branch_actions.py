"""The window's chat operations on any message: regenerate a reply, edit a message of the user's, switch
between versions. Nothing is deleted: the session stores the new reply or message as a sibling of the old
(a branch), and the transcript's arrows ("‹ 2 / 3 ›") switch between them. :class:`BranchActions` is
mixed into :class:`ui.main_window.MainWindow` (listed before ``QMainWindow``) and uses its state.
"""

from __future__ import annotations

import functools
from typing import Any

from PySide6.QtWidgets import QMessageBox

from ui.message_item import view_messages
from ui.workers import TurnWorker

__all__ = ["BranchActions"]


class BranchActions:
    """Edit, regenerate and branch switching; see the module docstring."""

    chat: Any
    session: Any
    store: Any
    conversation_id: str | None
    turn: Any
    input: Any
    send_button: Any
    _editing: int | None

    def _needs_model(self) -> bool:
        if self.session is None:
            self.statusBar().showMessage("Regenerate and edit need a model: wait for it to load, or choose one.",
                                         5000)
            return True
        return False

    def _row_of(self, message_id: int) -> int:
        return next((row for row, m in enumerate(self.chat.messages) if m.message_id == message_id),
                    len(self.chat.messages))

    def _chosen_row(self, role: str) -> int:
        """The message of ``role`` the transcript's keyboard focus is on, else the last one."""
        rows = [row for row, m in enumerate(self.chat.messages) if m.role == role and m.message_id is not None]
        if not rows:
            return -1
        current = self.chat.currentIndex().row()
        return current if current in rows else rows[-1]

    def _last_reply_row(self) -> int:
        return self._chosen_row("assistant")

    def regenerate(self) -> None:
        """Ctrl+R: a new reply for the reply the transcript is on (else the last); the old one stays."""
        row = self._chosen_row("assistant")
        if row >= 0:
            self.regenerate_reply(self.chat.messages[row].message_id or 0)

    def regenerate_reply(self, reply_id: int) -> None:
        if self.turn is not None or self.conversation_id is None or self._needs_model():
            return
        assert self.session is not None
        session, conversation = self.session, self.conversation_id
        self.chat.truncate(self._row_of(reply_id))
        turn = functools.partial(lambda c, m, cancel: session.regenerate(c, m, cancel=cancel), conversation, reply_id)
        self._start_turn(TurnWorker(session, "", conversation, turn=turn))

    def edit_last(self) -> None:
        """Ctrl+E: edit the user message the transcript is on (else the last one)."""
        row = self._chosen_row("user")
        if row >= 0:
            self.edit_message(self.chat.messages[row].message_id or 0)

    def edit_message(self, message_id: int) -> None:
        """Put a message of the user's in the box; sending it stores a new version (the old one stays)."""
        if self.turn is not None or self._needs_model():
            return
        row = self._row_of(message_id)
        if row >= len(self.chat.messages):
            return
        self._set_editing(message_id)
        self.input.setPlainText(self.chat.messages[row].content)
        self.input.setFocus()

    def _set_editing(self, message_id: int | None) -> None:
        self._editing = message_id
        if message_id is None:
            self.send_button.setText("Send")
        else:
            self.send_button.setText("Send edit")
            self.statusBar().showMessage("Editing your message: Enter sends it as a new version (the old one "
                                         "stays, one arrow away); Esc cancels.")

    def stop_or_cancel_edit(self) -> None:
        if self.turn is None and self._editing is not None:
            self._set_editing(None)
            self.input.clear()
            self.statusBar().showMessage("Edit cancelled.", 3000)
        else:
            self.stop()

    def delete_message(self, message_id: int) -> None:
        """Delete a message and what follows it on its branch (after a question); its siblings stay."""
        if self.turn is not None or self.conversation_id is None:
            return
        row = self._row_of(message_id)
        if row >= len(self.chat.messages):
            return
        following = len(self.chat.messages) - row - 1
        what = "this message" + (f" and the {following} after it" if following else "")
        answer = QMessageBox.question(self, "Delete message",  # type: ignore[arg-type]
                                      f"Delete {what}? Other versions of it stay.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.store.delete_message(self.conversation_id, message_id)
        self.chat.show_branch(view_messages(self.store.messages(self.conversation_id)))

    def switch_branch(self, message_id: int, step: int) -> None:
        if self.turn is not None or self.conversation_id is None:
            return
        branch = self.store.switch_branch(self.conversation_id, message_id, step)
        self.chat.show_branch(view_messages(branch))
        row = self._row_of(message_id)
        moved = branch[row] if row < len(branch) else None
        if moved is not None:
            self.statusBar().showMessage(f"Version {moved.sibling_index} of {moved.sibling_count}.", 3000)

    def _focus_transcript(self) -> None:
        self.chat.setFocus()
        if not self.chat.currentIndex().isValid() and self.chat.messages:
            self.chat.setCurrentIndex(self.chat.model().index(len(self.chat.messages) - 1, 0))

