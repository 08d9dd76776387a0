"""How a person acts on the transcript's messages: clicks on their buttons and links, keys, the context
menu, and opening a message for selecting text. :class:`MessageInput` is mixed into
:class:`ui.chat_view.ChatView`, whose state and actions (``activate``, ``copy_code``, ``prepared``) it uses.

Every action has a keyboard path: with the transcript focused, Up/Down choose a message, Ctrl+C copies
it, Enter opens it for selecting text, T shows or hides its thinking, Alt+Left/Alt+Right switch versions,
Delete deletes it (after a question),
and the menu key or Shift+F10 opens the menu of all its actions (named, for screen readers).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeyEvent, QKeySequence, QMouseEvent
from PySide6.QtWidgets import QMenu

from ui.markdown import COPY_SCHEME

__all__ = ["MessageInput"]


class MessageInput:
    """Mouse, keys and menus of the transcript (a mixin: listed before ``QListView``)."""

    messages: list[Any]

    def copy_message(self, row: int) -> None:
        if 0 <= row < len(self.messages):
            QGuiApplication.clipboard().setText(self.messages[row].content)
            self.copied.emit("Copied the message.")

    def copy_code(self, row: int, number: int) -> None:
        blocks = self.code_blocks(row)
        if 0 <= number < len(blocks):
            QGuiApplication.clipboard().setText(blocks[number])
            self.copied.emit("Copied the code block.")

    def toggle_thinking(self, row: int) -> None:
        if 0 <= row < len(self.messages) and self.messages[row].reasoning:
            self.messages[row].reasoning_open = not self.messages[row].reasoning_open
            self.messages[row].cache = None  # rendered again, with or without the thinking
            self._set_height(row, self._height(row))

    def activate(self, row: int, action: str) -> None:
        """A message's action by name: from a click, a key or a menu."""
        if not 0 <= row < len(self.messages):
            return
        message = self.messages[row]
        if action == "copy":
            self.copy_message(row)
        elif action == "thinking":
            self.toggle_thinking(row)
        elif message.message_id is None or self.is_streaming(row):
            return
        elif action == "edit" and message.role == "user":
            self.edit_requested.emit(message.message_id)
        elif action == "regenerate" and message.role == "assistant":
            self.regenerate_requested.emit(message.message_id)
        elif action == "delete":
            self.delete_requested.emit(message.message_id)
        elif action in ("previous", "next") and message.sibling_count > 1:
            self.branch_requested.emit(message.message_id, -1 if action == "previous" else 1)

    def _hit(self, position: QPoint) -> tuple[int, str | None, str | None]:
        """The row under ``position``, the action button there, and the link there."""
        index = self.indexAt(position)
        if not index.isValid():
            return -1, None, None
        row = index.row()
        _message, cache, lay = self.prepared(row, self.visualRect(index))
        for name, rect in lay.buttons.items():
            if rect.contains(position) and name != "branch":
                return row, name, None
        if lay.thinking is not None and lay.thinking.contains(position):
            return row, "thinking", None
        y = lay.body.top()
        for doc in cache.segments:
            height = int(doc.size().height())
            if y <= position.y() < y + height:
                anchor = doc.documentLayout().anchorAt(position - QPoint(lay.body.left(), y))
                return row, None, anchor or None
            y += height
        return row, None, None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        _, action, link = self._hit(event.position().toPoint())
        shape = Qt.CursorShape.PointingHandCursor if action or link else Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(shape)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        if event.button() != Qt.MouseButton.LeftButton:
            return
        row, action, link = self._hit(event.position().toPoint())
        if action is not None:
            self.activate(row, action)
        elif link is not None:
            self._open_link(row, link)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        row, action, link = self._hit(event.position().toPoint())
        if row >= 0 and action is None and link is None:
            self.open_selectable(row)  # select any part of the text
        else:
            super().mouseDoubleClickEvent(event)  # type: ignore[misc]

    def _open_link(self, row: int, link: str) -> None:
        url = QUrl(link)
        if url.scheme() == COPY_SCHEME:
            self.copy_code(row, int(url.path() or -1))
        elif url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
        else:
            self.refused_link.emit(link)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        row = self.current_row()
        key, mods = event.key(), event.modifiers()
        alt = mods & Qt.KeyboardModifier.AltModifier
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_message(row)
        elif alt and key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.activate(row, "previous" if key == Qt.Key.Key_Left else "next")
        elif key == Qt.Key.Key_T and not mods:
            self.toggle_thinking(row)
        elif key in (Qt.Key.Key_Menu,) or (key == Qt.Key.Key_F10 and mods & Qt.KeyboardModifier.ShiftModifier):
            self.show_actions(row, self.visualRect(self._model.index(row, 0)).topLeft())
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_selectable(row)
        elif key == Qt.Key.Key_Delete and not mods:
            self.activate(row, "delete")
        else:
            super().keyPressEvent(event)
        self.viewport().update()

    def contextMenuEvent(self, event: object) -> None:  # type: ignore[override]
        position = event.pos()  # type: ignore[attr-defined]
        index = self.indexAt(position)
        if index.isValid():
            self.setCurrentIndex(index)
            self.show_actions(index.row(), position)

    def actions_menu(self, row: int) -> QMenu:
        """Every action of a message, named for screen readers and keyboards."""
        menu = QMenu(self)
        menu.setAccessibleName("Message actions")
        message = self.messages[row]
        menu.addAction("&Copy message", lambda: self.activate(row, "copy"))
        for number, _code in enumerate(self.code_blocks(row)):
            menu.addAction(f"Copy code block &{number + 1}", lambda n=number: self.copy_code(row, n))
        menu.addAction("&Select text…", lambda: self.open_selectable(row))
        streaming = self.is_streaming(row) or message.message_id is None
        if message.role == "user":
            menu.addAction("&Edit…", lambda: self.activate(row, "edit")).setEnabled(not streaming)
        else:
            menu.addAction("&Regenerate", lambda: self.activate(row, "regenerate")).setEnabled(not streaming)
        if message.reasoning:
            menu.addAction("Hide &thinking" if message.reasoning_open else "Show &thinking",
                           lambda: self.activate(row, "thinking"))
        if message.sibling_count > 1:
            menu.addAction("&Previous version", lambda: self.activate(row, "previous"))
            menu.addAction("&Next version", lambda: self.activate(row, "next"))
        menu.addAction("&Delete…", lambda: self.activate(row, "delete")).setEnabled(not streaming)
        return menu

    def show_actions(self, row: int, position: QPoint) -> None:
        if 0 <= row < len(self.messages):
            self.actions_menu(row).popup(self.viewport().mapToGlobal(position))

    def open_selectable(self, row: int) -> None:
        """The message in a read-only text box over it, to select and copy any part (Esc closes it)."""
        from ui.selectable import SelectableText

        if not 0 <= row < len(self.messages):
            return
        index = self._model.index(row, 0)
        _, cache, lay = self.prepared(row, self.visualRect(index))
        SelectableText.show_over(self, cache, lay.body, self.theme)

