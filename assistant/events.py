"""What a chat turn yields, in order: :class:`TurnStarted`; then, as the safety filter releases text,
:class:`ReasoningReleased` pieces (a reasoning model's thinking) followed by one :class:`ReasoningDone`,
and :class:`TextReleased` pieces (the answer); finally one :class:`TurnResult`.

``ChatSession.send``, ``ChatSession.edit`` and ``ChatSession.regenerate`` all yield exactly these.
Nothing the output filter has not released is ever in an event. A front end that does not show thinking
may ignore the two reasoning events. :mod:`assistant.session` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.chat import StopReason

__all__ = ["ReasoningDone", "ReasoningReleased", "TextReleased", "TurnEvent", "TurnResult", "TurnStarted"]


@dataclass(frozen=True, slots=True)
class TurnStarted:
    conversation_id: str
    user_message_id: int  # the new message (send, edit) or the one answered again (regenerate)


@dataclass(frozen=True, slots=True)
class TextReleased:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningReleased:
    """A piece of the model's thinking that passed the output filter; show it apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDone:
    """The thinking is over (all of it released); the answer follows. ``duration_ms``: how long it took."""

    duration_ms: float


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
    reasoning: str = ""             # the released thinking ("" when none, and when the turn was blocked)
    reasoning_ms: float | None = None
    user_message_id: int = 0        # the message this reply answers (its parent)

    def to_json(self) -> dict[str, object]:
        """The object ``haven-cli chat --json`` prints (see INTERFACES.md and docs/core.md)."""
        return {
            "reply": self.reply, "blocked": self.blocked, "stage": self.stage, "category": self.category,
            "model": self.model, "conversation": self.conversation_id, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "ttft_ms": round(self.ttft_ms, 3),
            "tokens_per_second": round(self.tokens_per_second, 3), "reasoning": self.reasoning,
        }


TurnEvent = TurnStarted | TextReleased | ReasoningReleased | ReasoningDone | TurnResult
