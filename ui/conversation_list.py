"""The sidebar of saved conversations: search, new, rename, delete."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.store import Store

__all__ = ["ConversationList"]


class ConversationList(QWidget):
    selected = Signal(str)      # conversation id
    new_requested = Signal()
    deleted = Signal(str)

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self.search = QLineEdit(placeholderText="Search conversations")
        self.search.setAccessibleName("Search conversations")
        self.search.textChanged.connect(self.refresh)
        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.clicked.connect(self.new_requested)
        self.list = QListWidget()
        self.list.setObjectName("conversations")
        self.list.setAccessibleName("Conversations")
        # Long titles are cut with an ellipsis (the full title is the tooltip): the list never scrolls sideways.
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setWordWrap(False)
        self.list.setUniformItemSizes(True)
        self.list.itemActivated.connect(self._activate)
        self.list.itemClicked.connect(self._activate)
        self.rename_button = QPushButton("Rename")
        self.rename_button.setAccessibleName("Rename conversation")
        self.rename_button.clicked.connect(self.rename_current)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setAccessibleName("Delete conversation")
        self.delete_button.clicked.connect(self.delete_current)
        buttons = QHBoxLayout()
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        current = self.current_id()
        query = self.search.text().strip()
        conversations = self._store.list_conversations()
        if query:
            matching = set(self._store.search(query))
            conversations = [c for c in conversations if c.id in matching]
        self.list.clear()
        for c in conversations:
            item = QListWidgetItem(c.title or "New conversation")
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            item.setToolTip(f"{c.title or 'New conversation'}\n{c.messages} messages · {c.model}")
            self.list.addItem(item)
            if c.id == current:
                self.list.setCurrentItem(item)

    def current_id(self) -> str | None:
        item = self.list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def select(self, conversation_id: str | None) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == conversation_id:
                self.list.setCurrentItem(item)
                return
        self.list.clearSelection()
        self.list.setCurrentItem(None)  # type: ignore[arg-type]

    def _activate(self, item: QListWidgetItem) -> None:
        self.selected.emit(str(item.data(Qt.ItemDataRole.UserRole)))

    def rename_current(self) -> None:
        conversation_id = self.current_id()
        if conversation_id is None:
            return
        title, ok = QInputDialog.getText(self, "Rename conversation", "Title:",
                                         text=self.list.currentItem().text())
        if ok and title.strip():
            self._store.update_conversation(conversation_id, title=title.strip())
            self.refresh()

    def delete_current(self) -> None:
        conversation_id = self.current_id()
        if conversation_id is None:
            return
        answer = QMessageBox.question(self, "Delete conversation",
                                      f"Delete “{self.list.currentItem().text()}” and all its messages?")
        if answer == QMessageBox.StandardButton.Yes:
            self._store.delete_conversation(conversation_id)
            self.refresh()
            self.deleted.emit(conversation_id)
