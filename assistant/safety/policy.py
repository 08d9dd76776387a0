"""The safety seam: the interface every chat turn goes through, and the fail-closed wrappers.

``guarded_input_check`` and ``guarded_output_guard`` turn any exception inside a check into a blocking
verdict with a notice that says the check could not run: a check that fails never lets text through.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from assistant.chat import ChatMessage
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT

__all__ = [
    "GuardStep",
    "OutputGuard",
    "PassThroughPolicy",
    "SafetyPolicy",
    "Stage",
    "Verdict",
    "guarded_input_check",
    "guarded_output_guard",
]

log = logging.getLogger(__name__)


class Stage(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    stage: Stage
    category: str | None = None  # "S1".."S14" when blocked for a hazard; None for a failed check
    notice: str = ""             # what the user sees instead of the blocked text

    @classmethod
    def allow(cls, stage: Stage) -> Verdict:
        return cls(True, stage)


@dataclass(frozen=True, slots=True)
class GuardStep:
    """What the guard lets through now. ``verdict`` set means blocked: stop generating, show the notice."""

    release: str = ""
    verdict: Verdict | None = None


class OutputGuard(Protocol):
    def feed(self, text: str) -> GuardStep:
        """Take newly generated text; return what may be shown now (it may hold some back)."""
        ...

    def finish(self) -> GuardStep:
        """The reply ended: check the whole reply and release what was held back, or block."""
        ...


class SafetyPolicy(Protocol):
    name: str
    system_prompt: str

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict: ...

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard: ...


CHECK_FAILED_INPUT = (
    "Haven's safety check could not run, so this message was not sent to the model. "
    "Try again; if it keeps happening, restart Haven."
)
CHECK_FAILED_OUTPUT = (
    "Haven's safety check could not run, so the rest of this reply is not shown. "
    "Try again; if it keeps happening, restart Haven."
)


def guarded_input_check(policy: SafetyPolicy, history: Sequence[ChatMessage], message: str) -> Verdict:
    try:
        verdict = policy.check_input(history, message)
        if not isinstance(verdict, Verdict):
            raise TypeError(f"input check returned {type(verdict).__name__}, not a Verdict")
        return verdict
    except Exception:
        log.exception("input safety check failed; blocking (fail closed)")
        return Verdict(False, Stage.INPUT, None, CHECK_FAILED_INPUT)


class _FailClosedGuard:
    """Wraps a guard so that an exception in it becomes a block, and nothing is released after one."""

    def __init__(self, inner: OutputGuard | None) -> None:
        self._inner = inner
        self._failed = inner is None

    def _step(self, call: str, text: str = "") -> GuardStep:
        if self._failed or self._inner is None:
            return GuardStep("", Verdict(False, Stage.OUTPUT, None, CHECK_FAILED_OUTPUT))
        try:
            step = self._inner.feed(text) if call == "feed" else self._inner.finish()
            if not isinstance(step, GuardStep):
                raise TypeError(f"output guard returned {type(step).__name__}, not a GuardStep")
            return step
        except Exception:
            log.exception("output safety check failed; blocking (fail closed)")
            self._failed = True
            return GuardStep("", Verdict(False, Stage.OUTPUT, None, CHECK_FAILED_OUTPUT))

    def feed(self, text: str) -> GuardStep:
        return self._step("feed", text)

    def finish(self) -> GuardStep:
        return self._step("finish")


def guarded_output_guard(policy: SafetyPolicy, history: Sequence[ChatMessage], message: str) -> OutputGuard:
    try:
        return _FailClosedGuard(policy.output_guard(history, message))
    except Exception:
        log.exception("output guard could not start; blocking (fail closed)")
        return _FailClosedGuard(None)


class _ReleaseEverything:
    def feed(self, text: str) -> GuardStep:
        return GuardStep(text)

    def finish(self) -> GuardStep:
        return GuardStep()


class PassThroughPolicy:
    """Checks nothing but keeps the safety system prompt: the seam before the real checks exist."""

    name = "pass-through"
    system_prompt = SAFETY_SYSTEM_PROMPT

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict:
        return Verdict.allow(Stage.INPUT)

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        return _ReleaseEverything()
