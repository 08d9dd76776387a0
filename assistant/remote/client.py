"""Talking to an OpenAI-compatible server (llama.cpp's ``llama-server``, vLLM, Ollama, LM Studio...): the
one module that sends anything to a remote model's server, over ``httpx2``.

Every failure becomes a :class:`~assistant.errors.RemoteServerError` whose sentence names the server and
says what to do: unreachable, timed out, a 4xx or 5xx answer (with the server's own message), or a
stream Haven cannot read (not JSON, no choices, or cut off before its end).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from assistant.errors import RemoteServerError
from assistant.remote.registry import RemoteModel

__all__ = ["OpenAIServer", "StreamPiece"]

log = logging.getLogger(__name__)

CONNECT_SECONDS = 5.0
CANCEL_POLL_SECONDS = 0.1  # how soon Stop takes effect while the server has not sent anything
READ_SECONDS = 120.0  # between two pieces of a stream (a long prompt on a slow server takes a while)


@dataclass(frozen=True, slots=True)
class StreamPiece:
    """One chunk's content (``text``), thinking (``reasoning``), ``finish_reason`` and token ``usage``."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens)


def _context_length(entry: dict[str, Any]) -> int | None:
    found = entry.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    for value in (entry.get("max_model_len"), entry.get("context_length"), meta.get("n_ctx"),
                  meta.get("n_ctx_train")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class OpenAIServer:
    """One server: ``name`` (for sentences), its base URL and optional key."""

    def __init__(self, name: str, url: str, key: str | None = None, *, connect_seconds: float = CONNECT_SECONDS,
                 read_seconds: float = READ_SECONDS) -> None:
        self.name, self.url = name, url.rstrip("/")
        self.read_seconds = read_seconds
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx2.Client(headers=headers, trust_env=False, timeout=httpx2.Timeout(
            read_seconds, connect=connect_seconds))

    def close(self) -> None:
        self._client.close()

    # -- sentences --------------------------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> RemoteServerError:
        return RemoteServerError(f"Haven could not reach the server {self.name} at {self.url} ({exc}); check that "
                                 "it is running and that the address is right.")

    def _timed_out(self) -> RemoteServerError:
        return RemoteServerError(f"The server {self.name} did not answer within {self.read_seconds:g} seconds; it "
                                 "may be busy or stuck. Try again, or check the server.")

    def _refused(self, status: int, body: bytes) -> RemoteServerError:
        detail = _server_message(body)
        said = f": {detail}" if detail else ""
        if status in (401, 403):
            return RemoteServerError(f"The server {self.name} refused Haven's key (HTTP {status}{said}). Add the "
                                     f"server again with the right key: haven-cli remote add {self.name} URL "
                                     "--key-stdin.")
        if status == 404:
            return RemoteServerError(f"The server {self.name} answered HTTP 404{said}; the model or the address "
                                     "may be wrong (the base URL usually ends in /v1).")
        if status >= 500:
            return RemoteServerError(f"The server {self.name} failed with HTTP {status}{said}. Try again, or look "
                                     "at the server's log.")
        return RemoteServerError(f"The server {self.name} refused the request (HTTP {status}{said}).")

    def _broken(self, what: str) -> RemoteServerError:
        return RemoteServerError(f"The server {self.name} {what}; the part of the reply shown so far is kept, "
                                 "marked incomplete. Try again, or check the server.")

    # -- requests ---------------------------------------------------------------------------------

    def list_models(self) -> list[RemoteModel]:
        try:
            response = self._client.get(f"{self.url}/models")
        except httpx2.TimeoutException as exc:
            raise self._timed_out() from exc
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise self._refused(response.status_code, response.content)
        try:
            entries = response.json()["data"]
            models = [RemoteModel(str(e["id"]), _context_length(e)) for e in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteServerError(f"The server {self.name} at {self.url} did not answer /models as an "
                                    "OpenAI-compatible server does; check the base URL (it usually ends "
                                    "in /v1).") from exc
        return models

    def stream_chat(self, body: dict[str, Any], cancel: threading.Event) -> Iterator[StreamPiece]:
        """Stream a chat completion. The request runs on a thread of its own, so setting ``cancel`` ends the
        stream within a tenth of a second even while the server has not answered yet (a big model still
        reading a long prompt can take minutes); the abandoned request closes its connection as soon as the
        server sends anything, or at the read timeout."""
        handed: queue.SimpleQueue[StreamPiece | BaseException | None] = queue.SimpleQueue()
        left = threading.Event()  # the reader stopped listening: cancelled, or done with the reply

        def stopped() -> bool:
            return cancel.is_set() or left.is_set()

        worker = threading.Thread(target=self._stream_into, args=(body, handed, stopped), daemon=True,
                                  name="haven-remote-stream")
        worker.start()
        try:
            while True:
                try:
                    item = handed.get(timeout=CANCEL_POLL_SECONDS)
                except queue.Empty:
                    if cancel.is_set():
                        return
                    continue
                if item is None or cancel.is_set():
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            left.set()

    def _stream_into(self, body: dict[str, Any], handed: queue.SimpleQueue[StreamPiece | BaseException | None],
                     stopped: Callable[[], bool]) -> None:
        try:
            for piece in self._stream(body, stopped):
                handed.put(piece)
        except BaseException as exc:  # handed to the reader, who raises it on its own thread
            handed.put(exc)
        else:
            handed.put(None)

    def _stream(self, body: dict[str, Any], stopped: Callable[[], bool]) -> Iterator[StreamPiece]:
        try:
            with self._client.stream("POST", f"{self.url}/chat/completions",
                                     json={**body, "stream": True}) as response:
                if response.status_code >= 400:
                    raise self._refused(response.status_code, response.read())
                yield from self._pieces(response.iter_lines(), stopped)
        except httpx2.TimeoutException as exc:
            raise self._timed_out() from exc
        except (httpx2.RemoteProtocolError, httpx2.ReadError) as exc:
            raise self._broken("closed the connection in the middle of the reply") from exc
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _pieces(self, lines: Iterator[str], stopped: Callable[[], bool]) -> Iterator[StreamPiece]:
        finished = False
        for line in lines:
            if stopped():
                return
            if not line.startswith("data:"):
                continue  # comments, event names, keep-alives
            data = line[5:].strip()
            if data == "[DONE]":
                return
            piece = self._piece(data)
            finished = finished or piece.finish_reason is not None
            yield piece
        if not finished and not stopped():
            raise self._broken("ended the stream before the reply was finished")

    def _piece(self, data: str) -> StreamPiece:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise self._broken(f"sent a stream Haven could not read (not JSON: {data[:60]!r})") from exc
        if not isinstance(chunk, dict):
            raise self._broken("sent a stream Haven could not read (a chunk that is not an object)")
        if isinstance(chunk.get("error"), dict | str):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise self._broken(f"reported an error in the middle of the reply ({message})")
        usage = chunk.get("usage")
        counted = None
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            counted = (int(usage.get("prompt_tokens") or 0), int(usage["completion_tokens"]))
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise self._broken("sent a stream Haven could not read (a chunk without choices)")
        if not choices:
            return StreamPiece(usage=counted)
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise self._broken("sent a stream Haven could not read (a choice without a delta)")
        text, reasoning = delta.get("content"), delta.get("reasoning_content", delta.get("reasoning"))
        return StreamPiece(text=text if isinstance(text, str) else "",
                           reasoning=reasoning if isinstance(reasoning, str) else "",
                           finish_reason=choice.get("finish_reason"), usage=counted)


def _server_message(body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error", data.get("detail", data.get("message")))
        message = error.get("message") if isinstance(error, dict) else error
        return " ".join(str(message).split())[:200] if message else ""
    except (ValueError, AttributeError):
        return " ".join(body.decode("utf-8", "replace").split())[:200]
