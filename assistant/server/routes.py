"""The HTTP side of ``haven-cli serve``: a Starlette application with ``GET /health``, ``GET /v1/models``
and ``POST /v1/chat/completions`` (a JSON response, or server-sent events with ``"stream": true``).

Every ``/v1`` request needs ``Authorization: Bearer TOKEN`` (401 otherwise, in OpenAI's error shape);
``/health`` answers without it and says nothing about the conversations. A client that disconnects
(from a stream or while waiting for a whole response) sets its request's cancel event, so its turn is
skipped if still queued and stopped within a token if running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from assistant.server.protocol import ApiError, ChatRequest, Completion, chunk, completion, parse_chat_request
from assistant.server.service import ApiEvent, ApiService, Failed, Finished, Released

__all__ = ["create_app"]

MAX_BODY = 8 * 1024 * 1024  # a request body larger than this is refused (413) before it is read whole


def _error(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


class _Events:
    """The worker's events for one request, handed to the event loop as they come."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[ApiEvent] = asyncio.Queue()
        self.cancel = threading.Event()

    def emit(self, event: ApiEvent) -> None:  # on the worker thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event)


async def _until_disconnected(request: Request, events: _Events) -> None:
    """Wait for the client to go away (the body is already read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            events.cancel.set()
            return


def _sse(body: dict[str, object] | str) -> str:
    return f"data: {body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)}\n\n"


def create_app(service: ApiService, token: Callable[[], str]) -> Starlette:
    """The application; ``token`` gives the bearer token requests must carry (read once per request)."""

    def authorise(request: Request) -> None:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), token().encode()):
            raise ApiError(401, "The API token is missing or wrong. Send it as 'Authorization: Bearer TOKEN'; "
                           "Haven's settings show it.", kind="invalid_request_error", code="invalid_api_key")

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": service.model_id})

    async def models(request: Request) -> Response:
        try:
            authorise(request)
        except ApiError as exc:
            return _error(exc)
        return JSONResponse({"object": "list", "data": [
            {"id": service.model_id, "object": "model", "created": int(time.time()), "owned_by": "haven"}]})

    async def chat(request: Request) -> Response:
        try:
            authorise(request)
            parsed = parse_chat_request(await _body(request))
            if parsed.model != service.model_id:
                raise ApiError(404, f"The model {parsed.model!r} is not served here; this server serves "
                               f"{service.model_id!r} (GET /v1/models).", code="model_not_found", param="model")
        except ApiError as exc:
            return _error(exc)
        events = _Events(asyncio.get_running_loop())
        service.submit(parsed, events.cancel, events.emit)
        if parsed.stream:
            return await _stream(request, parsed, events, service.model_id)
        return await _whole(request, events, service.model_id)

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ])


async def _body(request: Request) -> object:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(413, f"The request is larger than {MAX_BODY // (1024 * 1024)} MB.")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"The request is larger than {MAX_BODY // (1024 * 1024)} MB.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "The request body is not valid JSON.") from exc


async def _next(events: _Events, watcher: asyncio.Task[None]) -> ApiEvent | None:
    """The next event, or None when the client went away first (a request skipped in the queue never
    sends one)."""
    getter = asyncio.ensure_future(events.queue.get())
    done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


def _failure(event: Failed) -> JSONResponse:
    return _error(ApiError(event.status, event.message,
                           kind="server_error" if event.status >= 500 else "invalid_request_error"))


async def _whole(request: Request, events: _Events, model: str) -> Response:
    watcher = asyncio.create_task(_until_disconnected(request, events))
    try:
        while True:
            event = await _next(events, watcher)
            if event is None:
                return Response(status_code=499)  # nobody is listening
            if isinstance(event, Failed):
                return _failure(event)
            if isinstance(event, Finished):
                return JSONResponse(completion(Completion.new(model), event.content, event.finish_reason,
                                               event.prompt_tokens, event.completion_tokens, event.reasoning))
    finally:
        watcher.cancel()
        events.cancel.set()  # a no-op once finished; stops the turn when this handler is cancelled


async def _stream(request: Request, parsed: ChatRequest, events: _Events, model: str) -> Response:
    # The first event decides the response: an error before any text is an HTTP error, as without stream.
    # Until it comes (the request may wait in the queue), a disconnect is watched here; after, the
    # streaming response watches for it itself.
    watcher = asyncio.create_task(_until_disconnected(request, events))
    try:
        found = await _next(events, watcher)
    finally:
        watcher.cancel()
    if found is None:
        events.cancel.set()
        return Response(status_code=499)
    if isinstance(found, Failed):
        return _failure(found)
    first: ApiEvent = found
    ids = Completion.new(model)

    async def body() -> AsyncIterator[str]:
        try:
            yield _sse(chunk(ids, {"role": "assistant", "content": ""}))
            event = first
            while True:
                if isinstance(event, Released):
                    yield _sse(chunk(ids, {"reasoning_content" if event.reasoning else "content": event.text}))
                elif isinstance(event, Failed):
                    yield _sse({"error": {"message": event.message, "type": "server_error", "code": None}})
                    break
                else:
                    if event.notice:
                        yield _sse(chunk(ids, {"content": event.notice}))
                    yield _sse(chunk(ids, {}, event.finish_reason))
                    if parsed.include_usage:
                        yield _sse(chunk(ids, {}, usage=(event.prompt_tokens, event.completion_tokens)))
                    break
                event = await events.queue.get()
            yield _sse("[DONE]")
        finally:
            events.cancel.set()  # the client went away (this generator was cancelled) or the turn is over

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
