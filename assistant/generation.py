"""One reply's raw text on its way to the screen: sorted into thinking and answer, each checked by its
own output guard before any of it is released.

:class:`FilteredReply` is fed the engine's pieces in order and returns the events to yield
(:class:`~assistant.events.ReasoningReleased`, :class:`~assistant.events.ReasoningDone`,
:class:`~assistant.events.TextReleased`). The thinking gets an output guard of its own, started when the
first thinking text arrives and finished (its whole-text check included) when the thinking ends, so the
thinking is complete on screen before the answer begins; the answer has the guard every reply always had.
A block from either stops the turn: :attr:`FilteredReply.block` is set and nothing more is released.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from assistant.chat import ChatMessage
from assistant.events import ReasoningDone, ReasoningReleased, TextReleased, TurnEvent
from assistant.reasoning import Channel, ReasoningSplitter, Segment
from assistant.safety import GuardStep, OutputGuard, SafetyPolicy, Verdict, guarded_output_guard

__all__ = ["FilteredReply"]


class FilteredReply:
    """Splits and filters one reply. ``opened``: the prompt already opened the thinking."""

    def __init__(self, policy: SafetyPolicy, history: Sequence[ChatMessage], message: str, *,
                 opened: bool = False) -> None:
        self._policy, self._history, self._message = policy, list(history), message
        self._answer_guard = guarded_output_guard(policy, history, message)
        self._reasoning_guard: OutputGuard | None = None
        self._splitter = ReasoningSplitter(opened=opened)
        self._reasoning_started_at: float | None = None
        self.shown: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_ms: float | None = None
        self.block: Verdict | None = None

    @property
    def text(self) -> str:
        return "".join(self.shown)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    def reasoning_duration_ms(self) -> float | None:
        """How long the thinking took: to its end, or until now when it was cut short; None without any."""
        if self.reasoning_ms is not None or self._reasoning_started_at is None:
            return self.reasoning_ms
        return (time.perf_counter() - self._reasoning_started_at) * 1000.0 if self.reasoning else None

    def feed(self, piece: str) -> list[TurnEvent]:
        """Take one raw piece; return what may be shown now."""
        return self._segments(self._splitter.feed(piece))

    def finish(self) -> list[TurnEvent]:
        """The model finished: release what was held back after the final checks, or block."""
        events = self._segments(self._splitter.finish())
        if self.block is None:
            self._take(self._answer_guard.finish(), Channel.ANSWER, events)
        return events

    def _segments(self, segments: list[Segment]) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        for segment in segments:
            if self.block is not None:
                break
            if segment.ends_reasoning:
                self._end_reasoning(events)
            elif segment.channel is Channel.REASONING:
                self._take(self._reasoning_guard_started().feed(segment.text), Channel.REASONING, events)
            else:
                self._take(self._answer_guard.feed(segment.text), Channel.ANSWER, events)
        return events

    def _reasoning_guard_started(self) -> OutputGuard:
        if self._reasoning_guard is None:
            self._reasoning_started_at = time.perf_counter()
            self._reasoning_guard = guarded_output_guard(self._policy, self._history, self._message)
        return self._reasoning_guard

    def _end_reasoning(self, events: list[TurnEvent]) -> None:
        if self._reasoning_guard is None or self._reasoning_started_at is None:
            return  # empty thinking (<think></think>): nothing was shown, nothing to check
        self._take(self._reasoning_guard.finish(), Channel.REASONING, events)
        if self.block is None:
            self.reasoning_ms = (time.perf_counter() - self._reasoning_started_at) * 1000.0
            events.append(ReasoningDone(self.reasoning_ms))

    def _take(self, step: GuardStep, channel: Channel, events: list[TurnEvent]) -> None:
        if step.release:
            if channel is Channel.REASONING:
                self.reasoning.append(step.release)
                events.append(ReasoningReleased(step.release))
            else:
                self.shown.append(step.release)
                events.append(TextReleased(step.release))
        if step.verdict is not None and not step.verdict.allowed:
            self.block = step.verdict
