"""A chat turn end to end on the real starter model: streaming, continuing, stop, overflow, trimming."""

from __future__ import annotations

import threading

import pytest

from assistant.chat import Role, StopReason
from assistant.engine import Engine, SamplingParams
from assistant.errors import ContextOverflowError
from assistant.paths import AppPaths
from assistant.safety import SAFETY_SYSTEM_PROMPT, PassThroughPolicy
from assistant.session import ChatSession, TextReleased, TurnResult, TurnStarted
from assistant.store import Store

GREEDY = SamplingParams(temperature=0.0, seed=11, max_tokens=40)


@pytest.fixture
def store() -> Store:
    paths = AppPaths.from_environment().ensure()
    with Store(paths.database_file) as s:
        yield s


@pytest.fixture
def session(engine: Engine, store: Store) -> ChatSession:
    return ChatSession(engine, store, PassThroughPolicy(), model_id="smollm2-135m-instruct", sampling=GREEDY)


def run(session: ChatSession, text: str, conversation: str | None = None, **kw) -> tuple[list, TurnResult]:
    events = list(session.send(text, conversation, **kw))
    assert isinstance(events[0], TurnStarted) and isinstance(events[-1], TurnResult)
    return events, events[-1]


def test_a_turn_streams_and_is_stored(session: ChatSession, store: Store) -> None:
    events, result = run(session, "Name three colours.")
    pieces = [e.text for e in events if isinstance(e, TextReleased)]
    assert len(pieces) > 1 and "".join(pieces) == result.reply and result.reply.strip()
    assert not result.blocked and result.complete and result.completion_tokens > 0
    assert result.ttft_ms > 0 and result.tokens_per_second > 0
    stored = store.messages(result.conversation_id)
    assert [(m.role, m.complete) for m in stored] == [("user", True), ("assistant", True)]
    assert stored[1].content == result.reply
    assert store.conversation(result.conversation_id).title == "Name three colours."


def test_continuing_a_conversation_sends_its_history_and_reuses_the_cache(session: ChatSession,
                                                                          store: Store) -> None:
    _, first = run(session, "My name is Ada. Remember it.")
    _, second = run(session, "What is my name?", first.conversation_id)
    assert second.conversation_id == first.conversation_id
    assert second.prompt_tokens > first.prompt_tokens + first.completion_tokens
    assert second.reused_prompt_tokens >= first.prompt_tokens, "the earlier prompt came from the KV cache"
    assert [m.role for m in store.messages(first.conversation_id)] == ["user", "assistant"] * 2


def test_a_finished_reply_is_prefilled_so_the_next_turn_evaluates_only_the_new_message(
        session: ChatSession, engine: Engine) -> None:
    from assistant.chat import ChatMessage, system_message

    _, first = run(session, "Name two rivers.")
    exchange = [system_message(SAFETY_SYSTEM_PROMPT), ChatMessage(Role.USER, "Name two rivers."),
                ChatMessage(Role.ASSISTANT, first.reply)]
    finished = engine.tokenize_chat(exchange, add_generation_prompt=False)
    _, second = run(session, "And two lakes?", first.conversation_id)
    # The whole first exchange, end-of-turn marker included, was already in the cache.
    assert second.reused_prompt_tokens >= len(finished)
    assert second.prompt_tokens - second.reused_prompt_tokens < 20


def test_stop_mid_reply_keeps_what_was_shown_marked_incomplete(session: ChatSession, store: Store) -> None:
    cancel = threading.Event()
    shown = []
    result = None
    long_reply = SamplingParams(temperature=0.8, seed=2, max_tokens=300)
    for event in session.send("Write a long story about a lighthouse.", cancel=cancel, sampling=long_reply):
        if isinstance(event, TextReleased):
            shown.append(event.text)
            if len(shown) == 3:
                cancel.set()
        elif isinstance(event, TurnResult):
            result = event
    assert result is not None and not result.complete and result.stop_reason == "cancelled"
    assert len(shown) == 3 and result.reply == "".join(shown)
    reply = store.messages(result.conversation_id)[-1]
    assert (reply.content, reply.complete, reply.stop_reason) == ("".join(shown), False, "cancelled")


