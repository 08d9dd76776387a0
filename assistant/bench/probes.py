"""Measuring instruments for ``haven-cli bench``: they wrap the real parts and only take times.

* :class:`TimedPolicy` wraps a safety policy and records how long each input check, output-guard
  creation, ``feed`` and ``finish`` takes, so the safety system's share of a turn can be reported.
* :class:`TokenClock` wraps the engine and records when the chat session takes each generated piece,
  so the speed of the 50th and the 1,000th token of one long reply can be compared.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

from assistant.chat import ChatMessage
from assistant.engine import Engine, GenerationStats, ModelInfo, SamplingParams
from assistant.safety import GuardStep, OutputGuard, SafetyPolicy, Verdict

__all__ = ["SafetyTimes", "TimedPolicy", "TokenClock", "percentile", "tokens_per_second_near"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class SafetyTimes:
    """Milliseconds spent in each kind of safety call."""

    input_ms: list[float] = field(default_factory=list)
    output_ms: list[float] = field(default_factory=list)   # guard creation, every feed and finish
    finish_ms: list[float] = field(default_factory=list)   # the whole-reply check alone

    def total_ms(self) -> float:
        return sum(self.input_ms) + sum(self.output_ms)


class _TimedGuard:
    def __init__(self, inner: OutputGuard, times: SafetyTimes) -> None:
        self._inner = inner
        self._times = times

    def feed(self, text: str) -> GuardStep:
        started = time.perf_counter()
        try:
            return self._inner.feed(text)
        finally:
            self._times.output_ms.append((time.perf_counter() - started) * 1000.0)

    def finish(self) -> GuardStep:
        started = time.perf_counter()
        try:
            return self._inner.finish()
        finally:
            elapsed = (time.perf_counter() - started) * 1000.0
            self._times.output_ms.append(elapsed)
            self._times.finish_ms.append(elapsed)


class TimedPolicy:
    """A :class:`SafetyPolicy` that delegates every call to ``inner`` and times it."""

    def __init__(self, inner: SafetyPolicy) -> None:
        self.inner = inner
        self.name = inner.name
        self.system_prompt = inner.system_prompt
        self.times = SafetyTimes()

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict:
        started = time.perf_counter()
        try:
            return self.inner.check_input(history, message)
        finally:
            self.times.input_ms.append((time.perf_counter() - started) * 1000.0)

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        started = time.perf_counter()
        try:
            return _TimedGuard(self.inner.output_guard(history, message), self.times)
        finally:
            self.times.output_ms.append((time.perf_counter() - started) * 1000.0)


class TokenClock:
    """A :class:`~assistant.session.ChatEngine` around the real engine, noting when each piece is taken from it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.piece_times: list[float] = []

    @property
    def model(self) -> ModelInfo | None:
        return self._engine.model

    def count_chat_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self._engine.count_chat_tokens(messages)

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        self._engine.prefill(messages)

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams,
                 cancel: threading.Event | None = None) -> Generator[str | GenerationStats, None, None]:
        self.piece_times = []
        inner = self._engine.generate(messages, params, cancel)
        try:
            for item in inner:
                if isinstance(item, str):
                    self.piece_times.append(time.perf_counter())
                yield item
        finally:
            inner.close()


def tokens_per_second_near(times: Sequence[float], index: int, half_window: int = 25) -> float:
    """Decode speed around the ``index``-th piece: the inverse of the median gap between pieces nearby."""
    low, high = max(1, index - half_window), min(len(times), index + half_window)
    gaps = [times[i] - times[i - 1] for i in range(low, high)]
    gaps = [g for g in gaps if g > 0]
    return 1.0 / statistics.median(gaps) if gaps else 0.0
