"""The server switch and "Add a server" with real clicks: the app serves its loaded model when Settings →
Server says so (token shown there), and a server added in the model manager lists its models and is
chatted with from the window, Haven's safety checks applied here."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx2
import pytest
from PySide6.QtCore import Qt

from assistant.paths import AppPaths
from assistant.remote import RemoteEngine
from assistant.server import ApiToken
from assistant.settings import Settings, save_settings
from ui.server_settings import ServerPage
from ui.settings_dialog import SettingsDialog

REPLY = "Hello from the other machine. It is a long enough sentence to pass the output filter."


class OpenAIStandIn(http.server.BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible server: one model, a fixed streamed reply, a key it requires."""

    chats: ClassVar[list[dict[str, object]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer box-key":
            return self._json(401, {"error": {"message": "bad key"}})
        return self._json(200, {"object": "list", "data": [{"id": "big-model", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).chats.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for text, finish in ((REPLY[:30], None), (REPLY[30:], None), ("", "stop")):
            chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def stand_in() -> Iterator[tuple[str, type[OpenAIStandIn]]]:
    handler = type("Handler", (OpenAIStandIn,), {"chats": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_server_page_shows_the_token_and_saves_the_switch(qtbot, haven_home: Path) -> None:
    paths = AppPaths.from_environment().ensure()
    dialog = SettingsDialog(Settings(), hardware="test", models=[], paths=paths)
    qtbot.addWidget(dialog)
    page = dialog.server
    assert isinstance(page, ServerPage)
    token = page.token.text()
    assert token.startswith("haven-") and token == ApiToken(paths).get(), "generated on first use and kept"
    qtbot.mouseClick(page.enabled, Qt.MouseButton.LeftButton)
    page.port.setValue(9123)
    page.host.setText("0.0.0.0")
    assert "other machines" in page.note.text()
    renewed = page.token
    page.renew_token()
    assert renewed.text() != token and ApiToken(paths).get() == renewed.text()
    saved = dialog.result_settings()
    assert (saved.server_enabled, saved.server_host, saved.server_port, saved.server_store_conversations) == (
        True, "0.0.0.0", 9123, False)


def test_the_app_serves_its_model_when_switched_on(qtbot, qapp, haven_home: Path) -> None:
    from ui.app import HavenApp

    paths = AppPaths.from_environment().ensure()
    port = free_port()
    save_settings(paths.settings_file, Settings(server_enabled=True, server_port=port))
    app = HavenApp(qapp)
    qtbot.addWidget(app.window)
    try:
        qtbot.waitUntil(lambda: app.api is not None, timeout=60_000)
        assert app.api is not None and app.api.base_url == f"http://127.0.0.1:{port}/v1"
        token = ApiToken(paths).get()
        models = httpx2.get(f"{app.api.base_url}/models", headers={"Authorization": f"Bearer {token}"}).json()
        assert [m["id"] for m in models["data"]] == [app.model_id]
        assert httpx2.get(f"{app.api.base_url}/models").status_code == 401
    finally:
        app.window.close()
        app.shutdown()
    assert app.api is None, "stopped with the app"


def test_add_a_server_list_its_models_and_chat_with_one(qtbot, haven, stand_in) -> None:
    url, handler = stand_in
    haven.open_models()
    panel = haven.models_dialog.servers_panel
    haven.models_dialog.tabs.setCurrentWidget(panel)
    qtbot.keyClicks(panel.name, "box")
    qtbot.keyClicks(panel.url, url)
    qtbot.keyClicks(panel.key, "wrong")
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "refused Haven's key" in panel.status.text(), timeout=10_000)
    panel.key.clear()
    qtbot.keyClicks(panel.key, "box-key")
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.models.count() == 1, timeout=10_000)
    assert "Added box" in panel.status.text() and "private file" in panel.status.text()
    panel.models.setCurrentRow(0)
    qtbot.mouseClick(panel.chat_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: haven.window.session is not None and haven.model_id == "box:big-model", timeout=20_000)
    assert isinstance(haven.window.session.engine, RemoteEngine)
    qtbot.keyClicks(haven.window.input, "Say hello")
    qtbot.mouseClick(haven.window.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: haven.window.turn is None and bool(haven.store.list_conversations()), timeout=30_000)
    conversation = haven.store.list_conversations()[0]
    reply = haven.store.messages(conversation.id)[-1]
    assert reply.content == REPLY and reply.complete and reply.model == "box:big-model"
    (sent,) = handler.chats
    assert sent["messages"][0]["role"] == "system" and "Say hello" in sent["messages"][-1]["content"]
