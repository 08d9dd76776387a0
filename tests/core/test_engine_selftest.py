"""The llama.cpp self-test (assistant/engine/selftest.py): a crash in the child steps down the ladder with a
sentence, never kills Haven, and a proven plan is remembered.

The crashes here are real: the probes below read address 0 through ctypes, so the child dies of SIGSEGV
exactly as it would inside llama.cpp. Only *when* they crash is chosen by the test."""

from __future__ import annotations

import ctypes
import json
import sys
import time
from pathlib import Path

import pytest

from assistant.chat import ChatMessage, Role
from assistant.engine import Engine, GenerationStats, LoadOptions, SamplingParams
from assistant.engine.selftest import CACHE_FILE, LoadPlan, ModelKind, NativeCheck, run_probe
from assistant.errors import ModelError

pytestmark = pytest.mark.model
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="signal names are POSIX")


def segfault() -> None:
    ctypes.string_at(0)  # a real invalid read: the process dies of SIGSEGV, as inside llama.cpp


# Probes run in the spawned child, so they live at module level where the child can import them.
def crash_with_extra_buffer_types(plan: LoadPlan) -> None:
    if plan.extra_bufts:
        segfault()
    run_probe(plan)


def crash_always(plan: LoadPlan) -> None:
    segfault()


def crash_on_gpu_or_extra_buffer_types(plan: LoadPlan) -> None:
    if plan.extra_bufts or plan.gpu_layers != 0:
        segfault()


def hang_with_extra_buffer_types(plan: LoadPlan) -> None:
    if plan.extra_bufts:
        time.sleep(600)


def load_nothing(plan: LoadPlan) -> None:
    """Passes without llama.cpp: for the ladder's logic alone."""


def reply(engine: Engine) -> tuple[str, GenerationStats]:
    pieces: list[str] = []
    stats = None
    for item in engine.generate([ChatMessage(Role.USER, "Name three colours.")],
                                SamplingParams(max_tokens=8, seed=1, temperature=0)):
        if isinstance(item, GenerationStats):
            stats = item
        else:
            pieces.append(item)
    assert stats is not None
    return "".join(pieces), stats


def remembered(cache: Path) -> list[dict[str, object]]:
    return list(json.loads((cache / CACHE_FILE).read_text())["results"].values())


def test_the_engine_proves_its_load_plan_then_decodes_a_multi_token_batch(starter_path: Path, tmp_path: Path) -> None:
    """On whatever CPU runs this (this project's machines have AMX), through the engine's real loading path."""
    with Engine(NativeCheck(tmp_path)) as engine:
        info = engine.load(starter_path, LoadOptions(context_length=1024))
        assert info.runtime_checked_now
        text, stats = reply(engine)
    assert text.strip() and stats.completion_tokens >= 2 and stats.prompt_tokens > 1
    [entry] = remembered(tmp_path)
    plan = entry["plan"]
    assert isinstance(plan, dict)
    assert plan["extra_bufts"] is info.extra_buffer_types
    # A step down always comes with the crash that caused it and a sentence for the person.
    assert bool(entry["failures"]) is (not info.extra_buffer_types) is (info.runtime_notice is not None)

    # The next load trusts the remembered plan: a probe that would crash is never started.
    with Engine(NativeCheck(tmp_path, probe=crash_always)) as engine:
        again = engine.load(starter_path, LoadOptions(context_length=1024))
        assert not again.runtime_checked_now
        assert again.extra_buffer_types is info.extra_buffer_types
        assert reply(engine)[0].strip()


@POSIX
def test_a_crash_in_the_self_test_steps_down_to_standard_cpu_code_with_a_sentence(
        starter_path: Path, tmp_path: Path) -> None:
    with Engine(NativeCheck(tmp_path, probe=crash_with_extra_buffer_types)) as engine:
        info = engine.load(starter_path, LoadOptions(context_length=1024))
        assert not info.extra_buffer_types
        assert info.runtime_notice is not None and "crashed" in info.runtime_notice
        assert reply(engine)[0].strip()  # and the model really runs
    [entry] = remembered(tmp_path)
    assert entry["failures"] == ["extra CPU buffer types (AMX, repacking): crashed (SIGSEGV)"]


@POSIX
def test_when_every_plan_crashes_loading_fails_with_a_sentence_and_haven_lives_on(
        starter_path: Path, tmp_path: Path) -> None:
    with Engine(NativeCheck(tmp_path, probe=crash_always)) as engine:
        with pytest.raises(ModelError, match=r"llama\.cpp crashed while loading .*SIGSEGV") as raised:
            engine.load(starter_path, LoadOptions(context_length=1024))
        assert "nothing was lost" in str(raised.value)
        assert engine.model is None
    # Remembered: the next attempt says so at once, without crashing a child again.
    started = time.monotonic()
    with pytest.raises(ModelError, match="crashed"):
        NativeCheck(tmp_path, probe=load_nothing).choose(
            LoadPlan(str(starter_path), ModelKind.CHAT, True, 0, 1024, 1))
    assert time.monotonic() - started < 1.0
    # And the engine that refused is not the only one: a healthy check loads the model in this process.
    with Engine(NativeCheck(tmp_path / "other")) as engine:
        assert engine.load(starter_path, LoadOptions(context_length=512)).name


@POSIX
def test_a_gpu_that_crashes_falls_back_to_the_cpu(starter_path: Path, tmp_path: Path) -> None:
    check = NativeCheck(tmp_path, probe=crash_on_gpu_or_extra_buffer_types, fingerprint=lambda: "build+cpu")
    chosen = check.choose(LoadPlan(str(starter_path), ModelKind.CHAT, True, -1, 1024, 1))
    assert (chosen.extra_bufts, chosen.gpu_layers) == (False, 0)
    assert chosen.notice is not None and "GPU" in chosen.notice
    assert len(remembered(tmp_path)[0]["failures"]) == 2  # type: ignore[arg-type]


def test_a_self_test_that_hangs_counts_as_a_failure(starter_path: Path, tmp_path: Path) -> None:
    check = NativeCheck(tmp_path, probe=hang_with_extra_buffer_types, fingerprint=lambda: "build+cpu", timeout_s=3)
    chosen = check.choose(LoadPlan(str(starter_path), ModelKind.CHAT, True, 0, 1024, 1))
    assert not chosen.extra_bufts
    assert "did not finish" in remembered(tmp_path)[0]["failures"][0]  # type: ignore[index]


def test_a_result_holds_only_for_the_same_build_cpu_and_file(starter_path: Path, tmp_path: Path) -> None:
    fingerprint = ["build A"]
    check = NativeCheck(tmp_path, probe=load_nothing, fingerprint=lambda: fingerprint[0])
    plan = LoadPlan(str(starter_path), ModelKind.CHAT, True, 0, 1024, 1)
    assert check.choose(plan).fresh
    assert not check.choose(plan).fresh
    fingerprint[0] = "build B"  # another llama.cpp build or another CPU: proven again
    assert check.choose(plan).fresh
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(starter_path.read_bytes())
    assert check.choose(LoadPlan(str(copy), ModelKind.CHAT, True, 0, 1024, 1)).fresh


def test_a_damaged_cache_file_is_proven_again_not_trusted(starter_path: Path, tmp_path: Path) -> None:
    (tmp_path / CACHE_FILE).write_text("{not json")
    check = NativeCheck(tmp_path, probe=load_nothing, fingerprint=lambda: "build")
    assert check.choose(LoadPlan(str(starter_path), ModelKind.CHAT, True, 0, 1024, 1)).fresh
    assert remembered(tmp_path)


