"""Settings → Server: the switch for Haven's OpenAI-compatible API (off by default), its address and port,
whether its conversations are kept, and the bearer token clients must send (shown here, renewable).
The settings dialog adds this page and takes :meth:`ServerPage.values` into the settings it saves."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QCheckBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget

from assistant.errors import HavenError
from assistant.paths import AppPaths
from assistant.server import ApiToken, exposure_warning
from assistant.settings import BOUNDS, Settings

__all__ = ["ServerPage"]


class ServerPage(QWidget):
    def __init__(self, settings: Settings, paths: AppPaths, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self.enabled = QCheckBox("Serve the loaded model to other apps (OpenAI-compatible API)")
        self.enabled.setAccessibleName("Serve the loaded model")
        self.enabled.setChecked(settings.server_enabled)
        form.addRow(self.enabled)
        self.host = QLineEdit(settings.server_host)
        self.host.setAccessibleName("Server address")
        self.host.setToolTip("127.0.0.1: this computer only. Another address lets other machines connect.")
        form.addRow("Address", self.host)
        self.port = QSpinBox()
        low, high = BOUNDS["server_port"]
        self.port.setRange(int(low), int(high))
        self.port.setValue(settings.server_port)
        self.port.setAccessibleName("Server port")
        form.addRow("Port", self.port)
        self.keep = QCheckBox("Keep the API's conversations with the others")
        self.keep.setAccessibleName("Keep the API's conversations")
        self.keep.setChecked(settings.server_store_conversations)
        form.addRow(self.keep)
        self.tokens = ApiToken(paths)
        self.token = QLineEdit()
        self.token.setReadOnly(True)
        self.token.setAccessibleName("API token")
        renew = QPushButton("New token")
        renew.setAccessibleName("New API token")
        renew.clicked.connect(self.renew_token)
        row = QHBoxLayout()
        row.addWidget(self.token, 1)
        row.addWidget(renew)
        form.addRow("API token", row)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setAccessibleName("Server note")
        form.addRow(self.note)
        self.host.textChanged.connect(self._describe)
        self.port.valueChanged.connect(self._describe)
        self._show_token()
        self._describe()

    def _show_token(self) -> None:
        try:
            self.token.setText(self.tokens.get())  # generated and kept the first time it is shown
        except HavenError as exc:
            self.token.setText("")
            self.note.setText(str(exc))
        if self.tokens.from_environment():
            self.token.setToolTip("Set by the environment variable HAVEN_API_TOKEN.")

    def renew_token(self) -> None:
        """A new token; clients with the old one get 401 from now on."""
        try:
            self.token.setText(self.tokens.renew())
        except HavenError as exc:
            self.note.setText(str(exc))

    def _describe(self) -> None:
        host = self.host.text().strip() or "127.0.0.1"
        url = f"http://{host}:{self.port.value()}/v1"
        warning = exposure_warning(host, self.port.value())
        self.note.setText(f"Base URL: {url}. Requests need 'Authorization: Bearer' and the token above."
                          + (f"\n\nWarning: {warning}" if warning else ""))

    def values(self) -> dict[str, Any]:
        return {"server_enabled": self.enabled.isChecked(), "server_host": self.host.text().strip() or "127.0.0.1",
                "server_port": self.port.value(), "server_store_conversations": self.keep.isChecked()}
