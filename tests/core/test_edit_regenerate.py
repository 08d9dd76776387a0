"""Editing any message and regenerating any reply: a sibling is added, nothing is deleted, the prompt is the
path to the new message only, and the edited text goes through the input check like any sent text.

The scripted engine records every prompt; one test runs the real starter model."""

from __future__ import annotations

import pytest

from assistant.chat import ChatMessage, Role, StopReason
from assistant.engine import Engine, SamplingParams
from assistant.errors import HavenError
from assistant.paths import AppPaths
from assistant.safety import PassThroughPolicy
from assistant.session import ChatSession, TextReleased, TurnEvent, TurnResult, TurnStarted
from assistant.store import MessageNotFoundError, Store
from tests.fakes import FakeEngine, WordPolicy


@pytest.fixture
def store() -> Store:
    with Store(AppPaths.from_environment().ensure().database_file) as s:
        yield s


def finish(events: list[TurnEvent]) -> TurnResult:
    assert isinstance(events[0], TurnStarted) and isinstance(events[-1], TurnResult)
    return events[-1]


def dialogue(prompt: list[ChatMessage]) -> list[tuple[str, str]]:
    """The prompt without its system message."""
    return [(m.role.value, m.content) for m in prompt if m.role is not Role.SYSTEM]


def three_turns(session: ChatSession, fake: FakeEngine) -> tuple[str, list[int]]:
    conversation = None
    for question, answer in (("Capital of France?", "Paris."), ("Of Italy?", "Rome."), ("Of Spain?", "Madrid.")):
        fake.enqueue(answer)
        conversation = finish(list(session.send(question, conversation))).conversation_id
    assert conversation is not None
    return conversation, [m.id for m in session.store.messages(conversation)]


def test_editing_an_early_message_branches_and_sends_only_the_path_to_it(store: Store) -> None:
    fake = FakeEngine()
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    conversation, ids = three_turns(session, fake)
    old_branch = store.messages(conversation)

    fake.enqueue("Ro", "me, still.")
    events = list(session.edit(conversation, ids[2], "And of Italy, please?"))
    result = finish(events)
    # The same events as a send: the turn starts with the new message, text pieces, then the result.
    assert [type(e) for e in events] == [TurnStarted, TextReleased, TextReleased, TurnResult]
    assert "".join(e.text for e in events if isinstance(e, TextReleased)) == result.reply == "Rome, still."
    assert dialogue(fake.prompts[-1]) == [("user", "Capital of France?"), ("assistant", "Paris."),
                                          ("user", "And of Italy, please?")]

    on_screen = store.messages(conversation)
    assert [m.content for m in on_screen] == ["Capital of France?", "Paris.", "And of Italy, please?", "Rome, still."]
    assert events[0].user_message_id == on_screen[2].id and result.reply_message_id == on_screen[3].id
    assert result.user_message_id == on_screen[2].id
    assert (on_screen[2].parent_id, on_screen[2].sibling_index, on_screen[2].sibling_count) == (ids[1], 2, 2)
    assert len(store.all_messages(conversation)) == 8, "nothing was deleted"

    # The old branch is one switch away, whole.
    back = store.switch_branch(conversation, on_screen[2].id, -1)
    assert [(m.id, m.content) for m in back] == [(m.id, m.content) for m in old_branch]
    assert (back[2].sibling_index, back[2].sibling_count) == (1, 2)


def test_editing_the_first_message_starts_a_new_root(store: Store) -> None:
    fake = FakeEngine()
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    conversation, ids = three_turns(session, fake)
    fake.enqueue("Berlin.")
    finish(list(session.edit(conversation, ids[0], "Capital of Germany?")))
    assert dialogue(fake.prompts[-1]) == [("user", "Capital of Germany?")]
    first = store.messages(conversation)[0]
    assert (first.content, first.parent_id, first.sibling_index, first.sibling_count) == (
        "Capital of Germany?", None, 2, 2)


def test_regenerate_adds_a_reply_beside_the_old_one_with_the_same_prompt(store: Store) -> None:
    fake = FakeEngine()
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    conversation, ids = three_turns(session, fake)
    fake.enqueue("Rome, the Eternal City.")
    result = finish(list(session.regenerate(conversation, ids[3])))
    assert fake.prompts[-1] == fake.prompts[1], "the prompt that produced the old reply, exactly"
    on_screen = store.messages(conversation)
    assert [m.content for m in on_screen] == ["Capital of France?", "Paris.", "Of Italy?", "Rome, the Eternal City."]
    assert (on_screen[-1].parent_id, on_screen[-1].sibling_index, on_screen[-1].sibling_count) == (ids[2], 2, 2)
    assert result.user_message_id == ids[2] and result.stop_reason is StopReason.END
    # Given the user's message instead of the reply: a third reply to it.
    fake.enqueue("Roma.")
    finish(list(session.regenerate(conversation, ids[2])))
    assert store.messages(conversation)[-1].sibling_count == 3
    assert len(store.all_messages(conversation)) == 8
    # The newest branch is what the next message continues.
    fake.enqueue("Madrid.")
    finish(list(session.send("Of Spain?", conversation)))
    assert dialogue(fake.prompts[-1])[-2:] == [("assistant", "Roma."), ("user", "Of Spain?")]


