"""The OpenAI chat-completions wire format, both ways: a request body read into a :class:`ChatRequest`
(or an :class:`ApiError` saying what is wrong with it), and the response objects and stream chunks built
from a turn's released text.

Only text is accepted: a message's ``content`` is a string or a list of ``{"type": "text"}`` parts.
``system`` and ``developer`` messages become the user's own instructions (after Haven's safety prompt,
never replacing it); ``user`` and ``assistant`` messages are the history; the last message must be the
user's. Fields Haven does not use (``n`` above 1, tools, images) are refused with a sentence rather than
silently ignored; unknown fields are ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from assistant.chat import StopReason

__all__ = ["ApiError", "ChatRequest", "Completion", "chunk", "completion", "error_body", "parse_chat_request"]

MAX_STOPS = 4  # as OpenAI's API


class ApiError(Exception):
    """A request Haven refuses: the HTTP status, OpenAI's error ``type``/``code``, and a sentence."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict[str, object]:
        return error_body(self.message, kind=self.kind, code=self.code, param=self.param)


def error_body(message: str, *, kind: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One ``POST /v1/chat/completions``: the history (role, text) before the last user message."""

    model: str
    history: tuple[tuple[str, str], ...]
    message: str
    instructions: str
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"Message {index} has a part that is not text; Haven's API takes text only.",
                               param=f"messages[{index}].content")
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"Message {index}'s content must be a string or a list of text parts.",
                   param=f"messages[{index}].content")


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"{name} must be a number.", param=name)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low:g} and {high:g}.", param=name)
    return float(value)


def _whole(body: dict[str, Any], name: str, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ApiError(400, f"{name} must be a whole number of at least {low}.", param=name)
    return value


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > MAX_STOPS:
        raise ApiError(400, f"stop must be a string or a list of at most {MAX_STOPS} strings.", param="stop")
    return tuple(s for s in stops if s)


def _messages(value: Any) -> tuple[list[tuple[str, str]], str, str]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list.", param="messages")
    instructions: list[str] = []
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise ApiError(400, f"Message {index} must be an object.", param=f"messages[{index}]")
        role = message.get("role")
        text = _text(message.get("content"), index)
        if role in ("system", "developer"):
            instructions.append(text)
        elif role in ("user", "assistant"):
            turns.append((str(role), text))
        else:
            raise ApiError(400, f"Message {index} has the role {role!r}; Haven's API takes system, developer, "
                           "user and assistant messages.", param=f"messages[{index}].role")
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "The last message must be the user's (role \"user\").", param="messages")
    if not turns[-1][1].strip():
        raise ApiError(400, "The last message is empty; send some text.", param="messages")
    return turns[:-1], turns[-1][1], "\n\n".join(t for t in instructions if t.strip())


def parse_chat_request(body: Any) -> ChatRequest:
    """Read a request body (parsed JSON) or raise :class:`ApiError` with a sentence."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required: use the id that GET /v1/models lists.", param="model")
    if body.get("n") not in (None, 1):
        raise ApiError(400, "Haven's API writes one choice per request; leave n at 1.", param="n")
    if body.get("tools") or body.get("functions"):
        raise ApiError(400, "Haven's API does not call tools; send the request without tools.", param="tools")
    history, message, instructions = _messages(body.get("messages"))
    options = body.get("stream_options")
    max_tokens = _whole(body, "max_completion_tokens", 1)
    return ChatRequest(
        model=model, history=tuple(history), message=message, instructions=instructions,
        stream=bool(body.get("stream", False)),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        max_tokens=max_tokens if max_tokens is not None else _whole(body, "max_tokens", 1),
        temperature=_number(body, "temperature", 0.0, 2.0), top_p=_number(body, "top_p", 0.0, 1.0),
        seed=_whole(body, "seed", -(2**63)), stop=_stops(body.get("stop")),
    )


FINISH_REASONS = {StopReason.END: "stop", StopReason.LENGTH: "length", StopReason.BLOCKED: "content_filter",
                  StopReason.CANCELLED: "stop"}


@dataclass(frozen=True, slots=True)
class Completion:
    """The ids every object of one response shares."""

    model: str
    id: str = ""
    created: int = 0

    @classmethod
    def new(cls, model: str) -> Completion:
        return cls(model, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()))


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion(ids: Completion, content: str, finish_reason: str, prompt_tokens: int, completion_tokens: int,
               reasoning: str = "") -> dict[str, object]:
    """The whole response of a request without ``stream``."""
    message: dict[str, object] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": ids.id, "object": "chat.completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": _usage(prompt_tokens, completion_tokens),
    }


def chunk(ids: Completion, delta: dict[str, str], finish_reason: str | None = None,
          usage: tuple[int, int] | None = None) -> dict[str, object]:
    """One ``chat.completion.chunk``; with ``usage`` and no delta, the final usage-only chunk."""
    body: dict[str, object] = {"id": ids.id, "object": "chat.completion.chunk", "created": ids.created,
                               "model": ids.model}
    if usage is not None:
        body["choices"] = []
        body["usage"] = _usage(*usage)
    else:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    return body