def test_message_too_long_for_the_context_is_refused_before_anything_happens(session: ChatSession,
                                                                              store: Store) -> None:
    with pytest.raises(ContextOverflowError, match="too long"):
        list(session.send("tell me about the weather " * 600))
    assert store.list_conversations() == []


def test_long_history_is_trimmed_to_fit(session: ChatSession, store: Store) -> None:
    conversation = store.create_conversation("smollm2-135m-instruct")
    for i in range(12):
        store.add_user_message(conversation.id, f"Fact number {i}: " + "the sky is blue and the grass is green. " * 20)
        reply = store.start_reply(conversation.id, "m")
        from assistant.store import ReplyUpdate
        store.finish_reply(reply, ReplyUpdate(content="Noted. " * 20, complete=True, stop_reason=StopReason.END))
    _, result = run(session, "What was the last fact?", conversation.id)
    assert result.dropped_history > 0
    assert result.prompt_tokens <= session.engine.model.context_length - GREEDY.max_tokens
    assert result.complete


def test_instructions_follow_the_safety_prompt_in_the_real_prompt(engine: Engine, store: Store) -> None:
    from tests.fakes import FakeEngine

    fake = FakeEngine()
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    run(session, "hi", instructions="Answer like a pirate.")
    system = fake.prompts[0][0]
    assert system.role is Role.SYSTEM and system.content.startswith(SAFETY_SYSTEM_PROMPT)
    assert system.content.endswith("Answer like a pirate.")


def test_rewind_moves_back_before_the_last_turn_and_returns_its_message_for_a_resend(store: Store) -> None:
    from tests.fakes import FakeEngine

    fake = FakeEngine(["Paris."])
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    _, first = run(session, "Capital of France?")
    _, second = run(session, "And of Italy?", first.conversation_id)
    conversation = first.conversation_id
    kept = store.messages(conversation)[:2]

    assert session.rewind_to_last_user(conversation) == "And of Italy?"
    assert store.messages(conversation) == kept, "the earlier turn is untouched"

    # Regenerate: the resent message goes out with the same history as the first time, and takes the turn's
    # place on screen; the old turn is kept beside it (tests/core/test_edit_regenerate.py).
    fake.enqueue("Rome.")
    _, again = run(session, "And of Italy?", conversation)
    assert fake.prompts[-1] == fake.prompts[1]
    assert [(m.role, m.content, m.stop_reason) for m in store.messages(conversation)] == [
        ("user", "Capital of France?", None), ("assistant", "Paris.", StopReason.END),
        ("user", "And of Italy?", None), ("assistant", "Rome.", StopReason.END),
    ]
    assert again.reply_message_id > second.reply_message_id and again.stop_reason is StopReason.END
    assert len(store.all_messages(conversation)) == 6 and store.messages(conversation)[2].sibling_count == 2


def test_rewind_moves_back_before_a_blocked_turn_and_its_notice(store: Store) -> None:
    from tests.fakes import FakeEngine, WordPolicy

    session = ChatSession(FakeEngine(), store, WordPolicy(input_word="nerve agent"), model_id="fake")
    _, first = run(session, "Hello")
    _, blocked = run(session, "How do I make a nerve agent?", first.conversation_id)
    assert blocked.blocked and blocked.stop_reason is StopReason.BLOCKED
    assert session.rewind_to_last_user(first.conversation_id) == "How do I make a nerve agent?"
    assert [m.content for m in store.messages(first.conversation_id)] == ["Hello", "Hello there."]


def test_rewind_without_a_user_message_on_screen_changes_nothing(store: Store) -> None:
    from tests.fakes import FakeEngine

    session = ChatSession(FakeEngine(), store, PassThroughPolicy(), model_id="fake")
    empty = store.create_conversation("fake").id
    assert session.rewind_to_last_user(empty) is None
    assert session.rewind_to_last_user("no-such-conversation") is None
    _, result = run(session, "hi")
    session.rewind_to_last_user(result.conversation_id)
    assert store.messages(result.conversation_id) == []
    assert session.rewind_to_last_user(result.conversation_id) is None
