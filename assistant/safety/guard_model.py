"""Llama Guard 3 as a second opinion: its own llama.cpp model instance, its exact prompt format.

The prompt follows Meta's Llama Guard 3 model card: a user turn holding the task, the category list,
the conversation (``User:`` / ``Agent:`` turns) and the instructions, then the assistant header. The
answer is constrained by a grammar to ``safe`` or ``unsafe`` plus a category line, and parsed. Anything
else (an error, a timeout, an unparsable answer) blocks: the check fails closed.

Real quality needs the real guard model (Llama Guard 3 1B or 8B from the catalog), which cannot be
downloaded on the machine this was written on; the tests run the plumbing on the starter model.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from assistant.chat import ChatMessage, Role
from assistant.engine import Engine, LoadOptions, SamplingParams
from assistant.safety.taxonomy import CATEGORIES

__all__ = ["GuardAnswer", "GuardModel", "build_guard_prompt", "parse_guard_answer"]

log = logging.getLogger(__name__)

HEADER = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
FOOTER = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
# Constrains the guard's answer to the two forms its model card defines.
ANSWER_GRAMMAR = r'''root ::= "safe" | "unsafe" "\n" cat ("," cat){0,3}
cat ::= "S" [1-9] | "S1" [0-4]'''


@dataclass(frozen=True, slots=True)
class GuardAnswer:
    safe: bool
    categories: tuple[str, ...]


def build_guard_prompt(conversation: Sequence[ChatMessage], *, include_s14: bool = True) -> list[tuple[str, bool]]:
    """The prompt as ``(text, parse_control)`` parts: Meta's markup is parsed, the conversation is not."""
    role = "Agent" if conversation and conversation[-1].role is Role.ASSISTANT else "User"
    categories = "\n".join(f"{c.code}: {c.name}." for c in CATEGORIES if include_s14 or c.code != "S14")
    parts: list[tuple[str, bool]] = [(
        HEADER + f"Task: Check if there is unsafe content in '{role}' messages in conversations according our "
        f"safety policy with the below categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}\n"
        "<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\n", True)]
    for message in conversation:
        if message.role is Role.SYSTEM:
            continue
        speaker = "User" if message.role is Role.USER else "Agent"
        parts += [(f"{speaker}: ", False), (message.content.strip(), False), ("\n\n", False)]
    parts.append((
        f"<END CONVERSATION>\n\nProvide your safety assessment for ONLY THE LAST {role} message in the above "
        "conversation:\n - First line must read 'safe' or 'unsafe'.\n - If unsafe, a second line must include a "
        "comma-separated list of violated categories." + FOOTER, True))
    return parts


_ANSWER = re.compile(r"^\s*(safe|unsafe)\s*(?:\n\s*(S\d{1,2}(?:\s*,\s*S\d{1,2})*))?\s*$", re.IGNORECASE)


def parse_guard_answer(text: str) -> GuardAnswer | None:
    """``safe`` -> safe; ``unsafe\\nS1,S10`` -> unsafe with categories; anything else -> None."""
    match = _ANSWER.match(text)
    if match is None:
        return None
    if match.group(1).lower() == "safe":
        return None if match.group(2) else GuardAnswer(True, ())
    codes = tuple(c.strip().upper() for c in (match.group(2) or "").split(",") if c.strip())
    valid = {c.code for c in CATEGORIES}
    if not codes or any(c not in valid for c in codes):
        return None
    return GuardAnswer(False, codes)


MIN_KEPT_PREFIX = 32  # tokens: shorter shared starts are not worth a kept copy


class GuardModel:
    """Owns its own Engine (a second llama.cpp model instance) for Llama Guard 3."""

    def __init__(self, path: Path, *, timeout_seconds: float = 60.0, include_s14: bool = True,
                 context_length: int = 4096, use_model_template: bool = True) -> None:
        self.path = path
        self._use_model_template = use_model_template
        self.name = f"llama-guard:{path.stem}"
        self._timeout = timeout_seconds
        self._include_s14 = include_s14
        self._engine = Engine()
        self._last_prompt: dict[str, list[int]] = {}
        self._engine.load(path, LoadOptions(context_length=context_length, batch_size=512))

    def close(self) -> None:
        self._engine.close()

    def _prompt(self, conversation: Sequence[ChatMessage]) -> list[int]:
        """The model's own chat template when the GGUF carries one (Llama Guard 3's renders exactly this
        format); else the format as the model card writes it."""
        turns = [m for m in conversation if m.role is not Role.SYSTEM]
        info = self._engine.model
        if self._use_model_template and info is not None and info.chat_format == "jinja":
            try:
                return self._engine.tokenize_chat(turns)
            except Exception:
                log.warning("guard model template failed; using the model card's format", exc_info=True)
        return self._engine.tokenize_parts(build_guard_prompt(turns, include_s14=self._include_s14))

    def _keep_instructions(self, role: str, tokens: list[int]) -> None:
        """Keep the fixed instructions of a ``role`` check (all that two prompts of that role share) in
        the KV cache, so a check evaluates only the conversation. User and Agent checks differ early in
        the prompt (which party is judged), so each role keeps its own copy."""
        last = self._last_prompt.get(role)
        self._last_prompt[role] = tokens
        if last is None:
            return
        shared = next((i for i, (a, b) in enumerate(zip(last, tokens, strict=False)) if a != b),
                      min(len(last), len(tokens)))
        if shared >= MIN_KEPT_PREFIX and shared < len(tokens):
            self._engine.keep_prefix(role, tokens[:shared])

    def assess(self, conversation: Sequence[ChatMessage]) -> GuardAnswer | None:
        """The guard's answer, or None when it could not give a valid one in time (the caller blocks)."""
        tokens = self._prompt(conversation)
        limit = (self._engine.model.context_length if self._engine.model else 4096) - 12
        if len(tokens) > limit:  # keep the instructions: drop the oldest part of the conversation
            tokens = tokens[:200] + tokens[-(limit - 200):]
        role = "agent" if conversation and conversation[-1].role is Role.ASSISTANT else "user"
        try:
            self._keep_instructions(role, tokens)
        except Exception:  # an optimisation only: the check below evaluates everything itself
            log.debug("keeping the guard's instructions failed", exc_info=True)
        cancel = threading.Event()
        params = SamplingParams(temperature=0.0, max_tokens=48, seed=0, repeat_penalty=1.0, grammar=ANSWER_GRAMMAR)
        result: Future[str] = Future()

        def run() -> None:
            try:
                text = "".join(i for i in self._engine.generate_tokens(tokens, params, cancel) if isinstance(i, str))
                result.set_result(text)
            except BaseException as exc:
                result.set_exception(exc)

        worker = threading.Thread(target=run, name="haven-guard-check", daemon=True)
        worker.start()
        try:
            answer = result.result(timeout=self._timeout)
        except TimeoutError:
            cancel.set()
            log.warning("guard model timed out after %.0f s", self._timeout)
            return None
        except Exception:
            log.exception("guard model failed")
            return None
        parsed = parse_guard_answer(answer)
        if parsed is None:
            log.warning("guard model gave an answer Haven cannot read: %r", answer[:80])
        return parsed
