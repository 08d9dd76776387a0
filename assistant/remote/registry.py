"""The servers the user added (``haven-cli remote add``, the model manager's "Add a server"): their names,
base URLs and the models each listed when it was added, in ``<config>/remotes.json``. Keys are never in
that file: each lives in the OS keyring, or where there is none in a private file
``<config>/remote-keys/NAME`` (0600), through :class:`~assistant.models.credentials.SecretStore`.

A remote model's id is ``NAME:MODEL`` (:func:`split_model_id`). Nothing here contacts a server: listing
models is :mod:`assistant.remote.client`'s job, done when a server is added.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from assistant.errors import ConfigError
from assistant.files import write_atomically
from assistant.models.credentials import SecretStore
from assistant.paths import AppPaths
from assistant.records import now_iso

__all__ = ["RemoteModel", "RemoteRegistry", "RemoteServer", "check_name", "normalise_url", "split_model_id"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


@dataclass(frozen=True, slots=True)
class RemoteModel:
    id: str                           # the server's own id for it
    context_length: int | None = None  # when the server says (vLLM's max_model_len, llama.cpp's n_ctx)


@dataclass(frozen=True, slots=True)
class RemoteServer:
    name: str
    url: str                       # the OpenAI-compatible base URL, e.g. http://192.168.1.20:8080/v1
    models: tuple[RemoteModel, ...] = ()
    added: str = ""

    def model_ids(self) -> list[str]:
        return [f"{self.name}:{m.id}" for m in self.models]

    def find(self, model: str) -> RemoteModel | None:
        return next((m for m in self.models if m.id == model), None)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "url": self.url, "added": self.added,
                "models": [{"id": m.id, "context_length": m.context_length} for m in self.models]}


def split_model_id(model_id: str) -> tuple[str, str] | None:
    """``("NAME", "MODEL")`` for a remote model's id, None for a local one (no ``:`` before the model)."""
    name, sep, model = model_id.partition(":")
    if not sep or not model or not _NAME.match(name):
        return None
    return name, model


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"{name!r} cannot name a server: use up to 40 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit (no ':').")
    return name


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{url!r} is not a server address Haven can use; give its base URL, for example "
                          "http://192.168.1.20:8080/v1.")
    return url


class RemoteRegistry:
    def __init__(self, paths: AppPaths, *, use_keyring: bool = True) -> None:
        self._paths = paths
        self._file = paths.config_dir / "remotes.json"
        self._use_keyring = use_keyring

    def key_store(self, name: str) -> SecretStore:
        return SecretStore(self._paths, account=f"remote:{check_name(name)}", file_name=f"remote-keys/{name}",
                           what=f"key for the server {name}", use_keyring=self._use_keyring)

    def servers(self) -> list[RemoteServer]:
        try:
            data = json.loads(self._file.read_text(encoding="utf-8"))
            return [RemoteServer(name=s["name"], url=s["url"], added=s.get("added", ""),
                                 models=tuple(RemoteModel(m["id"], m.get("context_length"))
                                              for m in s.get("models", [])))
                    for s in data["servers"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"Haven cannot read its list of servers {self._file} ({exc}); fix or delete the "
                              "file, then add the servers again.") from exc

    def find(self, name: str) -> RemoteServer | None:
        return next((s for s in self.servers() if s.name == name), None)

    def get(self, name: str) -> RemoteServer:
        server = self.find(name)
        if server is None:
            raise ConfigError(f"No server is called {name!r}; `haven-cli remote list` shows the servers you added.")
        return server

    def save(self, server: RemoteServer, key: str | None) -> str | None:
        """Add or replace ``server``; store ``key`` (None: no key, and any old one is removed). Returns where
        the key went, in words, or None without a key."""
        check_name(server.name)
        if not server.added:
            server = RemoteServer(server.name, server.url, server.models, now_iso())
        where = None
        store = self.key_store(server.name)
        if key:
            where = store.set(key)
        else:
            store.clear()
        servers = [s for s in self.servers() if s.name != server.name] + [server]
        self._write(servers)
        return where

    def remove(self, name: str) -> None:
        servers = self.servers()
        if not any(s.name == name for s in servers):
            raise ConfigError(f"No server is called {name!r}; `haven-cli remote list` shows the servers you added.")
        self.key_store(name).clear()
        self._write([s for s in servers if s.name != name])

    def key(self, name: str) -> str | None:
        return self.key_store(name).get()

    def _write(self, servers: list[RemoteServer]) -> None:
        payload = {"schema_version": SCHEMA_VERSION, "servers": [s.to_json() for s in servers]}
        try:
            write_atomically(self._file, json.dumps(payload, indent=2) + "\n")
        except OSError as exc:
            raise ConfigError(f"Haven could not save its list of servers to {self._file} "
                              f"({exc.strerror or exc}).") from exc
