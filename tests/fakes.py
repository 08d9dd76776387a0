"""Test doubles that are real implementations of Haven's interfaces, not mocks.

mypy checks this module (``[tool.mypy] files``): the block at the end proves each double implements the
Protocol it stands in for, so a change to an interface fails the type check here, not in a test run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.chat import ChatMessage, StopReason
from assistant.engine import GenerationStats, ModelInfo, SamplingParams
from assistant.safety import SAFETY_SYSTEM_PROMPT, GuardStep, OutputGuard, SafetyPolicy, Stage, Verdict
from assistant.session import ChatEngine


class FakeEngine:
    """A :class:`ChatEngine` that streams scripted pieces; records every prompt and how far generation ran."""

    def __init__(self, pieces: Sequence[str] = ("Hello", " there", "."), context_length: int = 4096) -> None:
        self.pieces = list(pieces)
        self.prompts: list[list[ChatMessage]] = []
        self.produced = 0
        self.prefilled: list[ChatMessage] = []
        self.model = ModelInfo(
            path=Path("fake.gguf"), name="fake", architecture="fake", size_bytes=0, context_length=context_length,
            trained_context_length=context_length, layer_count=1, gpu_layers=0, threads=1, chat_format="chatml",
            gpu_offload_supported=False,
        )

    def enqueue(self, *pieces: str) -> None:
        self.pieces = list(pieces)

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        self.prefilled = list(messages)

    def count_chat_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content.split()) + 4 for m in messages)

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams,
                 cancel: threading.Event | None = None) -> Generator[str | GenerationStats, None, None]:
        self.prompts.append(list(messages))
        started = time.perf_counter()
        reason = StopReason.END
        self.produced = 0
        for piece in self.pieces:
            if cancel is not None and cancel.is_set():
                reason = StopReason.CANCELLED
                break
            self.produced += 1
            yield piece
        yield GenerationStats(
            prompt_tokens=self.count_chat_tokens(messages), reused_prompt_tokens=0, completion_tokens=self.produced,
            prompt_eval_ms=1.0, decode_ms=1.0, tokens_per_second=100.0, started_at=started,
            first_token_at=started if self.produced else None, stop_reason=reason, seed=0,
        )


class WordPolicy:
    """Blocks input or output containing a given word; the stand-in for the real classifier."""

    name = "word-policy"
    system_prompt = SAFETY_SYSTEM_PROMPT

    def __init__(self, input_word: str | None = None, output_word: str | None = None,
                 final_word: str | None = None, fail_input: bool = False, fail_output: bool = False) -> None:
        self.input_word, self.output_word, self.final_word = input_word, output_word, final_word
        self.fail_input, self.fail_output = fail_input, fail_output

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict:
        if self.fail_input:
            raise RuntimeError("classifier weights missing")
        if self.input_word and self.input_word in message:
            return Verdict(False, Stage.INPUT, "S9", "Blocked: indiscriminate weapons (S9).")
        return Verdict.allow(Stage.INPUT)

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        return _WordGuard(self)


class _WordGuard:
    def __init__(self, policy: WordPolicy) -> None:
        self.policy = policy
        self.seen = ""

    def feed(self, text: str) -> GuardStep:
        if self.policy.fail_output:
            raise RuntimeError("guard crashed")
        self.seen += text
        if self.policy.output_word and self.policy.output_word in text:
            return GuardStep("", Verdict(False, Stage.OUTPUT, "S1", "Blocked: violent crimes (S1)."))
        return GuardStep(text)

    def finish(self) -> GuardStep:
        if self.policy.final_word and self.policy.final_word in self.seen:
            return GuardStep("", Verdict(False, Stage.OUTPUT, "S10", "Blocked: hate (S10)."))
        return GuardStep()


if TYPE_CHECKING:  # checked by mypy, never run: each double is the interface it stands in for
    _engine: ChatEngine = FakeEngine()
    _policy: SafetyPolicy = WordPolicy()
    _guard: OutputGuard = _WordGuard(WordPolicy())
