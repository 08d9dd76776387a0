"""Running the API: the listening socket, uvicorn, and the rule about addresses.

:class:`ApiServer` binds its socket when it is made (a port in use is a sentence at once, and port 0
picks a free one, which :attr:`ApiServer.port` then names), then serves either on the calling thread
(:meth:`ApiServer.run`, ``haven-cli serve``: Ctrl+C stops it) or on a thread of its own
(:meth:`ApiServer.start` / :meth:`ApiServer.stop`: the desktop app and the tests).

Haven listens on ``127.0.0.1`` unless the user names another address; :func:`exposure_warning` is the
sentence every front end shows when that address can be reached from other machines.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from assistant.errors import ConfigError
from assistant.server.routes import create_app
from assistant.server.service import ApiService

__all__ = ["ApiServer", "exposure_warning", "is_loopback"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(host: str, port: int) -> str | None:
    """None for a loopback address; otherwise the warning to show before serving."""
    if is_loopback(host):
        return None
    return (f"Haven's API is listening on {host}:{port}, so other machines on your network can reach it. "
            "Anyone with the API token can chat with your model; keep the token private, or listen on "
            "127.0.0.1 instead.")


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"Haven cannot listen on {host!r}: {exc.strerror or exc}. Check the address in "
                          "settings (127.0.0.1 is this computer only).") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"Haven cannot listen on {host}:{port} ({exc.strerror or exc}); another program may "
                          "be using that port. Choose another port with --port or in settings.") from exc
    sock.set_inheritable(True)
    return sock


class ApiServer:
    """The API for one :class:`ApiService`; ``token`` gives the bearer token (read on every request)."""

    def __init__(self, service: ApiService, token: Callable[[], str], *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.service = service
        self.host = host
        self._socket = _bind(host, port)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(create_app(service, token), log_config=None, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=3)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def run(self) -> None:
        """Serve on this thread until Ctrl+C (or :meth:`stop` from another thread)."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self, timeout: float = 10.0) -> None:
        """Serve on a thread of its own; returns once requests are being answered."""
        self._thread = threading.Thread(target=self.run, name="haven-api-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"Haven's API could not start on {self.base_url}; the log has the details.")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.service.close()
