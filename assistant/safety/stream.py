"""The output filter over a streaming reply: text is shown only after it has been checked.

Generated text is held back until a sentence ends (``.``, ``!``, ``?`` followed by a space, or a line
break) and at least ``min_span`` characters are pending (a lone "Sure." waits for the next sentence), or
until ``max_hold`` characters have gathered without an end; that span is checked and released only if it
passes. The span check keeps its own memory of the reply so far (a
:class:`~assistant.safety.judge.ReplyReader` judges the reply as a whole, with its request), so each span
is read once. A failed check blocks: nothing of the span is released and the guard stays blocked.
``finish`` checks the rest, then the whole reply. Display lags generation by at most one sentence.

Invariant (property-tested): ``released + withheld == generated`` at every step, and no text of a
blocked span is ever released.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from assistant.safety.policy import GuardStep, Verdict

__all__ = ["StreamFilter"]

_BOUNDARY = re.compile(r"[.!?…。！？](?=\s)|[。！？]|\n")
MIN_SPAN = 60  # as ``features.reply_spans`` cuts replies for training


class StreamFilter:
    """An :class:`~assistant.safety.policy.OutputGuard` built on a span check and a whole-reply check."""

    def __init__(self, check_span: Callable[[str], Verdict], check_whole: Callable[[str], Verdict],
                 *, max_hold: int = 300, min_span: int = MIN_SPAN) -> None:
        self._check_span = check_span
        self._check_whole = check_whole
        self._max_hold = max_hold
        self._min_span = min_span
        self._generated = ""
        self._released = 0          # length of the released prefix of _generated
        self.blocked: Verdict | None = None

    @property
    def generated(self) -> str:
        return self._generated

    @property
    def released(self) -> str:
        return self._generated[: self._released]

    @property
    def withheld(self) -> str:
        return self._generated[self._released :]

    def _cut(self, pending: str, final: bool) -> int:
        """How much of ``pending`` can be checked now: up to its last sentence end, or all when forced."""
        if final:
            return len(pending)
        last = None
        for match in _BOUNDARY.finditer(pending):
            last = match.end()
        if last is not None and last >= min(self._min_span, self._max_hold):
            return last
        return len(pending) if len(pending) >= self._max_hold else 0

    def _release(self, final: bool) -> GuardStep:
        if self.blocked is not None:
            return GuardStep("", self.blocked)
        pending = self.withheld
        cut = self._cut(pending, final)
        if cut == 0:
            return GuardStep("")
        span = pending[:cut]
        verdict = self._check_span(span) if span.strip() else None
        if verdict is not None and not verdict.allowed:
            self.blocked = verdict
            return GuardStep("", verdict)
        self._released += cut
        return GuardStep(span)

    def feed(self, text: str) -> GuardStep:
        self._generated += text  # kept (withheld) even after a block, so the accounting stays whole
        return self._release(final=False)

    def finish(self) -> GuardStep:
        step = self._release(final=True)
        if step.verdict is not None:
            return step
        whole = self._check_whole(self._generated) if self._generated.strip() else None
        if whole is not None and not whole.allowed:
            self.blocked = whole
            return GuardStep("", whole)
        return step
