"""Reasoning models: thinking split from the answer piece by piece (tags split anywhere), filtered before it
is shown, stored apart, never sent back; ``<think>`` opened by the template; gpt-oss's channels."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.chat import ChatMessage, Role, StopReason
from assistant.engine import Engine, LoadOptions, SamplingParams
from assistant.events import ReasoningDone, ReasoningReleased, TextReleased, TurnResult, TurnStarted
from assistant.generation import FilteredReply
from assistant.paths import AppPaths
from assistant.reasoning import Channel, ReasoningSplitter, prompt_opens_reasoning, template_opens
from assistant.safety import OutputGuard, PassThroughPolicy, SafetyPolicy, Stage, Verdict
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT
from assistant.safety.stream import StreamFilter
from assistant.session import ChatSession
from assistant.store import Store
from tests.fakes import FakeEngine, WordPolicy
from tests.gguf_patch import patched_copy

THINKING = "<think>\nThe user wants a sum. 2 + 2 is 4.\n</think>\n\nIt is 4."


def split(pieces: Sequence[str], opened: bool = False) -> tuple[str, str, int]:
    """(reasoning, answer, how many times the thinking ended) from feeding ``pieces``."""
    splitter = ReasoningSplitter(opened=opened)
    segments = [s for piece in pieces for s in splitter.feed(piece)] + splitter.finish()
    reasoning = "".join(s.text for s in segments if s.channel is Channel.REASONING)
    answer = "".join(s.text for s in segments if s.channel is Channel.ANSWER)
    ends = sum(s.ends_reasoning for s in segments)
    assert all(not (s.ends_reasoning and s.text) for s in segments)
    return reasoning, answer, ends


def chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in pairwise(points)]


@pytest.mark.parametrize(("raw", "opened", "expected"), [
    (THINKING, False, ("The user wants a sum. 2 + 2 is 4.", "It is 4.", 1)),
    ("<thinking>Hmm.</thinking>Yes.", False, ("Hmm.", "Yes.", 1)),
    # The chat template already wrote <think>: the model writes only the closing tag.
    ("Let me count.\n</think>\n\nThree.", True, ("Let me count.", "Three.", 1)),
    # Qwen3 with thinking switched off: an empty block.
    ("<think>\n\n</think>\n\nHello!", False, ("", "Hello!", 1)),
    # A reply that talks about the tags is an answer, tags and all.
    ("Use <think> tags like <think>this</think>.", False, ("", "Use <think> tags like <think>this</think>.", 0)),
    ("No thinking here; 3 < 4 and 5 > 2.", False, ("", "No thinking here; 3 < 4 and 5 > 2.", 0)),
    (" A leading space and\n\n  indentation stay.\n", False, ("", " A leading space and\n\n  indentation stay.\n", 0)),
    ("\n<think>x</think>\n\nAnswer", False, ("x", "Answer", 1)),
    # Cut off while thinking (max tokens): all of it is reasoning, and the thinking still ends.
    ("<think>I wonder whether", False, ("I wonder whether", "", 1)),
    # gpt-oss (harmony): analysis is reasoning, final is the answer, control markers never show.
    ("<|channel|>analysis<|message|>Need the capital.<|end|><|start|>assistant<|channel|>final<|message|>"
     "Paris.<|return|>", False, ("Need the capital.", "Paris.", 1)),
    ("<|channel|>analysis<|message|>First.<|end|><|start|>assistant<|channel|>analysis<|message|>Second.<|end|>"
     "<|start|>assistant<|channel|>final<|message|>Done.", False, ("First.\n\nSecond.", "Done.", 1)),
])
def test_split(raw: str, opened: bool, expected: tuple[str, str, int]) -> None:
    assert split([raw], opened) == expected
    # One character at a time: every tag arrives split across pieces.
    assert split(list(raw), opened) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([THINKING, "<thinking>a\nb</thinking>c",
                        "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>y"]),
       st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_any_chunking_gives_the_same_split(raw: str, cuts: list[int]) -> None:
    assert split(chunks(raw, cuts)) == split([raw])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>/|think")), max_size=40),
       st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_arbitrary_text_is_never_lost_or_invented_outside_markers(text: str, cuts: list[int]) -> None:
    reasoning, answer, _ = split(chunks(text, cuts))
    assert (reasoning, answer) == split([text])[:2]
    if "<" not in text:
        assert (answer, reasoning) == (text, ""), "a reply without thinking is given out exactly as written"


def test_prompt_tail_detection() -> None:
    assert prompt_opens_reasoning("<｜Assistant｜><think>\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")


class OpeningEngine(FakeEngine):
    """A scripted engine whose chat template ends its prompt with ``<think>`` (as DeepSeek-R1's does)."""

    VOCAB = ("<｜Assistant｜>", "<think>", "\n")

    def tokenize_chat(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]:
        return [0, 1, 2] if add_generation_prompt else [0]

    def token_text(self, token: int) -> str:
        return self.VOCAB[token]


def test_template_opens_reads_the_prompt_tokens(engine: Engine) -> None:
    assert template_opens(OpeningEngine()) is True
    assert template_opens(FakeEngine()) is False  # cannot show its prompt: read as not opened
    assert template_opens(engine) is False  # the starter model's template does not think


OPENING_TEMPLATE = (  # ChatML, with the generation prompt opening the thinking as DeepSeek-R1's template does
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


@pytest.mark.model
def test_a_real_model_whose_template_opens_the_thinking(starter_path: Path, tmp_path: Path) -> None:
    """llama.cpp on the starter model with its template changed to end the prompt inside <think>: the session
    reads that from the real prompt tokens, so the whole reply (it never closes the tag) is thinking."""
    thinking = patched_copy(starter_path, tmp_path / "thinking.gguf",
                            strings={"tokenizer.chat_template": OPENING_TEMPLATE})
    with Engine() as engine, Store(tmp_path / "c.sqlite3") as store:
        engine.load(thinking, LoadOptions(context_length=1024))
        assert template_opens(engine) is True
        session = ChatSession(engine, store, PassThroughPolicy(), model_id="thinking",
                              sampling=SamplingParams(temperature=0.0, seed=5, max_tokens=24))
        events = list(session.send("Name a colour."))
        result = events[-1]
        assert isinstance(result, TurnResult) and result.completion_tokens > 0
        released = "".join(e.text for e in events if isinstance(e, ReasoningReleased))
        assert result.reasoning.strip() and released == result.reasoning and result.reply == ""
        assert store.messages(result.conversation_id)[-1].reasoning == result.reasoning


@pytest.fixture
def store() -> Store:
    with Store(AppPaths.from_environment().ensure().database_file) as s:
        yield s


def test_a_turn_with_thinking_streams_it_apart_stores_it_and_never_sends_it_back(store: Store) -> None:
    fake = FakeEngine(["<thi", "nk>\nThe user", " wants a sum.", " 2 + 2 is 4.\n</th", "ink>\n\nIt", " is 4."])
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    events = list(session.send("What is 2 + 2?"))
    kinds = [type(e) for e in events]
    assert kinds[0] is TurnStarted and kinds[-1] is TurnResult
    last_reasoning = max(i for i, k in enumerate(kinds) if k is ReasoningReleased)
    assert kinds.index(ReasoningDone) > last_reasoning and kinds.index(TextReleased) > kinds.index(ReasoningDone)
    thinking = "".join(e.text for e in events if isinstance(e, ReasoningReleased))
    answer = "".join(e.text for e in events if isinstance(e, TextReleased))
    result = events[-1]
    assert isinstance(result, TurnResult)
    assert (thinking, answer) == ("The user wants a sum. 2 + 2 is 4.", "It is 4.")
    assert (result.reply, result.reasoning) == (answer, thinking) and result.reasoning_ms is not None
    assert result.to_json()["reasoning"] == thinking
    stored = store.messages(result.conversation_id)[-1]
    assert (stored.content, stored.reasoning, stored.reasoning_ms) == (answer, thinking, result.reasoning_ms)
    assert fake.prefilled[-1] == ChatMessage(Role.ASSISTANT, "It is 4."), "the cache holds the answer only"

    fake.enqueue("Six.")
    list(session.send("And 3 + 3?", result.conversation_id))
    sent = " ".join(m.content for m in fake.prompts[-1])
    assert "wants a sum" not in sent and "<think>" not in sent and "It is 4." in sent


def test_a_reply_that_starts_inside_the_thinking(store: Store) -> None:
    fake = OpeningEngine(["Three letters", " in cat.\n", "</think>", "\n\nThree."])
    session = ChatSession(fake, store, PassThroughPolicy(), model_id="fake")
    result = list(session.send("How many letters in cat?"))[-1]
    assert isinstance(result, TurnResult)
    assert (result.reasoning, result.reply) == ("Three letters in cat.", "Three.")


def test_a_reply_without_thinking_has_empty_reasoning(store: Store) -> None:
    session = ChatSession(FakeEngine(["Hi", " there."]), store, PassThroughPolicy(), model_id="fake")
    events = list(session.send("Hello"))
    result = events[-1]
    assert isinstance(result, TurnResult)
    assert not any(isinstance(e, ReasoningReleased | ReasoningDone) for e in events)
    assert (result.reasoning, result.reasoning_ms, result.to_json()["reasoning"]) == ("", None, "")


class SpanPolicy:
    """The real stream filter (sentence spans, held back until checked) with a check that blocks a word."""

    name = "span-policy"
    system_prompt = SAFETY_SYSTEM_PROMPT

    def __init__(self, word: str) -> None:
        self.word = word
        self.guards = 0

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict:
        return Verdict.allow(Stage.INPUT)

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        self.guards += 1

        def check(text: str) -> Verdict:
            if self.word in text:
                return Verdict(False, Stage.OUTPUT, "S9", "Blocked: indiscriminate weapons (S9).")
            return Verdict.allow(Stage.OUTPUT)

        return StreamFilter(check, check, min_span=10)


def test_harmful_thinking_is_never_released_and_blocks_the_turn(store: Store) -> None:
    policy = SpanPolicy("SARIN")
    fake = FakeEngine(["<think>Okay, the user asks.", " Steps to make SARIN", " at home: first", "</think>",
                       "Here is how."])
    session = ChatSession(fake, store, policy, model_id="fake")
    events = list(session.send("question"))
    result = events[-1]
    assert isinstance(result, TurnResult)
    released = "".join(e.text for e in events if isinstance(e, ReasoningReleased | TextReleased))
    assert "SARIN" not in released and "Here is how" not in released
    assert result.blocked and result.stop_reason is StopReason.BLOCKED and result.reasoning == ""
    stored = store.messages(result.conversation_id)[-1]
    assert stored.blocked and "SARIN" not in stored.content + stored.reasoning
    assert fake.produced < len(fake.pieces), "generation stopped at the block"


def test_thinking_and_answer_each_get_a_guard_and_the_whole_check(store: Store) -> None:
    policy = SpanPolicy("never-said")
    session = ChatSession(FakeEngine(["<think>Short.</think>", "Fine."]), store, policy, model_id="fake")
    result = list(session.send("hi"))[-1]
    assert isinstance(result, TurnResult) and (result.reasoning, result.reply) == ("Short.", "Fine.")
    assert policy.guards == 2
    # A word only the whole thinking shows (split over two spans) is caught by the final check.
    reply = FilteredReply(WholePolicy("ab"), [], "q")
    events = reply.feed("<think>xa") + reply.feed("bx</think>") + reply.finish()
    assert reply.block is not None and not any(isinstance(e, ReasoningReleased) for e in events)


class WholePolicy(SpanPolicy):
    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        return StreamFilter(lambda span: Verdict.allow(Stage.OUTPUT),
                            lambda whole: Verdict(False, Stage.OUTPUT, "S1", "Blocked.") if self.word in whole
                            else Verdict.allow(Stage.OUTPUT), max_hold=1000)


def test_a_failing_guard_fails_closed_for_thinking_too(store: Store) -> None:
    policy: SafetyPolicy = WordPolicy(fail_output=True)
    session = ChatSession(FakeEngine(["<think>Hmm.</think>", "Yes."]), store, policy, model_id="fake")
    events = list(session.send("hi"))
    assert not any(isinstance(e, ReasoningReleased | TextReleased) for e in events)
    result = events[-1]
    assert isinstance(result, TurnResult) and result.blocked


def test_gpt_oss_as_llama_cpp_renders_it_is_split_without_its_end_markers() -> None:
    """llama.cpp's vocabulary loader marks gpt-oss's <|channel|>, <|message|> and <|start|> as text to
    render, while <|end|> stays a control token that renders as nothing (llama-server's output shows the
    same): the analysis channel must still end at the next header."""
    rendered = ("<|channel|>analysis<|message|>User says hi. Respond politely.<|start|>assistant"
                "<|channel|>final<|message|>Hello! How can I help?")
    splitter = ReasoningSplitter()
    segments = [s for i in range(0, len(rendered), 5) for s in splitter.feed(rendered[i : i + 5])]
    segments += splitter.finish()
    reasoning = "".join(s.text for s in segments if s.channel is Channel.REASONING)
    answer = "".join(s.text for s in segments if s.channel is Channel.ANSWER)
    assert reasoning == "User says hi. Respond politely."
    assert answer == "Hello! How can I help?"
