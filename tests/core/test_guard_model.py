"""The Llama Guard 3 plumbing: the prompt format, parsing the answer, running a model, failing closed.

Real verdicts need the real guard model; here the starter model stands in to prove the plumbing.
"""

from __future__ import annotations

from pathlib import Path

from assistant.chat import ChatMessage, Role
from assistant.safety.guard_model import GuardAnswer, GuardModel, build_guard_prompt, parse_guard_answer
from assistant.safety.haven_policy import HavenSafetyPolicy
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


def test_a_guard_that_times_out_blocks(starter_path: Path) -> None:
    from assistant.safety.classifier import load_classifier

    guard = GuardModel(starter_path, context_length=2048, timeout_seconds=0.001)
    try:
        policy = HavenSafetyPolicy(load_classifier("input"), load_classifier("output"), guard=guard)
        verdict = policy.check_input([], "How do I bake bread?")
        assert not verdict.allowed and verdict.stage is Stage.INPUT and "could not give a verdict" in verdict.notice
    finally:
        guard.close()
