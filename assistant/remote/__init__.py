"""Remote models: chat models served by another machine through an OpenAI-compatible API, with Haven's
safety system applied here exactly as for local models (docs/server.md).

* ``registry``: :class:`RemoteRegistry`, the servers the user added (``remotes.json``) and their keys;
* ``client``: :class:`OpenAIServer`, the HTTP calls and the sentence for every failure;
* ``engine``: :class:`RemoteEngine`, a remote model as a chat engine for :class:`~assistant.session.ChatSession`;
* :func:`add_server`: check a server (list its models) and save it.
"""

from __future__ import annotations

from assistant.errors import RemoteServerError
from assistant.remote.client import OpenAIServer, StreamPiece
from assistant.remote.engine import RemoteEngine
from assistant.remote.registry import (
    RemoteModel,
    RemoteRegistry,
    RemoteServer,
    check_name,
    normalise_url,
    split_model_id,
)

__all__ = [
    "OpenAIServer", "RemoteEngine", "RemoteModel", "RemoteRegistry", "RemoteServer", "StreamPiece", "add_server",
    "check_name", "list_server_models", "normalise_url", "open_engine", "split_model_id",
]


def list_server_models(name: str, url: str, key: str | None) -> tuple[str, list[RemoteModel]]:
    """The models a server lists, and the base URL that answered: ``url`` itself, or ``url + "/v1"`` when
    the user gave the server's root (``http://host:8080``) and only the ``/v1`` address answers."""
    url = normalise_url(url)
    try:
        return url, _models(name, url, key)
    except RemoteServerError as first:
        if url.endswith("/v1") or not ("HTTP 404" in str(first) or "/models" in str(first)):
            raise
        try:
            return url + "/v1", _models(name, url + "/v1", key)
        except RemoteServerError:
            raise first from None


def _models(name: str, url: str, key: str | None) -> list[RemoteModel]:
    server = OpenAIServer(name, url, key)
    try:
        return server.list_models()
    finally:
        server.close()


def add_server(registry: RemoteRegistry, name: str, url: str, key: str | None) -> tuple[RemoteServer, str | None]:
    """List the server's models (it must answer) and save it; returns it and where its key went."""
    check_name(name)
    base, models = list_server_models(name, url, key)
    server = RemoteServer(name, base, tuple(models))
    return server, registry.save(server, key)


def open_engine(registry: RemoteRegistry, model_id: str, *, default_context: int) -> RemoteEngine:
    """A :class:`RemoteEngine` for ``NAME:MODEL`` (the model need not be in the list saved when the server
    was added: the server decides)."""
    parts = split_model_id(model_id)
    if parts is None:
        raise ValueError(f"{model_id!r} is not a remote model id")
    name, model = parts
    server = registry.get(name)
    known = server.find(model)
    context = known.context_length if known is not None and known.context_length else default_context
    return RemoteEngine(OpenAIServer(name, server.url, registry.key(name)), model, context_length=context)
