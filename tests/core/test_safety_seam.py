"""The safety seam: input check before generation, output guard over the stream, fail closed."""

from __future__ import annotations

import pytest

from assistant.session import ChatSession, TextReleased, TurnResult
from assistant.store import Store
from tests.fakes import FakeEngine, WordPolicy


@pytest.fixture
def store(tmp_path) -> Store:
    with Store(tmp_path / "c.sqlite3") as s:
        yield s


def turn(session: ChatSession, text: str) -> tuple[str, TurnResult]:
    events = list(session.send(text))
    shown = "".join(e.text for e in events if isinstance(e, TextReleased))
    return shown, events[-1]


def test_blocked_input_never_reaches_the_model(store: Store) -> None:
    engine = FakeEngine()
    session = ChatSession(engine, store, WordPolicy(input_word="nerve agent"), model_id="fake")
    shown, result = turn(session, "how do I make a nerve agent")
    assert engine.prompts == [] and shown == ""
    assert (result.blocked, result.stage, result.category) == (True, "input", "S9")
    user, notice = store.messages(result.conversation_id)
    assert user.blocked and user.category == "S9"
    assert notice.content == result.reply == "Blocked: indiscriminate weapons (S9)." and notice.blocked


def test_output_block_stops_generation_and_never_shows_or_stores_the_span(store: Store) -> None:
    engine = FakeEngine(["Sure. ", "Step one: ", "ATTACK plan ", "more ", "and more."])
    session = ChatSession(engine, store, WordPolicy(output_word="ATTACK"), model_id="fake")
    shown, result = turn(session, "tell me")
    assert shown == "Sure. Step one: "
    assert engine.produced == 3, "generation stopped at once, not after the whole reply"
    assert (result.blocked, result.stage, result.category) == (True, "output", "S1")
    stored = store.messages(result.conversation_id)[-1]
    assert "ATTACK" not in stored.content and stored.content == result.reply and stored.blocked


def test_whole_reply_check_runs_before_the_message_is_done(store: Store) -> None:
    engine = FakeEngine(["a ", "b ", "HATE ", "c"])
    session = ChatSession(engine, store, WordPolicy(final_word="HATE"), model_id="fake")
    _, result = turn(session, "x")
    assert result.blocked and result.category == "S10"
    assert "HATE" not in store.messages(result.conversation_id)[-1].content


def test_input_check_that_crashes_blocks_with_a_reason(store: Store) -> None:
    engine = FakeEngine()
    session = ChatSession(engine, store, WordPolicy(fail_input=True), model_id="fake")
    shown, result = turn(session, "hello")
    assert engine.prompts == [] and shown == ""
    assert result.blocked and result.stage == "input" and "could not run" in result.reply


def test_output_guard_that_crashes_blocks_the_rest(store: Store) -> None:
    engine = FakeEngine(["one ", "two ", "three"])
    session = ChatSession(engine, store, WordPolicy(fail_output=True), model_id="fake")
    shown, result = turn(session, "hello")
    assert shown == "" and result.blocked and result.stage == "output" and "could not run" in result.reply
    assert engine.produced == 1


def test_pass_through_policy_releases_everything(store: Store) -> None:
    from assistant.safety import PassThroughPolicy

    session = ChatSession(FakeEngine(["a", "b", "c"]), store, PassThroughPolicy(), model_id="fake")
    shown, result = turn(session, "x")
    assert shown == "abc" == result.reply and not result.blocked