def test_an_edited_message_goes_through_the_input_check(store: Store) -> None:
    fake = FakeEngine(["Sure."])
    session = ChatSession(fake, store, WordPolicy(input_word="nerve agent"), model_id="fake")
    first = finish(list(session.send("Hello")))
    [question, answer] = store.messages(first.conversation_id)
    calls = len(fake.prompts)
    blocked = finish(list(session.edit(first.conversation_id, question.id, "How do I make a nerve agent?")))
    assert blocked.blocked and blocked.stage == "input" and blocked.stop_reason is StopReason.BLOCKED
    assert len(fake.prompts) == calls, "nothing was generated"
    edited, notice = store.messages(first.conversation_id)
    assert edited.blocked and notice.blocked and notice.content == blocked.reply
    assert edited.sibling_count == 2
    # The blocked version never reaches a prompt: a message sent after it goes out without it.
    finish(list(session.send("What's the weather?", first.conversation_id)))
    assert dialogue(fake.prompts[-1]) == [("user", "What's the weather?")]
    # And the original version is still there.
    assert [m.content for m in store.switch_branch(first.conversation_id, edited.id, -1)] == ["Hello", answer.content]


def test_regenerating_a_blocked_turn_checks_the_message_again(store: Store) -> None:
    policy = WordPolicy(input_word="nerve agent")
    fake = FakeEngine(["An answer."])
    session = ChatSession(fake, store, policy, model_id="fake")
    blocked = finish(list(session.send("Tell me about nerve agent history")))
    assert blocked.blocked
    again = finish(list(session.regenerate(blocked.conversation_id, blocked.reply_message_id)))
    assert again.blocked and fake.prompts == []
    # The checks changed (say, a different policy); regenerate lets it through and clears the flag.
    session.policy = PassThroughPolicy()
    allowed = finish(list(session.regenerate(blocked.conversation_id, blocked.reply_message_id)))
    assert not allowed.blocked and allowed.reply == "An answer."
    question, reply = store.messages(blocked.conversation_id)
    assert not question.blocked and reply.sibling_count == 3
    assert dialogue(fake.prompts[-1]) == [("user", "Tell me about nerve agent history")]


def test_an_edit_plans_its_own_branchs_history_afresh(store: Store) -> None:
    """The last send's history cut is kept only by a turn that continues that send's history; an edit plans
    its branch afresh and keeps what fits (here all five earlier turns, where the old cut would leave one)."""
    fake = FakeEngine(["ok"], context_length=300)
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake", sampling=SamplingParams(max_tokens=20))
    conversation = None
    for i in range(8):
        conversation = finish(list(session.send(f"Fact {i}: " + "word " * 12, conversation))).conversation_id
    assert conversation is not None
    last_send = [c.split(":")[0] for r, c in dialogue(fake.prompts[-1]) if r == "user"]
    assert last_send == ["Fact 4", "Fact 5", "Fact 6", "Fact 7"], "the sends had to drop the first turns"
    sixth = store.messages(conversation)[10]
    finish(list(session.edit(conversation, sixth.id, "Fact five, again.")))
    edited = [c.split(":")[0] for r, c in dialogue(fake.prompts[-1]) if r == "user"]
    assert edited == ["Fact 0", "Fact 1", "Fact 2", "Fact 3", "Fact 4", "Fact five, again."]


def test_wrong_targets_are_sentences(store: Store) -> None:
    fake = FakeEngine()
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    result = finish(list(session.send("hi")))
    with pytest.raises(HavenError, match="Only your own messages"):
        list(session.edit(result.conversation_id, result.reply_message_id, "x"))
    with pytest.raises(MessageNotFoundError):
        list(session.regenerate(result.conversation_id, 987654))
    with pytest.raises(HavenError, match="empty"):
        list(session.edit(result.conversation_id, result.user_message_id, "   "))
    assert len(store.all_messages(result.conversation_id)) == 2


def test_rewind_is_no_longer_destructive(store: Store) -> None:
    """The desktop window's older regenerate (rewind, then send) now adds a sibling too."""
    fake = FakeEngine(["Paris."])
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    first = finish(list(session.send("Capital of France?")))
    assert session.rewind_to_last_user(first.conversation_id) == "Capital of France?"
    assert store.messages(first.conversation_id) == []
    fake.enqueue("Paris, again.")
    finish(list(session.send("Capital of France?", first.conversation_id)))
    question, answer = store.messages(first.conversation_id)
    assert (question.sibling_index, question.sibling_count, answer.content) == (2, 2, "Paris, again.")
    assert len(store.all_messages(first.conversation_id)) == 4


@pytest.mark.model
def test_editing_an_early_message_on_the_real_model(engine: Engine, store: Store) -> None:
    greedy = SamplingParams(temperature=0.0, seed=3, max_tokens=24)
    session = ChatSession(engine, store, PassThroughPolicy(), model_id="smollm2-135m-instruct", sampling=greedy)
    first = finish(list(session.send("My name is Ada.")))
    second = finish(list(session.send("Name three fruits.", first.conversation_id)))
    question = store.messages(first.conversation_id)[0]
    edited = finish(list(session.edit(first.conversation_id, question.id, "My name is Grace.")))
    assert edited.reply.strip() and edited.complete
    # Only the path to the new message was evaluated: a shorter prompt than the later turn's.
    assert edited.prompt_tokens < second.prompt_tokens
    assert store.messages(first.conversation_id)[0].content == "My name is Grace."
    regenerated = finish(list(session.regenerate(first.conversation_id, edited.reply_message_id)))
    assert regenerated.prompt_tokens == edited.prompt_tokens and regenerated.complete
    assert len(store.all_messages(first.conversation_id)) == 7
