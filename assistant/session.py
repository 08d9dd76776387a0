"""``ChatSession``: one chat turn from the user's message to a stored reply. The UI and CLI both use it.

A turn: store the user's message; run the input check (a block stops here, with a stored notice);
assemble the prompt (safety prompt, the user's instructions, the branch's history that fits, the new
message); stream from the engine, sorting a reasoning model's thinking from its answer and passing both
through the output filter, releasing only what it passes; save the visible text as it grows; finish with
the filter's whole-reply checks and the final row. Stop and crashes leave the reply stored and marked
incomplete.

The operations, each a generator of the events in :mod:`assistant.events` (``TurnStarted``, then
``ReasoningReleased``... ``ReasoningDone`` for a reasoning model, ``TextReleased``..., then ``TurnResult``):

* ``send(text, conversation_id=None, *, cancel=None, sampling=None, instructions=None)``: a new message
  at the end of the branch on screen (a new conversation when ``conversation_id`` is None).
* ``edit(conversation_id, message_id, new_text, *, cancel=None, sampling=None, instructions=None)``: a new
  version of the user's message ``message_id``, stored as its sibling (the old one and everything after it
  are kept), answered like ``send``. The input check runs on the new text.
* ``regenerate(conversation_id, reply_message_id, *, cancel=None, sampling=None, instructions=None)``: a
  new reply to the message that ``reply_message_id`` answers, stored as a sibling of that reply (given a
  user message's id, a new reply to it). The input check runs again on the message.

Nothing is deleted by either, and the prompt is always the branch leading to the new message: other
branches, blocked turns and any reasoning text never reach the model. ``Store.switch_branch`` moves
between versions. ``rewind_to_last_user`` is the older way (the desktop window's until it moves to
``edit``/``regenerate``): it now only moves the branch on screen back, so a ``send`` after it adds a sibling.

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
from pathlib import Path
from typing import Protocol

from assistant.chat import ChatMessage, Role, StopReason, plan_context, system_message
from assistant.engine import GenerationStats, ModelInfo, SamplingParams
from assistant.errors import HavenError, ModelError
from assistant.events import ReasoningDone, ReasoningReleased, TextReleased, TurnEvent, TurnResult, TurnStarted
from assistant.generation import FilteredReply
from assistant.reasoning import template_opens
from assistant.safety import SafetyPolicy, Stage, Verdict, guarded_input_check
from assistant.store import Conversation, ReplyUpdate, Store, StoredMessage, visible_history

__all__ = [
    "ChatEngine",
    "ChatSession",
    "ReasoningDone",
    "ReasoningReleased",
    "TextReleased",
    "TurnEvent",
    "TurnResult",
    "TurnStarted",
]

log = logging.getLogger(__name__)

# How often the growing reply is written to the database, so a crash loses at most this much.
PARTIAL_SAVE_SECONDS = 0.5


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


@dataclass(frozen=True, slots=True)
class _Cut:
    """Where the last turn's history started, with the history it cut (its message ids)."""

    history_ids: tuple[int, ...]
    first_kept: int


