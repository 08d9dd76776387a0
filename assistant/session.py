"""``ChatSession``: one chat turn from the user's message to a stored reply. The UI and CLI both use it.

A turn: store the user's message; run the input check (a block stops here, with a stored notice);
assemble the prompt (safety prompt, the user's instructions, history that fits, the new message); stream
from the engine through the output guard, releasing only what it passes; save the visible text as it
grows; finish with the guard's whole-reply check and the final row. Stop and crashes leave the reply
stored and marked incomplete.

The session also owns the chat operations that change a conversation's history: regenerate and edit
both start with :meth:`ChatSession.rewind_to_last_user`.

It runs against :class:`ChatEngine`, the four members of an engine it uses; :class:`assistant.engine.Engine`
is the real one, and anything with the same members (a test double, a benchmark's timing wrapper) can
stand in for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

from assistant.chat import ChatMessage, Role, StopReason, plan_context, system_message
from assistant.engine import GenerationStats, ModelInfo, SamplingParams
from assistant.errors import HavenError, ModelError
from assistant.safety import (
    SafetyPolicy,
    Stage,
    Verdict,
    guarded_input_check,
    guarded_output_guard,
)
from assistant.store import Conversation, ReplyUpdate, Store, StoredMessage, visible_history

__all__ = ["ChatEngine", "ChatSession", "TextReleased", "TurnEvent", "TurnResult", "TurnStarted"]

log = logging.getLogger(__name__)

# How often the growing reply is written to the database, so a crash loses at most this much.
PARTIAL_SAVE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class TurnStarted:
    conversation_id: str
    user_message_id: int


@dataclass(frozen=True, slots=True)
class TextReleased:
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnResult:
    conversation_id: str
    reply: str                    # the visible reply, or the notice when blocked
    blocked: bool
    stage: str | None
    category: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    tokens_per_second: float
    stop_reason: StopReason       # END, LENGTH, CANCELLED or BLOCKED
    complete: bool
    reply_message_id: int
    dropped_history: int = 0        # history messages left out to fit the context
    reused_prompt_tokens: int = 0   # prompt tokens served from the KV cache of the previous turn

    def to_json(self) -> dict[str, object]:
        """The object ``haven-cli chat --json`` prints (see INTERFACES.md)."""
        return {
            "reply": self.reply, "blocked": self.blocked, "stage": self.stage, "category": self.category,
            "model": self.model, "conversation": self.conversation_id, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "ttft_ms": round(self.ttft_ms, 3),
            "tokens_per_second": round(self.tokens_per_second, 3),
        }


TurnEvent = TurnStarted | TextReleased | TurnResult


def _as_chat(messages: list[StoredMessage]) -> list[ChatMessage]:
    return [ChatMessage(Role(m.role), m.content) for m in visible_history(messages)]


class ChatEngine(Protocol):
    """What a :class:`ChatSession` needs from an engine: exactly the members it uses, no more."""

    @property
    def model(self) -> ModelInfo | None:
        """The loaded model, or None when none is loaded."""
        ...

    def count_chat_tokens(self, messages: Sequence[ChatMessage]) -> int: ...

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams,
                 cancel: threading.Event | None = None) -> Generator[str | GenerationStats, None, None]:
        """Stream text pieces, then one :class:`GenerationStats`; setting ``cancel`` stops within a token."""
        ...

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        """Evaluate a finished exchange into the KV cache, without waiting (an optimisation only)."""
        ...


class ChatSession:
    """Runs turns against a loaded engine. ``model_id`` names the loaded model in the store."""

    def __init__(self, engine: ChatEngine, store: Store, policy: SafetyPolicy, *, model_id: str,
                 sampling: SamplingParams = SamplingParams(), user_instructions: str = "") -> None:
        self.engine = engine
        self.store = store
        self.policy = policy
        self.model_id = model_id
        self.sampling = sampling
        self.user_instructions = user_instructions
        self._first_kept: dict[str, int] = {}  # per conversation, to keep the prompt prefix stable
        # After a finished reply, let the engine evaluate it into the KV cache while the person reads it.
        # A one-shot command that exits after the turn turns this off.
        self.prefill_next_turn = True

    def send(
        self,
        text: str,
        conversation_id: str | None = None,
        *,
        cancel: threading.Event | None = None,
        sampling: SamplingParams | None = None,
        instructions: str | None = None,
    ) -> Generator[TurnEvent, None, None]:
        """Run one turn. Yields :class:`TurnStarted`, then :class:`TextReleased` pieces, then a :class:`TurnResult`."""
        started = time.perf_counter()
        cancel = cancel or threading.Event()
        params = sampling or self.sampling
        info = self.engine.model
        if info is None:
            raise ModelError("No model is loaded. Choose a model first.")
        if not text.strip():
            raise HavenError("The message is empty; type something to send.")

        existing = self.store.conversation(conversation_id) if conversation_id is not None else None
        history = _as_chat(self.store.messages(existing.id)) if existing is not None else []
        if instructions is None:
            instructions = existing.instructions if existing is not None else self.user_instructions

        # Planned before anything is stored, and before the input check: a message that cannot fit is
        # refused at once (a 1 MB paste costs the tokenizer ~1 s, the classifier many more) and leaves no
        # trace; nothing is generated for it either way.
        plan = plan_context(
            system_message(self.policy.system_prompt, instructions), history, ChatMessage(Role.USER, text),
            count_tokens=self.engine.count_chat_tokens, context_length=info.context_length,
            reply_budget=params.max_tokens,
            previous_first_kept=self._first_kept.get(conversation_id or "", 0),
        )
        verdict = guarded_input_check(self.policy, history, text)
        conversation_id = self._conversation_for_turn(existing, instructions)
        user_id = self.store.add_user_message(conversation_id, text, model=self.model_id)
        yield TurnStarted(conversation_id, user_id)
        if not verdict.allowed:
            yield self._blocked_before_generation(conversation_id, user_id, verdict, started)
            return
        self._first_kept[conversation_id] = plan.first_kept
        yield from self._generate(conversation_id, plan.messages, params, cancel, started, plan.dropped,
                                  history, text)

    def rewind_to_last_user(self, conversation_id: str) -> str | None:
        """Remove the conversation's last user message and everything after it (its reply, or the notice
        that stood in for one); return that message's text, to send again as it was (regenerate) or after
        an edit. None, and nothing removed, when the conversation has no user message."""
        messages = self.store.messages(conversation_id)
        last = next((m for m in reversed(messages) if m.role == Role.USER), None)
        if last is None:
            return None
        self.store.delete_messages_from(conversation_id, last.id)
        return last.content

    def _conversation_for_turn(self, existing: Conversation | None, instructions: str) -> str:
        if existing is None:
            return self.store.create_conversation(self.model_id, instructions=instructions).id
        if instructions != existing.instructions:
            self.store.update_conversation(existing.id, instructions=instructions)
        return existing.id

    def _blocked_before_generation(self, conversation_id: str, user_id: int, verdict: Verdict,
                                   started: float) -> TurnResult:
        self.store.mark_user_message_blocked(user_id, verdict.stage.value, verdict.category)
        reply_id = self.store.add_notice(conversation_id, verdict.notice, stage=verdict.stage.value,
                                         category=verdict.category)
        return TurnResult(
            conversation_id=conversation_id, reply=verdict.notice, blocked=True, stage=verdict.stage.value,
            category=verdict.category, model=self.model_id, prompt_tokens=0, completion_tokens=0,
            ttft_ms=(time.perf_counter() - started) * 1000.0, tokens_per_second=0.0,
            stop_reason=StopReason.BLOCKED, complete=True, reply_message_id=reply_id,
        )

    def _generate(
        self, conversation_id: str, messages: tuple[ChatMessage, ...], params: SamplingParams,
        cancel: threading.Event, started: float, dropped: int, history: list[ChatMessage], text: str,
    ) -> Generator[TurnEvent, None, None]:
        guard = guarded_output_guard(self.policy, history, text)
        reply_id = self.store.start_reply(conversation_id, self.model_id)
        shown: list[str] = []
        stats: GenerationStats | None = None
        block: Verdict | None = None
        last_save = time.monotonic()
        stream = self.engine.generate(messages, params, cancel)
        try:
            for item in stream:
                if isinstance(item, GenerationStats):
                    stats = item
                    continue
                if block is not None or cancel.is_set():
                    continue  # draining: the engine stops within a token; nothing more is shown
                step = guard.feed(item)
                if step.release:
                    shown.append(step.release)
                    yield TextReleased(step.release)
                if step.verdict is not None and not step.verdict.allowed:
                    block = step.verdict
                    cancel.set()
                elif time.monotonic() - last_save >= PARTIAL_SAVE_SECONDS:
                    self.store.save_partial_reply(reply_id, "".join(shown))
                    last_save = time.monotonic()
        except BaseException as exc:
            # Ctrl+C, an engine failure or a crash of the caller: keep what was shown, marked incomplete.
            reason = StopReason.CANCELLED if isinstance(exc, KeyboardInterrupt | GeneratorExit) else StopReason.ERROR
            cancel.set()
            self.store.finish_reply(reply_id, ReplyUpdate(content="".join(shown), complete=False, stop_reason=reason))
            raise
        finally:
            stream.close()

        if block is None and not (stats and stats.stop_reason is StopReason.CANCELLED):
            final = guard.finish()
            if final.verdict is not None and not final.verdict.allowed:
                block = final.verdict
            elif final.release:
                shown.append(final.release)
                yield TextReleased(final.release)
        result = self._finish(conversation_id, reply_id, "".join(shown), stats, block, started, dropped)
        if self.prefill_next_turn and result.complete and not result.blocked:
            self.engine.prefill([*messages, ChatMessage(Role.ASSISTANT, result.reply)])
        yield result

    def _finish(self, conversation_id: str, reply_id: int, visible: str, stats: GenerationStats | None,
                block: Verdict | None, started: float, dropped: int) -> TurnResult:
        prompt_tokens = stats.prompt_tokens if stats else 0
        completion = stats.completion_tokens if stats else 0
        first = stats.first_token_at if stats and stats.first_token_at is not None else None
        ttft_ms = (first - started) * 1000.0 if first is not None else 0.0
        tps = stats.tokens_per_second if stats else 0.0
        if block is not None:
            # The blocked span is never stored: the reply becomes the notice.
            update = ReplyUpdate(
                content=block.notice, complete=True, stop_reason=StopReason.BLOCKED, prompt_tokens=prompt_tokens,
                completion_tokens=completion, ttft_ms=ttft_ms, tokens_per_second=tps, blocked=True,
                stage=Stage.OUTPUT.value, category=block.category,
            )
        else:
            reason = stats.stop_reason if stats else StopReason.CANCELLED
            update = ReplyUpdate(
                content=visible, complete=reason in (StopReason.END, StopReason.LENGTH), stop_reason=reason,
                prompt_tokens=prompt_tokens, completion_tokens=completion, ttft_ms=ttft_ms, tokens_per_second=tps,
            )
        self.store.finish_reply(reply_id, update)
        return TurnResult(
            conversation_id=conversation_id, reply=update.content, blocked=block is not None, stage=update.stage,
            category=update.category, model=self.model_id, prompt_tokens=prompt_tokens,
            completion_tokens=completion, ttft_ms=ttft_ms, tokens_per_second=tps, stop_reason=update.stop_reason,
            complete=update.complete, reply_message_id=reply_id, dropped_history=dropped,
            reused_prompt_tokens=stats.reused_prompt_tokens if stats else 0,
        )
