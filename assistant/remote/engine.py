"""A remote model as a :class:`~assistant.session.ChatEngine`: :class:`RemoteEngine` streams from an
OpenAI-compatible server, so a :class:`~assistant.session.ChatSession` runs exactly the turn it runs for a
local model: Haven's safety prompt first, the input check before anything is sent, the output filter on
the streamed reply before a word is shown.

The prompt's size is estimated (about 3 characters a token, on the safe side: the server's tokenizer is
not here), against the context length the server reported when it was added, or the user's setting.
Thinking that the server sends apart (``reasoning_content``) is put back between ``<think>`` tags, so the
session sorts and filters it as it does a local reasoning model's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from assistant.chat import ChatMessage, StopReason
from assistant.engine import GenerationStats, ModelInfo, SamplingParams
from assistant.remote.client import OpenAIServer

__all__ = ["RemoteEngine"]

CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 8


class RemoteEngine:
    """The model ``model`` on ``server``. Close it when done (its HTTP connections)."""

    def __init__(self, server: OpenAIServer, model: str, *, context_length: int) -> None:
        self.server = server
        self.model_name = model
        self._info = ModelInfo(
            path=Path(f"{server.name}:{model}"), name=model, architecture="remote", size_bytes=0,
            context_length=context_length, trained_context_length=context_length, layer_count=0, gpu_layers=0,
            threads=0, chat_format="remote", gpu_offload_supported=False,
        )

    @property
    def model(self) -> ModelInfo | None:
        return self._info

    def close(self) -> None:
        self.server.close()

    def count_chat_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content) // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE for m in messages)

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        """Nothing to do: the server keeps its own cache."""

    def _body(self, messages: Sequence[ChatMessage], params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name, "messages": [{"role": m.role.value, "content": m.content} for m in messages],
            "temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens,
            "stream_options": {"include_usage": True},
        }
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams,
                 cancel: threading.Event | None = None) -> Generator[str | GenerationStats, None, None]:
        stop = cancel if cancel is not None else threading.Event()
        started = time.perf_counter()
        first: float | None = None
        last = started
        pieces = 0
        usage: tuple[int, int] | None = None
        reason = StopReason.END
        thinking = False
        for piece in self.server.stream_chat(self._body(messages, params), stop):
            usage = piece.usage or usage
            text = ""
            if piece.reasoning:
                text += ("" if thinking else "<think>") + piece.reasoning
                thinking = True
            if piece.text:
                text += ("</think>" if thinking else "") + piece.text
                thinking = False
            if text:
                now = time.perf_counter()
                first = first if first is not None else now
                last, pieces = now, pieces + 1
                yield text
            if piece.finish_reason == "length":
                reason = StopReason.LENGTH
        if thinking:
            yield "</think>"
        if stop.is_set():
            reason = StopReason.CANCELLED
        completion = usage[1] if usage else pieces
        decode_s = last - first if first is not None else 0.0
        yield GenerationStats(
            prompt_tokens=usage[0] if usage else self.count_chat_tokens(messages), reused_prompt_tokens=0,
            completion_tokens=completion, prompt_eval_ms=((first or last) - started) * 1000.0,
            decode_ms=decode_s * 1000.0,
            tokens_per_second=(completion - 1) / decode_s if decode_s > 0 and completion > 1 else 0.0,
            started_at=started, first_token_at=first, stop_reason=reason, seed=params.seed or 0,
        )
