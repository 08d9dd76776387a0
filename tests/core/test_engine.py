"""The engine on the real starter model: streaming, stop, abort during prompt evaluation, seeds, timings."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from assistant.chat import ChatMessage, Role
from assistant.engine import Engine, GenerationStats, LoadOptions, SamplingParams, StopReason
from assistant.errors import ModelError

GREEDY = SamplingParams(temperature=0.0, seed=42, max_tokens=48)


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage(Role.SYSTEM, "You are a helpful assistant."), ChatMessage(Role.USER, text)]


def collect(stream) -> tuple[list[str], GenerationStats]:
    pieces, stats = [], None
    for item in stream:
        if isinstance(item, GenerationStats):
            stats = item
        else:
            pieces.append(item)
    assert stats is not None
    return pieces, stats


def test_streams_pieces_then_stats(engine: Engine) -> None:
    pieces, stats = collect(engine.generate(ask("Name three colours."), GREEDY))
    assert len(pieces) > 1, "a reply arrives in several pieces, not at once"
    assert "".join(pieces).strip()
    assert stats.completion_tokens >= len(pieces) - 1
    assert stats.prompt_tokens > 10
    assert stats.first_token_at is not None and stats.first_token_at >= stats.started_at
    assert stats.tokens_per_second > 0 and stats.decode_ms > 0
    assert stats.stop_reason in (StopReason.END, StopReason.LENGTH)


def test_greedy_is_deterministic_and_max_tokens_is_respected(engine: Engine) -> None:
    params = SamplingParams(temperature=0.0, seed=1, max_tokens=12)
    first, s1 = collect(engine.generate(ask("Count from one to twenty in words."), params))
    second, s2 = collect(engine.generate(ask("Count from one to twenty in words."), params))
    assert "".join(first) == "".join(second)
    assert s1.completion_tokens <= 12 and s2.stop_reason is StopReason.LENGTH


def test_fresh_seed_per_request_unless_given(engine: Engine) -> None:
    params = SamplingParams(temperature=1.0, max_tokens=4)
    seeds = {collect(engine.generate(ask("Hi"), params))[1].seed for _ in range(3)}
    assert len(seeds) == 3
    fixed = SamplingParams(temperature=1.0, max_tokens=4, seed=7)
    assert collect(engine.generate(ask("Tell me a story."), fixed))[1].seed == 7


def test_stop_within_one_token(engine: Engine) -> None:
    cancel = threading.Event()
    params = SamplingParams(temperature=0.8, seed=3, max_tokens=400)
    received_after_stop = 0
    stats = None
    for item in engine.generate(ask("Write a long essay about the history of the sea."), params, cancel):
        if isinstance(item, GenerationStats):
            stats = item
        elif cancel.is_set():
            received_after_stop += 1
        elif item:
            cancel.set()
    assert stats is not None and stats.stop_reason is StopReason.CANCELLED
    # The engine may have produced the token it was working on when Stop came, never more.
    assert received_after_stop <= 1
    assert stats.completion_tokens <= 3


def test_closing_the_stream_stops_generation(engine: Engine) -> None:
    stream = engine.generate(ask("Write a long essay about mountains."), SamplingParams(max_tokens=400, seed=5))
    next(stream)
    stream.close()
    # The engine thread is free again right away: a new request completes normally.
    _, stats = collect(engine.generate(ask("Say hello."), GREEDY))
    assert stats.stop_reason in (StopReason.END, StopReason.LENGTH)


def test_stop_during_long_prompt_evaluation(engine: Engine) -> None:
    long_text = "The quick brown fox jumps over the lazy dog. " * 150  # ~1500 tokens: seconds of prompt work
    cancel = threading.Event()
    timer = threading.Timer(0.15, cancel.set)
    started = time.monotonic()
    timer.start()
    pieces, stats = collect(engine.generate(ask(long_text), SamplingParams(max_tokens=8, seed=1), cancel))
    elapsed = time.monotonic() - started
    timer.cancel()
    assert stats.stop_reason is StopReason.CANCELLED
    assert pieces == [] and stats.completion_tokens == 0 and stats.first_token_at is None
    # The full prompt takes several seconds here; the abort callback cut it short.
    full = collect(engine.generate(ask(long_text), SamplingParams(max_tokens=1, seed=1)))[1]
    assert elapsed < full.prompt_eval_ms / 1000.0
    # And the engine still works normally afterwards.
    assert collect(engine.generate(ask("Say hi."), GREEDY))[1].stop_reason in (StopReason.END, StopReason.LENGTH)


def test_kv_cache_prefix_is_reused_for_a_growing_prompt(engine: Engine) -> None:
    base = ask("Name a fruit.")
    _, first = collect(engine.generate(base, GREEDY))
    longer = [*base, ChatMessage(Role.ASSISTANT, "Apple."), ChatMessage(Role.USER, "Another one?")]
    _, second = collect(engine.generate(longer, GREEDY))
    assert second.reused_prompt_tokens >= first.prompt_tokens - 1


def test_native_logs_go_to_python_logging(starter_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="assistant.llama_cpp"), Engine() as eng:
        info = eng.load(starter_path, LoadOptions(context_length=512, threads=1))
    assert any(r.name == "assistant.llama_cpp" for r in caplog.records)
    assert info.context_length == 512 and info.threads == 1
    assert info.gpu_layers == 0  # this build has no GPU offload, so automatic means none


def test_context_is_clamped_to_what_the_model_was_trained_on(starter_path: Path) -> None:
    with Engine() as eng:
        info = eng.load(starter_path, LoadOptions(context_length=100_000))
    assert info.context_length == info.trained_context_length == 8192


def test_broken_files_are_refused_with_a_sentence(tmp_path: Path, starter_path: Path) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello, I am not a model")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(starter_path.read_bytes()[:5000])
    cut_tensors = tmp_path / "cut-tensors.gguf"
    cut_tensors.write_bytes(starter_path.read_bytes()[: 20 * 1024 * 1024])
    with Engine() as eng:
        for path, words in ((not_gguf, "not a GGUF"), (truncated, "incomplete"), (cut_tensors, "could not load"),
                            (tmp_path / "missing.gguf", "does not exist")):
            with pytest.raises(ModelError, match=words):
                eng.load(path)
        assert eng.model is None
