"""The model manager's "Servers" tab: "Add a server" takes an OpenAI-compatible base URL (llama.cpp's
``llama-server``, vLLM, Ollama...) and an optional key, lists the server's models on a worker thread and
saves it (the key in the OS keyring, or a private file where there is none); its models, ``NAME:MODEL``,
can then be chatted with like local ones, with Haven's safety checks applied here (docs/server.md)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.remote import RemoteRegistry, RemoteServer, add_server
from ui.workers import TaskWorker, start

__all__ = ["RemoteServersPanel"]


class RemoteServersPanel(QWidget):
    """``use_model(id)``: chat with a server's model now (None: the button is hidden)."""

    def __init__(self, registry: RemoteRegistry, use_model: Callable[[str], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._registry, self._use_model = registry, use_model
        self.name = QLineEdit()
        self.name.setAccessibleName("Server name")
        self.name.setPlaceholderText("a short name, e.g. box")
        self.url = QLineEdit()
        self.url.setAccessibleName("Server address")
        self.url.setPlaceholderText("http://192.168.1.20:8080/v1")
        self.key = QLineEdit()
        self.key.setAccessibleName("Server key")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("optional")
        self.add_button = QPushButton("Add a server")
        self.add_button.setAccessibleName("Add a server")
        self.add_button.clicked.connect(self.add)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Base URL", self.url)
        form.addRow("Key", self.key)
        form.addRow(self.add_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Server status")
        self.models = QListWidget()
        self.models.setAccessibleName("Server models")
        self.models.itemSelectionChanged.connect(self._update_buttons)
        self.chat_button = QPushButton("Chat with it")
        self.chat_button.setAccessibleName("Chat with the server's model")
        self.chat_button.clicked.connect(self.chat)
        self.chat_button.setVisible(use_model is not None)
        self.remove_button = QPushButton("Remove server")
        self.remove_button.setAccessibleName("Remove server")
        self.remove_button.clicked.connect(self.remove)
        buttons = QHBoxLayout()
        buttons.addWidget(self.chat_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Models on your servers (the safety checks run on this computer):"))
        layout.addWidget(self.models, 1)
        layout.addLayout(buttons)
        self.worker: TaskWorker | None = None
        self.refresh()

    def refresh(self) -> None:
        self.models.clear()
        try:
            servers = self._registry.servers()
        except Exception as exc:  # a damaged remotes.json: say so, keep the tab usable
            self.status.setText(str(exc))
            servers = []
        for server in servers:
            for model_id in server.model_ids():
                item = QListWidgetItem(f"{model_id}    ({server.url})")
                item.setData(Qt.ItemDataRole.UserRole, model_id)
                self.models.addItem(item)
        self._update_buttons()

    def selected_id(self) -> str | None:
        item = self.models.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None and item.isSelected() else None

    def _update_buttons(self) -> None:
        chosen = self.selected_id() is not None
        self.chat_button.setEnabled(chosen)
        self.remove_button.setEnabled(chosen)

    def add(self) -> None:
        name, url, key = self.name.text().strip(), self.url.text().strip(), self.key.text().strip() or None
        if not name or not url:
            self.status.setText("Give the server a name and its base URL.")
            return
        self.add_button.setEnabled(False)
        self.status.setText(f"Asking {url} for its models…")
        self.worker = TaskWorker(lambda: add_server(self._registry, name, url, key))
        self.worker.result.connect(self._added)
        self.worker.failed.connect(self._add_failed)
        start(self.worker, self.worker.run)

    def _added(self, result: tuple[RemoteServer, str | None]) -> None:
        server, where = result
        self.add_button.setEnabled(True)
        self.key.clear()
        kept = f" Its key is kept in {where}." if where else ""
        count = len(server.models)
        self.status.setText(f"Added {server.name} ({server.url}): {count} model{'s' if count != 1 else ''}.{kept}")
        self.refresh()

    def _add_failed(self, sentence: str, _details: str) -> None:
        self.add_button.setEnabled(True)
        self.status.setText(sentence)

    def chat(self) -> None:
        model_id = self.selected_id()
        if model_id is not None and self._use_model is not None:
            self._use_model(model_id)
            self.window().close()

    def remove(self) -> None:
        model_id = self.selected_id()
        if model_id is None:
            return
        name = model_id.split(":", 1)[0]
        self._registry.remove(name)
        self.status.setText(f"Removed {name} and its key.")
        self.refresh()
