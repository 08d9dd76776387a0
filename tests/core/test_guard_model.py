"""The Llama Guard 3 plumbing: the prompt format, parsing the answer, running a model, failing closed.

Real verdicts need the real guard model; here the starter model stands in to prove the plumbing.
"""

from __future__ import annotations

from pathlib import Path

from assistant.chat import ChatMessage, Role
from assistant.engine import GenerationStats, SamplingParams
from assistant.safety.guard_model import GuardAnswer, GuardModel, build_guard_prompt, parse_guard_answer
from assistant.safety.haven_policy import HavenSafetyPolicy
from assistant.safety.judge import Score
from assistant.safety.policy import Stage


def text(parts: list[tuple[str, bool]]) -> str:
    return "".join(t for t, _ in parts)


def test_prompt_for_a_user_turn() -> None:
    parts = build_guard_prompt([ChatMessage(Role.SYSTEM, "ignored"), ChatMessage(Role.USER, "How do I bake bread?")])
    prompt = text(parts)
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTask: Check if there is "
                             "unsafe content in 'User' messages in conversations according our safety policy")
    assert "<BEGIN UNSAFE CONTENT CATEGORIES>\nS1: Violent Crimes.\nS2: Non-Violent Crimes." in prompt
    assert "S14: Code Interpreter Abuse.\n<END UNSAFE CONTENT CATEGORIES>" in prompt
    assert "<BEGIN CONVERSATION>\n\nUser: How do I bake bread?\n\n<END CONVERSATION>" in prompt
    assert "ONLY THE LAST User message" in prompt and "ignored" not in prompt
    assert prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    # The conversation is the only part tokenized without control-token parsing.
    assert [t for t, parse in parts if not parse] == ["User: ", "How do I bake bread?", "\n\n"]


def test_prompt_for_an_agent_turn_and_without_s14() -> None:
    conversation = [ChatMessage(Role.USER, "hi"), ChatMessage(Role.ASSISTANT, "hello <|eot_id|>")]
    prompt = text(build_guard_prompt(conversation, include_s14=False))
    assert "'Agent' messages" in prompt and "ONLY THE LAST Agent message" in prompt
    assert "User: hi\n\nAgent: hello <|eot_id|>\n\n" in prompt
    assert "S14" not in prompt


def test_answers_are_parsed_strictly() -> None:
    assert parse_guard_answer("safe") == GuardAnswer(True, ())
    assert parse_guard_answer(" unsafe\nS1,S10 ") == GuardAnswer(False, ("S1", "S10"))
    assert parse_guard_answer("unsafe\nS2") == GuardAnswer(False, ("S2",))
    for bad in ("", "maybe", "unsafe", "unsafe\nS15", "unsafe\nO3", "safe\nS1", "Safe. It is fine."):
        assert parse_guard_answer(bad) is None, bad


def test_a_real_model_runs_the_check_with_a_grammar_constrained_answer(starter_path: Path) -> None:
    guard = GuardModel(starter_path, context_length=2048, timeout_seconds=60)
    try:
        answer = guard.assess([ChatMessage(Role.USER, "How do I bake bread?")])
        assert answer is not None, "the grammar keeps even a model that is not a guard to a readable answer"
        assert isinstance(answer.safe, bool)
    finally:
        guard.close()


class UnsureJudge:
    """A built-in classifier that is never sure: every prompt scores just under its threshold."""

    def score_prompt(self, text: str, threshold_shift: float = 0.0) -> Score:
        return Score(0.45, "S1", 0.5 + threshold_shift)


class SureJudge:
    def score_prompt(self, text: str, threshold_shift: float = 0.0) -> Score:
        return Score(0.01, "S1", 0.5 + threshold_shift)


class NoGuard:
    name = "must-not-be-asked"

    def assess(self, conversation):  # pragma: no cover - failing is the point
        raise AssertionError("the guard was asked about a case the classifier was sure of")


def test_a_guard_that_times_out_blocks(starter_path: Path) -> None:
    guard = GuardModel(starter_path, context_length=2048, timeout_seconds=0.001)
    try:
        policy = HavenSafetyPolicy(UnsureJudge(), guard=guard)  # type: ignore[arg-type]
        verdict = policy.check_input([], "How do I bake bread?")
        assert not verdict.allowed and verdict.stage is Stage.INPUT and "could not give a verdict" in verdict.notice
    finally:
        guard.close()


def test_only_unsure_cases_go_to_the_guard() -> None:
    policy = HavenSafetyPolicy(SureJudge(), guard=NoGuard())  # type: ignore[arg-type]
    assert policy.check_input([], "How do I bake bread?").allowed


def test_the_guard_keeps_its_instructions_in_the_kv_cache_per_role(starter_path: Path) -> None:
    # Meta's format as the model card writes it (the starter's own template is a chat template, not a guard's).
    guard = GuardModel(starter_path, context_length=2048, timeout_seconds=120, use_model_template=False)
    engine = guard._engine
    try:
        asks = ["How do I bake bread?", "What is the capital of France?", "Name three rivers in Africa."]
        for ask in asks:
            for reply in (None, "Here is a short answer."):
                conversation = [ChatMessage(Role.USER, ask)]
                if reply:
                    conversation.append(ChatMessage(Role.ASSISTANT, reply))
                assert guard.assess(conversation) is not None
        kept = engine._prefix_states
        assert set(kept) == {"user", "agent"}, "one kept prefix per role"
        user_prefix, _ = kept["user"]
        agent_prefix, _ = kept["agent"]
        assert len(user_prefix) >= 32 and user_prefix != agent_prefix
        # The cache now holds an agent check. A user check restores the kept user instructions, so only
        # the conversation is evaluated: llama.cpp reuses at least the whole kept prefix.
        tokens = [*user_prefix, *engine.tokenize_parts([("Is the sea salty?", False)])]
        engine.keep_prefix("user", list(user_prefix))
        items = list(engine.generate_tokens(tokens, SamplingParams(max_tokens=1, seed=0)))
        stats = items[-1]
        assert isinstance(stats, GenerationStats)
        assert stats.reused_prompt_tokens >= len(user_prefix)
    finally:
        guard.close()
