"""Haven's safety policy: the built-in classifier, the optional guard model, and the safety log.

Input: the newest message is judged alone and together with the previous user message (a request split
over two turns is judged whole). Output: the stream filter hands each new span of the reply to a
:class:`~assistant.safety.judge.ReplyReader`, which judges the reply so far with the request it answers,
before any of the span is shown; then the whole reply. A reply to a request the input check would refuse
is blocked unless it opens by declining, except where the guard model cleared that request. The guard
model, when installed and switched on, is a second stage: it decides the cases the built-in classifier
is unsure of (a score from ``UNSURE_BELOW`` under the threshold to half-way between the threshold and 1),
input and reply alike. Any block names a category and a stage.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from assistant.chat import ChatMessage, Role
from assistant.safety.guard_model import GuardModel
from assistant.safety.judge import SafetyJudge, Score
from assistant.safety.log import SafetyLog
from assistant.safety.policy import OutputGuard, Stage, Verdict
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT
from assistant.safety.stream import StreamFilter
from assistant.safety.taxonomy import input_notice, output_notice

__all__ = ["CONTEXT_MARGIN", "UNSURE_BELOW", "HavenSafetyPolicy"]

# A request judged together with the turn before it must clear a slightly higher bar: the earlier turn
# already passed on its own, and benign follow-ups are the common case.
CONTEXT_MARGIN = 0.05
# Scores from this far below the threshold up to half-way between it and 1 are "unsure": they go to the
# guard model when one is on. Below, the classifier allows; above, it blocks.
UNSURE_BELOW = 0.3
GUARD_FAILED = "Haven's guard model could not give a verdict, so this was blocked to be safe. Try again."


class HavenSafetyPolicy:
    name = "haven"
    system_prompt = SAFETY_SYSTEM_PROMPT

    def __init__(self, judge: SafetyJudge, *, guard: GuardModel | None = None, log: SafetyLog | None = None) -> None:
        self.judge = judge
        self.guard = guard
        self.log = log
        self.last_check_ms = 0.0
        # Requests the guard model judged safe (the last few): their replies are not held to the
        # built-in classifier's reading of the request (``SafetyJudge.reply_reader``).
        self._cleared_by_guard: deque[str] = deque(maxlen=8)

    def _record(self, stage: Stage, verdict: Verdict, classifier: str, score: float | None) -> None:
        if self.log is not None:
            self.log.record(stage.value, verdict.allowed, verdict.category, classifier, score)

    def _unsure(self, score: Score) -> bool:
        high = score.threshold + (1.0 - score.threshold) / 2
        return self.guard is not None and score.threshold - UNSURE_BELOW <= score.harmful < high

    # -- input ---------------------------------------------------------------------------------

    def score_input(self, history: Sequence[ChatMessage], message: str) -> Score:
        alone = self.judge.score_prompt(message)
        previous = next((m.content for m in reversed(history) if m.role is Role.USER), None)
        if previous is None or alone.blocked:
            return alone
        together = self.judge.score_prompt(previous[-600:] + "\n" + message, threshold_shift=CONTEXT_MARGIN)
        return together if together.blocked else alone

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict:
        started = time.perf_counter()
        score = self.score_input(history, message)
        self.last_check_ms = (time.perf_counter() - started) * 1000
        if self._unsure(score):
            verdict = self._guard_verdict([*history, ChatMessage(Role.USER, message)], Stage.INPUT)
            if verdict.allowed:
                self._cleared_by_guard.append(message)
            return verdict
        if score.blocked:
            verdict = Verdict(False, Stage.INPUT, score.category, input_notice(score.category))
        else:
            verdict = Verdict.allow(Stage.INPUT)
        self._record(Stage.INPUT, verdict, "haven", score.harmful)
        return verdict

    # -- output --------------------------------------------------------------------------------

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        reader = self.judge.reply_reader(message, request_cleared=message in self._cleared_by_guard)

        def verdict_of(score: Score, text: str, final: bool) -> Verdict:
            if final and self._unsure(score):
                conversation = [*history, ChatMessage(Role.USER, message), ChatMessage(Role.ASSISTANT, text)]
                return self._guard_verdict(conversation, Stage.OUTPUT)
            if score.blocked:
                verdict = Verdict(False, Stage.OUTPUT, score.category, output_notice(score.category))
                self._record(Stage.OUTPUT, verdict, "haven", score.harmful)
                return verdict
            if final:
                self._record(Stage.OUTPUT, Verdict.allow(Stage.OUTPUT), "haven", score.harmful)
            return Verdict.allow(Stage.OUTPUT)

        return StreamFilter(lambda span: verdict_of(reader.add(span), span, final=False),
                            lambda whole: verdict_of(reader.current(), whole, final=True))

    # -- guard model ---------------------------------------------------------------------------

    def _guard_verdict(self, conversation: list[ChatMessage], stage: Stage) -> Verdict:
        assert self.guard is not None
        answer = self.guard.assess(conversation)
        if answer is None:
            verdict = Verdict(False, stage, None, GUARD_FAILED)
        elif answer.safe:
            verdict = Verdict.allow(stage)
        else:
            code = answer.categories[0]
            notice = input_notice(code) if stage is Stage.INPUT else output_notice(code)
            verdict = Verdict(False, stage, code, notice)
        self._record(stage, verdict, self.guard.name, None)
        return verdict
