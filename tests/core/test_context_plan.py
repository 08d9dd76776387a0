"""History trimming and overflow, with a simple token counter (one token per word plus overhead)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from assistant.chat import ChatMessage, Role, plan_context, system_message
from assistant.errors import ContextOverflowError

SYSTEM = ChatMessage(Role.SYSTEM, "rules " * 20)


def count(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.content.split()) + 4 for m in messages)


def turns(n: int, words: int = 30) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    for i in range(n):
        history.append(ChatMessage(Role.USER, f"question{i} " * words))
        history.append(ChatMessage(Role.ASSISTANT, f"answer{i} " * words))
    return history


def test_everything_fits() -> None:
    history = turns(2)
    plan = plan_context(SYSTEM, history, ChatMessage(Role.USER, "new"), count_tokens=count,
                        context_length=1000, reply_budget=100)
    assert plan.messages == (SYSTEM, *history, ChatMessage(Role.USER, "new")) and plan.dropped == 0


def test_oldest_whole_turns_are_dropped_keeping_system_and_newest() -> None:
    history = turns(10)  # 10 turns x 68 tokens
    new = ChatMessage(Role.USER, "newest question")
    plan = plan_context(SYSTEM, history, new, count_tokens=count, context_length=500, reply_budget=100)
    assert plan.messages[0] == SYSTEM and plan.messages[-1] == new
    assert plan.prompt_tokens <= 400 and plan.prompt_tokens == count(plan.messages)
    assert plan.dropped > 0 and plan.dropped % 2 == 0, "whole turns go, never half of one"
    assert plan.messages[1].role is Role.USER
    assert plan.messages[1:-1] == tuple(history[plan.first_kept:])


def test_cut_stays_put_while_it_fits_and_moves_with_headroom() -> None:
    history = turns(10)
    new = ChatMessage(Role.USER, "q")
    first = plan_context(SYSTEM, history, new, count_tokens=count, context_length=500, reply_budget=100)
    # The budget left after a cut leaves room for a few more turns without moving the cut again.
    assert first.prompt_tokens <= 0.75 * 400 + 68
    grown = [*history, ChatMessage(Role.USER, "q"), ChatMessage(Role.ASSISTANT, "a")]
    second = plan_context(SYSTEM, grown, new, count_tokens=count, context_length=500, reply_budget=100,
                          previous_first_kept=first.first_kept)
    assert second.first_kept == first.first_kept, "same cut, so the prompt prefix (and KV cache) is reused"


def test_message_that_cannot_fit_is_refused_before_generation() -> None:
    huge = ChatMessage(Role.USER, "word " * 600)
    with pytest.raises(ContextOverflowError, match="too long") as info:
        plan_context(SYSTEM, turns(1), huge, count_tokens=count, context_length=512, reply_budget=128)
    assert info.value.needed_tokens > info.value.available_tokens


def test_reply_budget_larger_than_context_is_refused() -> None:
    with pytest.raises(ContextOverflowError, match="reply budget"):
        plan_context(SYSTEM, [], ChatMessage(Role.USER, "x"), count_tokens=count, context_length=512,
                     reply_budget=512)


def test_safety_prompt_always_first_and_user_instructions_after_it() -> None:
    message = system_message("SAFETY FIRST", "Talk like a pirate.")
    assert message.content.startswith("SAFETY FIRST")
    assert message.content.endswith("Talk like a pirate.")
    assert system_message("SAFETY FIRST", "   ").content == "SAFETY FIRST"
