"""Haven's safety policy: the built-in classifiers, the optional guard model, and the safety log.

Input: the newest message is judged alone and together with the previous user message (a request split
over two turns is judged whole). Output: the stream filter checks each sentence with the reply
classifier before it is shown, then the whole reply; the guard model, when enabled, gives its verdict on
the input and on the whole reply as well. Any block names a category and a stage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from assistant.chat import ChatMessage, Role
from assistant.safety.classifier import ClassifierScore, TextClassifier
from assistant.safety.guard_model import GuardModel
from assistant.safety.log import SafetyLog
from assistant.safety.policy import OutputGuard, Stage, Verdict
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT
from assistant.safety.stream import StreamFilter
from assistant.safety.taxonomy import input_notice, output_notice

__all__ = ["HavenSafetyPolicy"]

# A request judged together with the turn before it must clear a slightly higher bar: the earlier turn
# already passed on its own, and benign follow-ups are the common case.
CONTEXT_MARGIN = 0.05
GUARD_FAILED = "Haven's guard model could not give a verdict, so this was blocked to be safe. Try again."


class HavenSafetyPolicy:
    name = "haven"
    system_prompt = SAFETY_SYSTEM_PROMPT

    def __init__(self, input_model: TextClassifier, output_model: TextClassifier, *,
                 guard: GuardModel | None = None, log: SafetyLog | None = None) -> None:
        self.input_model = input_model
        self.output_model = output_model
        self.guard = guard
        self.log = log
        self.last_check_ms = 0.0

    def _record(self, stage: Stage, verdict: Verdict, classifier: str, score: float | None) -> None:
        if self.log is not None:
            self.log.record(stage.value, verdict.allowed, verdict.category, classifier, score)

    # -- input ---------------------------------------------------------------------------------

    def score_input(self, history: Sequence[ChatMessage], message: str) -> ClassifierScore:
        alone = self.input_model.score(message)
        previous = next((m.content for m in reversed(history) if m.role is Role.USER), None)
        if previous is None or alone.blocked:
            return alone
        # The encoder reads the pair only where the n-grams alone would block it: most follow-ups are
        # harmless, and this keeps the check of a conversation at the cost of one encoder pass.
        together = self.input_model.score(previous[-600:] + "\n" + message,
                                          encoder_gate=self.input_model.lowest_threshold + CONTEXT_MARGIN)
        if together.harmful >= together.threshold + CONTEXT_MARGIN:
            return together
        return alone

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict:
        started = time.perf_counter()
        score = self.score_input(history, message)
        self.last_check_ms = (time.perf_counter() - started) * 1000
        if score.blocked:
            verdict = Verdict(False, Stage.INPUT, score.category, input_notice(score.category))
            self._record(Stage.INPUT, verdict, self.input_model.name, score.harmful)
            return verdict
        if self.guard is not None:
            verdict = self._guard_verdict([*history, ChatMessage(Role.USER, message)], Stage.INPUT)
            if not verdict.allowed:
                return verdict
        verdict = Verdict.allow(Stage.INPUT)
        self._record(Stage.INPUT, verdict, self.input_model.name, score.harmful)
        return verdict

    # -- output --------------------------------------------------------------------------------

    def check_output_text(self, text: str) -> tuple[Verdict, ClassifierScore]:
        score = self.output_model.score(text)
        if score.blocked:
            return Verdict(False, Stage.OUTPUT, score.category, output_notice(score.category)), score
        return Verdict.allow(Stage.OUTPUT), score

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        def span(text: str) -> Verdict:
            verdict, score = self.check_output_text(text)
            if not verdict.allowed:
                self._record(Stage.OUTPUT, verdict, self.output_model.name, score.harmful)
            return verdict

        def whole(text: str) -> Verdict:
            verdict, score = self.check_output_text(text)
            self._record(Stage.OUTPUT, verdict, self.output_model.name, score.harmful)
            if verdict.allowed and self.guard is not None:
                conversation = [*history, ChatMessage(Role.USER, message), ChatMessage(Role.ASSISTANT, text)]
                return self._guard_verdict(conversation, Stage.OUTPUT)
            return verdict

        return StreamFilter(span, whole)

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