@dataclass(frozen=True, slots=True)
class _Turn:
    """What a turn starts from: the conversation (None: a new one), the message the new one follows, the
    branch down to it, the text to answer, and the stored user message when it already exists."""

    existing: Conversation | None
    parent_id: int | None
    path: list[StoredMessage]
    text: str
    answering: StoredMessage | None = None


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
        self._cuts: dict[str, _Cut] = {}  # per conversation, to keep the prompt prefix stable
        self._opens_reasoning: dict[Path, bool] = {}  # per model file: does its template open <think>?
        # After a finished reply, let the engine evaluate it into the KV cache while the person reads it.
        # A one-shot command that exits after the turn turns this off.
        self.prefill_next_turn = True

    # -- the operations ------------------------------------------------------------------------

    def send(self, text: str, conversation_id: str | None = None, *, cancel: threading.Event | None = None,
             sampling: SamplingParams | None = None, instructions: str | None = None,
             ) -> Generator[TurnEvent, None, None]:
        """Run one turn at the end of the branch on screen. Yields :class:`TurnStarted`, the released
        pieces, then a :class:`TurnResult`."""
        existing = self.store.conversation(conversation_id) if conversation_id is not None else None
        path = self.store.messages(existing.id) if existing is not None else []
        turn = _Turn(existing, path[-1].id if path else None, path, text)
        yield from self._turn(turn, cancel, sampling, instructions)

    def edit(self, conversation_id: str, message_id: int, new_text: str, *, cancel: threading.Event | None = None,
             sampling: SamplingParams | None = None, instructions: str | None = None,
             ) -> Generator[TurnEvent, None, None]:
        """Send ``new_text`` as a new version of the user's message ``message_id`` (its sibling), and answer
        it. The old message and everything after it stay, one switch away."""
        existing = self.store.conversation(conversation_id)
        target = self.store.message(conversation_id, message_id)
        if target.role != Role.USER:
            raise HavenError("Only your own messages can be edited; to get a different reply, regenerate it.")
        path = self.store.path_to(conversation_id, target.parent_id)
        yield from self._turn(_Turn(existing, target.parent_id, path, new_text), cancel, sampling, instructions)

    def regenerate(self, conversation_id: str, reply_message_id: int, *, cancel: threading.Event | None = None,
                   sampling: SamplingParams | None = None, instructions: str | None = None,
                   ) -> Generator[TurnEvent, None, None]:
        """Write a new reply to the message ``reply_message_id`` answers (a sibling of that reply). Given
        the id of a user message, write a new reply to it."""
        existing = self.store.conversation(conversation_id)
        target = self.store.message(conversation_id, reply_message_id)
        question = target if target.role == Role.USER else (
            self.store.message(conversation_id, target.parent_id) if target.parent_id is not None else None)
        if question is None or question.role != Role.USER:
            raise HavenError("This reply does not answer a message of yours, so there is nothing to regenerate "
                             "it from. Send a new message instead.")
        path = self.store.path_to(conversation_id, question.parent_id)
        turn = _Turn(existing, question.parent_id, path, question.content, answering=question)
        yield from self._turn(turn, cancel, sampling, instructions)

    def rewind_to_last_user(self, conversation_id: str) -> str | None:
        """Move the branch on screen back to just before its last user message and return that message's
        text, to send again as it was (regenerate) or after an edit: the ``send`` that follows stores a
        sibling, and the old turn stays, one switch away. None, and nothing changed, when the branch has
        no user message. Kept for callers written before :meth:`edit` and :meth:`regenerate`."""
        messages = self.store.messages(conversation_id)
        last = next((m for m in reversed(messages) if m.role == Role.USER), None)
        if last is None:
            return None
        self.store.set_current(conversation_id, last.parent_id)
        return last.content

    # -- one turn ------------------------------------------------------------------------------

    def _turn(self, turn: _Turn, cancel: threading.Event | None, sampling: SamplingParams | None,
              instructions: str | None) -> Generator[TurnEvent, None, None]:
        started = time.perf_counter()
        cancel = cancel or threading.Event()
        params = sampling or self.sampling
        info = self.engine.model
        if info is None:
            raise ModelError("No model is loaded. Choose a model first.")
        if not turn.text.strip():
            raise HavenError("The message is empty; type something to send.")
        existing = turn.existing
        visible = visible_history(turn.path)
        history = [ChatMessage(Role(m.role), m.content) for m in visible]
        ids = tuple(m.id for m in visible)
        if instructions is None:
            instructions = existing.instructions if existing is not None else self.user_instructions

        # Planned before anything is stored, and before the input check: a message that cannot fit is
        # refused at once (a 1 MB paste costs the tokenizer ~1 s, the classifier many more) and leaves no
        # trace; nothing is generated for it either way.
        plan = plan_context(
            system_message(self.policy.system_prompt, instructions), history, ChatMessage(Role.USER, turn.text),
            count_tokens=self.engine.count_chat_tokens, context_length=info.context_length,
            reply_budget=params.max_tokens, previous_first_kept=self._previous_cut(existing, ids),
        )
        verdict = guarded_input_check(self.policy, history, turn.text)
        conversation_id = self._conversation_for_turn(existing, instructions)
        if turn.answering is None:
            user_id = self.store.add_user_message(conversation_id, turn.text, model=self.model_id,
                                                  parent_id=turn.parent_id)
        else:
            user_id = turn.answering.id
        yield TurnStarted(conversation_id, user_id)
        if not verdict.allowed:
            yield self._blocked_before_generation(conversation_id, user_id, verdict, started)
            return
        if turn.answering is not None and turn.answering.blocked:
            self.store.mark_user_message_allowed(user_id)
        self._cuts[conversation_id] = _Cut(ids, plan.first_kept)
        reply = FilteredReply(self.policy, history, turn.text, opened=self._template_opens(info))
        yield from self._generate(conversation_id, user_id, plan.messages, params, cancel, started, plan.dropped,
                                  reply)

    def _previous_cut(self, existing: Conversation | None, ids: tuple[int, ...]) -> int:
        """The last turn's history cut, when this turn continues that turn's history (a send). On another
        branch (an edit, a regeneration, a switch) the plan starts afresh, keeping all the history that fits."""
        cut = self._cuts.get(existing.id) if existing is not None else None
        if cut is None or ids[: len(cut.history_ids)] != cut.history_ids:
            return 0
        return cut.first_kept

    def _template_opens(self, info: ModelInfo) -> bool:
        if info.path not in self._opens_reasoning:
            self._opens_reasoning[info.path] = template_opens(self.engine)
        return self._opens_reasoning[info.path]

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
                                         category=verdict.category, parent_id=user_id)
        return TurnResult(
            conversation_id=conversation_id, reply=verdict.notice, blocked=True, stage=verdict.stage.value,
            category=verdict.category, model=self.model_id, prompt_tokens=0, completion_tokens=0,
            ttft_ms=(time.perf_counter() - started) * 1000.0, tokens_per_second=0.0,
            stop_reason=StopReason.BLOCKED, complete=True, reply_message_id=reply_id, user_message_id=user_id,
        )

    def _generate(
        self, conversation_id: str, user_id: int, messages: tuple[ChatMessage, ...], params: SamplingParams,
        cancel: threading.Event, started: float, dropped: int, reply: FilteredReply,
    ) -> Generator[TurnEvent, None, None]:
        reply_id = self.store.start_reply(conversation_id, self.model_id, parent_id=user_id)
        stats: GenerationStats | None = None
        last_save = time.monotonic()
        stream = self.engine.generate(messages, params, cancel)
        try:
            for item in stream:
                if isinstance(item, GenerationStats):
                    stats = item
                    continue
                if reply.block is not None or cancel.is_set():
                    continue  # draining: the engine stops within a token; nothing more is shown
                yield from reply.feed(item)
                if reply.block is not None:
                    cancel.set()
                elif time.monotonic() - last_save >= PARTIAL_SAVE_SECONDS:
                    self.store.save_partial_reply(reply_id, reply.text, reply.reasoning_text)
                    last_save = time.monotonic()
        except BaseException as exc:
            # Ctrl+C, an engine failure or a crash of the caller: keep what was shown, marked incomplete.
            reason = StopReason.CANCELLED if isinstance(exc, KeyboardInterrupt | GeneratorExit) else StopReason.ERROR
            cancel.set()
            self.store.finish_reply(reply_id, ReplyUpdate(content=reply.text, complete=False, stop_reason=reason,
                                                          reasoning=reply.reasoning_text,
                                                          reasoning_ms=reply.reasoning_duration_ms()))
            raise
        finally:
            stream.close()

        if reply.block is None and not (stats and stats.stop_reason is StopReason.CANCELLED):
            yield from reply.finish()
        result = self._finish(conversation_id, user_id, reply_id, reply, stats, started, dropped)
        if self.prefill_next_turn and result.complete and not result.blocked:
            # The reply as the next prompt will hold it: the answer only, never the thinking.
            self.engine.prefill([*messages, ChatMessage(Role.ASSISTANT, result.reply)])
        yield result

    def _finish(self, conversation_id: str, user_id: int, reply_id: int, reply: FilteredReply,
                stats: GenerationStats | None, started: float, dropped: int) -> TurnResult:
        prompt_tokens = stats.prompt_tokens if stats else 0
        completion = stats.completion_tokens if stats else 0
        first = stats.first_token_at if stats and stats.first_token_at is not None else None
        ttft_ms = (first - started) * 1000.0 if first is not None else 0.0
        tps = stats.tokens_per_second if stats else 0.0
        block = reply.block
        if block is not None:
            # The blocked span is never stored: the reply becomes the notice, and no thinking is kept.
            update = ReplyUpdate(
                content=block.notice, complete=True, stop_reason=StopReason.BLOCKED, prompt_tokens=prompt_tokens,
                completion_tokens=completion, ttft_ms=ttft_ms, tokens_per_second=tps, blocked=True,
                stage=Stage.OUTPUT.value, category=block.category,
            )
        else:
            reason = stats.stop_reason if stats else StopReason.CANCELLED
            update = ReplyUpdate(
                content=reply.text, complete=reason in (StopReason.END, StopReason.LENGTH), stop_reason=reason,
                prompt_tokens=prompt_tokens, completion_tokens=completion, ttft_ms=ttft_ms, tokens_per_second=tps,
                reasoning=reply.reasoning_text, reasoning_ms=reply.reasoning_duration_ms(),
            )
        self.store.finish_reply(reply_id, update)
        return TurnResult(
            conversation_id=conversation_id, reply=update.content, blocked=block is not None, stage=update.stage,
            category=update.category, model=self.model_id, prompt_tokens=prompt_tokens,
            completion_tokens=completion, ttft_ms=ttft_ms, tokens_per_second=tps, stop_reason=update.stop_reason,
            complete=update.complete, reply_message_id=reply_id, dropped_history=dropped,
            reused_prompt_tokens=stats.reused_prompt_tokens if stats else 0, reasoning=update.reasoning,
            reasoning_ms=update.reasoning_ms, user_message_id=user_id,
        )
