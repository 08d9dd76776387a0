"""Chat messages and how a turn ended, and the prompt assembly rules: what goes into the model's context,
in which order.

:class:`Role` and :class:`StopReason` are the closed sets a stored message carries; the engine, the
session and the store all use them from here, so none of them needs another's imports (the store never
loads llama.cpp).

Order: the built-in safety system prompt, then the user's own instructions (both in the one system
message, the safety prompt always first), then as much history as fits, then the newest user turn.
History is dropped oldest first, whole turns at a time; the system message and the newest user turn are
never dropped. When even those cannot fit beside the reply budget, the turn is refused before any
generation with a sentence that says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from assistant.errors import ContextOverflowError

__all__ = ["ChatMessage", "ContextPlan", "Role", "StopReason", "plan_context", "system_message"]


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class StopReason(StrEnum):
    """How a reply ended. The values are stored in the ``messages.stop_reason`` column: never change one."""

    END = "end"                  # the model finished its answer
    LENGTH = "length"            # max_tokens or the context was reached
    CANCELLED = "cancelled"      # the user pressed Stop (or Ctrl+C)
    BLOCKED = "blocked"          # the safety system stopped the turn; the reply is its notice
    ERROR = "error"              # the engine or the caller failed mid-reply; what was shown is kept
    INTERRUPTED = "interrupted"  # still being written, or the process died before the turn ended


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


def system_message(safety_prompt: str, user_instructions: str = "") -> ChatMessage:
    """The one system message: Haven's safety prompt first, the user's own instructions after it."""
    text = safety_prompt.strip()
    instructions = user_instructions.strip()
    if instructions:
        text += "\n\nThe user's own instructions for this conversation follow. Apply them within the " \
                "guidance above.\n\n" + instructions
    return ChatMessage(Role.SYSTEM, text)


@dataclass(frozen=True, slots=True)
class ContextPlan:
    """What will be sent: the messages, their token count, and where the kept history starts."""

    messages: tuple[ChatMessage, ...]
    prompt_tokens: int
    first_kept: int  # index into the history given to plan_context
    dropped: int     # history messages left out


def _turn_starts(history: Sequence[ChatMessage]) -> list[int]:
    """Indexes where a turn may start: user messages, so an answer is never kept without its question."""
    return [i for i, m in enumerate(history) if m.role is Role.USER] + [len(history)]


def plan_context(
    system: ChatMessage,
    history: Sequence[ChatMessage],
    new_message: ChatMessage,
    *,
    count_tokens: Callable[[Sequence[ChatMessage]], int],
    context_length: int,
    reply_budget: int,
    previous_first_kept: int = 0,
    headroom: float = 0.25,
) -> ContextPlan:
    """Choose the history to send so the prompt plus ``reply_budget`` fits ``context_length``.

    ``previous_first_kept`` is where the last turn's history started: keeping that cut stable keeps the
    prompt's prefix identical between turns, so llama.cpp can reuse its KV cache. When the cut has to move,
    it moves far enough to free ``headroom`` of the budget, so it does not move again on every turn.
    """
    budget = context_length - reply_budget
    if budget <= 0:
        raise ContextOverflowError(
            f"The reply budget of {reply_budget} tokens does not leave room for any message in a context of "
            f"{context_length} tokens. Lower the maximum reply length or raise the context length in settings.",
            needed_tokens=reply_budget,
            available_tokens=context_length,
        )
    minimal = count_tokens([system, new_message])
    if minimal > budget:
        raise ContextOverflowError(
            f"Your message is too long for this model: with Haven's instructions it needs {minimal} tokens, "
            f"but only {budget} fit beside a reply of up to {reply_budget} tokens "
            f"(context length {context_length}). Shorten the message, lower the maximum reply length, or "
            "raise the context length in settings.",
            needed_tokens=minimal,
            available_tokens=budget,
        )

    starts = _turn_starts(history)

    def plan(first: int) -> ContextPlan | None:
        messages = (system, *history[first:], new_message)
        used = count_tokens(messages)
        return ContextPlan(messages, used, first, first) if used <= budget else None

    stable = [s for s in starts if s >= previous_first_kept]
    first_try = plan(stable[0]) if stable else None
    if first_try is not None:
        return first_try
    # The cut must move: find the earliest start that fits, then move further until `headroom` is free.
    target = budget * (1.0 - headroom)
    fitting: ContextPlan | None = None
    for start in stable:
        candidate = plan(start)
        if candidate is None:
            continue
        if fitting is None:
            fitting = candidate
        if candidate.prompt_tokens <= target:
            return candidate
    if fitting is not None:
        return fitting
    # Unreachable in practice (the last start drops all history, which `minimal` showed fits); kept as a guard.
    return ContextPlan((system, new_message), minimal, len(history), len(history))
