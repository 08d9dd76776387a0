"""``haven-cli bench``: how much Haven costs on top of llama.cpp, measured in one run.

Everything runs against a throw-away data folder, so a benchmark never touches the user's conversations
or safety log. The parts:

1. throughput: full Haven turns (session, safety on, store) against plain llama-cpp-python on the same
   prompt tokens, settings and seed, in interleaved pairs (A/B, then B/A); the median per-pair ratio.
   Every pair has its own seed, so every reply is new and no cache of the safety checks can answer for
   them; and the same again as an independent measure, outside this harness: ``haven-cli chat --json``
   in a process of its own against a plain llama-cpp-python process (:func:`assistant.bench.raw.main`);
2. time to first token at turns 1, 5, 10 and 20 of one growing conversation;
3. the safety system's latency and its share of the turns' time;
4. a 1,000-token reply: the speed near the 1,000th token against the 50th;
5. the desktop app in a fresh process (:mod:`ui.bench_probe`): start-up to window and to first text,
   peak memory, and the longest stall of the UI thread while a reply streams;
6. the desktop app on a long conversation (:mod:`assistant.bench.long_conversation`): the time to open
   1,000 exchanges, the longest UI stall while a reply streams into it, and the process's memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from assistant.bench.long_conversation import LONG_EXCHANGES, seed_long_conversation
from assistant.bench.probes import TimedPolicy, TokenClock, percentile, tokens_per_second_near
from assistant.bench.raw import RawBaseline
from assistant.chat import ChatMessage, Role, system_message
from assistant.core import load_options, sampling_params
from assistant.engine import Engine, ModelInfo, SamplingParams
from assistant.errors import HavenError
from assistant.models.registry import STARTER_MODEL_ID, ModelRegistry
from assistant.paths import HOME_VARIABLE, AppPaths
from assistant.safety.factory import build_policy
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT
from assistant.session import ChatSession, TurnResult
from assistant.settings import Settings, save_settings
from assistant.store import Store

__all__ = ["BenchOptions", "BenchReport", "run_bench"]

log = logging.getLogger(__name__)

STORY_PROMPT = "Write a detailed story about a lighthouse keeper and her cat."
CHAT_BLOCKED_EXIT = 3  # haven-cli chat's exit status for a blocked turn (INTERFACES.md): a valid run
INDEPENDENT_PROMPT = "Write a detailed story about a baker who finds a map in a loaf of bread."
# With end-of-turn ignored the starter model keeps writing plain text past 1,000 tokens, and nothing in it
# trips the output filter (a block would end the reply early and spoil the measurement).
LONG_PROMPT = "Count from 1 to 500, one number per line."
CONVERSATION_TOPICS = (
    "tea", "bicycles", "houseplants", "sleep", "running", "bread", "photography", "saving money", "chess",
    "painting", "birdwatching", "cooking rice", "public speaking", "learning Spanish", "camping", "knitting",
    "gardening", "writing letters", "swimming", "baking cookies",
)
# Every turn of the growing conversation sends a message of the same length, so the time to first token
# compares like with like: what changes from turn 1 to turn 20 is only the history behind it.
# Each conversation gets its own letter, so its first turn cannot reuse the previous conversation's.
CONVERSATION_MESSAGE = "Give me one more short tip for a happy day, list {run}, number {turn:02d}."
TTFT_TURNS = (1, 5, 10, 20)
UI_PROBE_TIMEOUT_S = 600


@dataclass(frozen=True, slots=True)
class BenchOptions:
    model: str | None = None        # an installed model id or a GGUF path; None: the starter model
    pairs: int = 5                  # interleaved A/B pairs for the throughput ratio
    reply_tokens: int = 160         # tokens per throughput turn
    conversation_turns: int = 20
    conversation_runs: int = 3      # growing conversations; each turn's time is the median over them
    turn_tokens: int = 40           # reply length in the growing conversation
    long_tokens: int = 1000         # length of the long reply
    long_runs: int = 3              # long replies (each with a llama.cpp-alone run beside it)
    ui: bool = True                 # run the desktop-app probe
    ui_runs: int = 3                # fresh app processes; the medians are reported
    independent_pairs: int = 3      # haven-cli chat --json against a llama-cpp-python process, interleaved
    long_exchanges: int = LONG_EXCHANGES  # the long-conversation probe's conversation (0: no probe)
    seed: int = 1234

    @classmethod
    def quick(cls, model: str | None = None) -> BenchOptions:
        """Small sizes that still exercise every measurement (the test suite's run; not for figures)."""
        return cls(model=model, pairs=1, reply_tokens=24, conversation_turns=20, turn_tokens=6, long_tokens=120,
                   long_runs=1, conversation_runs=1, ui_runs=1, independent_pairs=1, long_exchanges=40)


@dataclass
class BenchReport:
    model: str
    throughput_ratio: float
    ttft_ms: dict[str, float]
    safety_overhead: float
    startup_window_ms: float | None
    startup_first_token_ms: float | None
    rss_overhead_mb: float | None
    ui_max_stall_ms: float | None
    late_vs_early_tps: float
    raw_tokens_per_second: float
    haven_tokens_per_second: float
    independent_throughput_ratio: float | None = None  # haven-cli chat --json / llama-cpp-python, own processes
    long_load_ms: float | None = None       # opening the long conversation in the window
    long_max_stall_ms: float | None = None  # the longest UI stall while a reply streams into it
    long_rss_mb: float | None = None        # the app's resident memory after that
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: the issue's fields first, then ``details`` with the raw material."""
        data = dataclasses.asdict(self)
        details = data.pop("details")
        data.pop("model")
        return {**{k: _rounded(v) for k, v in data.items()}, "model": self.model, "details": details}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


Progress = Callable[[str], None]


def run_bench(paths: AppPaths, settings: Settings, registry: ModelRegistry, options: BenchOptions = BenchOptions(),
              progress: Progress = lambda _line: None) -> BenchReport:
    model_path, chat_format, label = _resolve_model(registry, options.model)
    with tempfile.TemporaryDirectory(prefix="haven-bench-") as scratch:
        bench_paths = AppPaths.from_environment({"HAVEN_HOME": str(Path(scratch) / "core")}).ensure()
        store = Store(bench_paths.database_file)
        policy = TimedPolicy(build_policy(bench_paths, settings, registry))
        engine = Engine()
        try:
            progress(f"loading {label}")
            info = engine.load(model_path, load_options(settings, chat_format))
            sampling = sampling_params(settings, max_tokens=options.reply_tokens, seed=options.seed)
            session = ChatSession(engine, store, policy, model_id=label, sampling=sampling)
            details: dict[str, Any] = {"model_path": str(model_path), "threads": info.threads,
                                       "gpu_layers": info.gpu_layers, "context_length": info.context_length}
            throughput = _throughput(engine, info, session, sampling, options, progress, details)
            independent = _independent(engine, info, model_path, bench_paths, options, progress, details)
            ttft = _conversation_ttft(session, options, progress, details)
            late_vs_early = _long_replies(engine, info, store, policy, label, sampling, options, progress, details)
            turn_ms = sum(details.pop("_turn_ms"))
            input_checks = _input_check_latency(policy, progress)
        finally:
            engine.close()
            store.close()
        times = policy.times
        details["safety"] = {
            "input_check_ms": {"p50": percentile(input_checks, 50), "p99": percentile(input_checks, 99),
                               "samples": len(input_checks)},
            "output_filter_call_ms": {"p50": percentile(times.output_ms, 50), "p99": percentile(times.output_ms, 99),
                                      "samples": len(times.output_ms)},
            "whole_reply_check_ms": {"p50": percentile(times.finish_ms, 50), "p99": percentile(times.finish_ms, 99)},
            "safety_ms_in_turns": times.total_ms(), "turn_ms": turn_ms,
        }
        ui = _ui_probes(Path(scratch), registry, options, model_path, progress) if options.ui else {}
        long = (_long_probe(Path(scratch) / "ui-long", registry, options, model_path, progress)
                if options.ui and options.long_exchanges > 0 else {})
    details["ui"] = ui
    details["ui_long"] = long
    rss = ui.get("peak_rss_bytes")
    return BenchReport(
        model=label, throughput_ratio=throughput[0], ttft_ms=ttft,
        safety_overhead=times.total_ms() / turn_ms if turn_ms > 0 else 0.0,
        startup_window_ms=ui.get("window_ms"), startup_first_token_ms=ui.get("first_text_ms"),
        rss_overhead_mb=(rss - ui.get("model_size_bytes", 0)) / 2**20 if isinstance(rss, int) else None,
        ui_max_stall_ms=ui.get("ui_max_stall_ms"), late_vs_early_tps=late_vs_early,
        raw_tokens_per_second=throughput[1], haven_tokens_per_second=throughput[2],
        independent_throughput_ratio=independent, long_load_ms=long.get("long_load_ms"),
        long_max_stall_ms=long.get("long_max_stall_ms"), long_rss_mb=long.get("long_rss_mb"), details=details,
    )


def _resolve_model(registry: ModelRegistry, model: str | None) -> tuple[Path, str | None, str]:
    """An installed id, or a path to a GGUF file (checked when it is loaded)."""
    if model is None:
        model = STARTER_MODEL_ID
    installed = registry.find(model)
    if installed is not None:
        return installed.path, installed.chat_format, installed.id
    path = Path(model).expanduser()
    if path.is_file():
        return path, None, path.name
    raise HavenError(f"{model!r} is neither an installed model id nor a GGUF file; see `haven-cli models list`.")


def _timed_turn(session: ChatSession, text: str, conversation: str | None = None,
                sampling: SamplingParams | None = None) -> tuple[TurnResult, float, float]:
    """One turn; returns its result, when it was sent and when the result arrived (perf_counter)."""
    sent = time.perf_counter()
    result: TurnResult | None = None
    for event in session.send(text, conversation, sampling=sampling):
        if isinstance(event, TurnResult):
            result = event
    if result is None:
        raise HavenError("The benchmark turn ended without a result.")
    return result, sent, time.perf_counter()


def _throughput(engine: Engine, info: ModelInfo, session: ChatSession, sampling: SamplingParams,
                options: BenchOptions, progress: Progress, details: dict[str, Any]) -> tuple[float, float, float]:
    """Median per-pair ratio of Haven's to raw llama-cpp-python's decode speed, and the two medians."""
    prompt = [system_message(session.policy.system_prompt), ChatMessage(Role.USER, STORY_PROMPT)]
    tokens = engine.tokenize_chat(prompt)
    raw = RawBaseline(info.path, n_ctx=info.context_length, threads=info.threads, gpu_layers=info.gpu_layers,
                      extra_bufts=info.extra_buffer_types)
    turn_ms: list[float] = []
    pairs: list[dict[str, Any]] = []
    try:
        raw.complete(tokens, sampling, options.seed)  # warm-up: caches, page faults, first allocations
        _timed_turn(session, STORY_PROMPT)
        for index in range(options.pairs):
            progress(f"throughput pair {index + 1}/{options.pairs}")
            runs: dict[str, float] = {}
            seed = options.seed + 1 + index  # a reply no earlier pair produced: nothing cached can answer
            pair_sampling = dataclasses.replace(sampling, seed=seed)
            for side in ("raw", "haven") if index % 2 == 0 else ("haven", "raw"):
                if side == "raw":
                    run = raw.complete(tokens, pair_sampling, seed)
                    runs["raw"], runs["raw_tokens"] = run.tokens_per_second, run.completion_tokens
                else:
                    result, sent, ended = _timed_turn(session, STORY_PROMPT, sampling=pair_sampling)
                    turn_ms.append((ended - sent) * 1000.0)
                    first = sent + result.ttft_ms / 1000.0
                    runs["haven"] = (result.completion_tokens - 1) / (ended - first) if ended > first else 0.0
                    runs["haven_tokens"], runs["blocked"] = result.completion_tokens, result.blocked
            pairs.append({**runs, "ratio": runs["haven"] / runs["raw"] if runs["raw"] else 0.0})
    finally:
        raw.close()
    details["pairs"] = pairs
    details["prompt_tokens"] = len(tokens)
    details["_turn_ms"] = turn_ms
    return (statistics.median(p["ratio"] for p in pairs), statistics.median(p["raw"] for p in pairs),
            statistics.median(p["haven"] for p in pairs))


def _independent(engine: Engine, info: ModelInfo, model_path: Path, paths: AppPaths, options: BenchOptions,
                 progress: Progress, details: dict[str, Any]) -> float | None:
    """Decode speed of ``haven-cli chat --json`` (a process of its own, the whole pipeline, its own report)
    against a plain llama-cpp-python process on the same prompt tokens, settings and seed, interleaved,
    each pair with a new seed; the median per-pair ratio. Both use default settings, as a new user would."""
    if options.independent_pairs <= 0:
        return None
    model_id = ModelRegistry(paths).import_file(model_path, "bench-independent").id
    sampling = sampling_params(Settings(), max_tokens=options.reply_tokens, seed=options.seed)
    prompt = INDEPENDENT_PROMPT
    tokens = engine.tokenize_chat([system_message(SAFETY_SYSTEM_PROMPT), ChatMessage(Role.USER, prompt)])
    env = {**os.environ, HOME_VARIABLE: str(paths.data_dir.parent)}
    job_file = paths.cache_dir / "bench-raw-job.json"
    pairs: list[dict[str, Any]] = []
    for index in range(options.independent_pairs):
        progress(f"independent pair {index + 1}/{options.independent_pairs}: haven-cli chat and llama-cpp-python")
        seed = options.seed + 101 + index
        runs: dict[str, Any] = {"seed": seed}
        for side in ("raw", "haven") if index % 2 == 0 else ("haven", "raw"):
            if side == "raw":
                job_file.write_text(json.dumps({
                    "path": str(model_path), "n_ctx": info.context_length, "threads": info.threads,
                    "gpu_layers": info.gpu_layers, "extra_bufts": info.extra_buffer_types, "prompt_tokens": tokens,
                    "params": dataclasses.asdict(sampling), "seed": seed}), encoding="utf-8")
                command = [sys.executable, "-m", "assistant.bench.raw", str(job_file)]
            else:
                command = [sys.executable, "-m", "assistant", "chat", "--json", "--new", "--model", model_id,
                           "--seed", str(seed), "--max-tokens", str(options.reply_tokens), prompt]
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
            lines = done.stdout.strip().splitlines()
            if done.returncode not in (0, CHAT_BLOCKED_EXIT) or not lines:
                raise HavenError(f"The independent measure's {side} run failed: "
                                 f"{(done.stderr or done.stdout).strip()[-300:]}")
            result = json.loads(lines[-1])
            runs[side], runs[f"{side}_tokens"] = result["tokens_per_second"], result["completion_tokens"]
            if side == "haven":
                runs["blocked"] = result["blocked"]
        pairs.append({**runs, "ratio": runs["haven"] / runs["raw"] if runs["raw"] else 0.0})
    details["independent_pairs"] = pairs
    return float(statistics.median(float(p["ratio"]) for p in pairs))


def _conversation_ttft(session: ChatSession, options: BenchOptions, progress: Progress,
                       details: dict[str, Any]) -> dict[str, float]:
    """Time to first token per turn of a growing conversation: the median over a few conversations,
    since one turn's figure on this machine moves by tens of milliseconds from run to run."""
    sampling = dataclasses.replace(session.sampling, max_tokens=options.turn_tokens)
    runs: list[list[dict[str, Any]]] = []
    for run in range(options.conversation_runs):
        conversation: str | None = None
        turns: list[dict[str, Any]] = []
        for turn in range(1, options.conversation_turns + 1):
            progress(f"conversation {run + 1}/{options.conversation_runs}, turn {turn}/{options.conversation_turns}")
            message = CONVERSATION_MESSAGE.format(run="ABCDEFGH"[run % 8], turn=turn)
            result, sent, ended = _timed_turn(session, message, conversation, sampling)
            conversation = result.conversation_id
            details["_turn_ms"].append((ended - sent) * 1000.0)
            turns.append({"turn": turn, "ttft_ms": result.ttft_ms, "prompt_tokens": result.prompt_tokens,
                          "reused_prompt_tokens": result.reused_prompt_tokens})
        runs.append(turns)
    details["conversations"] = runs
    count = min(len(turns) for turns in runs)
    return {str(t): statistics.median(turns[t - 1]["ttft_ms"] for turns in runs) for t in TTFT_TURNS if t <= count}


def _long_replies(engine: Engine, info: ModelInfo, store: Store, policy: TimedPolicy, label: str,
                  sampling: SamplingParams, options: BenchOptions, progress: Progress,
                  details: dict[str, Any]) -> float:
    """The median over a few long Haven turns, interleaved with llama.cpp alone on the same prompt.

    One reply takes many seconds, and this machine's speed drifts over that time; several interleaved
    runs keep that drift from looking like a slowdown of Haven's."""
    haven: list[float] = []
    raw: list[float] = []
    runs: list[dict[str, Any]] = []
    for index in range(options.long_runs):
        progress(f"a {options.long_tokens}-token reply ({index + 1}/{options.long_runs})")
        haven.append(_long_reply(engine, store, policy, label, sampling, options, details))
        raw.append(_raw_long_reply(engine, info, sampling, options))
        runs.append({**details.pop("long_reply"), "raw_late_vs_early": raw[-1]})
    details["long_replies"] = runs
    details["raw_late_vs_early"] = statistics.median(raw)
    return statistics.median(haven)


def _long_reply(engine: Engine, store: Store, policy: TimedPolicy, label: str, sampling: SamplingParams,
                options: BenchOptions, details: dict[str, Any]) -> float:
    """Speed near the 1,000th piece over speed near the 50th, in one full Haven turn."""
    clock = TokenClock(engine)
    session = ChatSession(clock, store, policy, model_id=label)
    params = dataclasses.replace(sampling, max_tokens=options.long_tokens + 50, ignore_eos=True)
    result, sent, ended = _timed_turn(session, LONG_PROMPT, sampling=params)
    details["_turn_ms"].append((ended - sent) * 1000.0)
    times = clock.piece_times
    late_index = min(options.long_tokens, len(times) - 1)
    early, late = tokens_per_second_near(times, 50), tokens_per_second_near(times, late_index)
    details["long_reply"] = {"pieces": len(times), "completion_tokens": result.completion_tokens,
                             "blocked": result.blocked, "tps_near_50": early, f"tps_near_{late_index}": late}
    return late / early if early > 0 else 0.0


def _raw_long_reply(engine: Engine, info: ModelInfo, sampling: SamplingParams, options: BenchOptions) -> float:
    """The same ratio for llama.cpp alone (tokens only, no text): how much of the slowdown along a long
    reply is the attention over a growing context, which no layer above llama.cpp can change."""
    tokens = engine.tokenize_chat([system_message(SAFETY_SYSTEM_PROMPT), ChatMessage(Role.USER, LONG_PROMPT)])
    raw = RawBaseline(info.path, n_ctx=info.context_length, threads=info.threads, gpu_layers=info.gpu_layers,
                      extra_bufts=info.extra_buffer_types)
    try:
        times = raw.token_times(tokens, options.long_tokens + 50, sampling, options.seed)
    finally:
        raw.close()
    late_index = min(options.long_tokens, len(times) - 1)
    early, late = tokens_per_second_near(times, 50), tokens_per_second_near(times, late_index)
    return late / early if early > 0 else 0.0


def _input_check_latency(policy: TimedPolicy, progress: Progress) -> list[float]:
    """The input check on 200 prompts of growing length, each with a growing conversation behind it."""
    progress("input check latency")
    before = len(policy.times.input_ms)
    history: list[ChatMessage] = []
    for index in range(200):
        topic = CONVERSATION_TOPICS[index % len(CONVERSATION_TOPICS)]
        prompt = f"Tell me about {topic}. " + "Please add some background and a few examples. " * (index % 12)
        policy.check_input(history[-6:], prompt)
        history += [ChatMessage(Role.USER, prompt), ChatMessage(Role.ASSISTANT, f"Here is something about {topic}.")]
    return policy.times.input_ms[before:]


def _ui_probes(scratch: Path, registry: ModelRegistry, options: BenchOptions, model_path: Path,
               progress: Progress) -> dict[str, Any]:
    """A few fresh app processes; each figure is the median over them (a cold start varies a lot here)."""
    runs = [_ui_probe(scratch / f"ui-{index}", registry, options, model_path, progress)
            for index in range(options.ui_runs)]
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[0]
    merged = dict(good[0])
    for key in ("window_ms", "model_ready_ms", "first_text_ms", "ui_max_stall_ms", "peak_rss_bytes"):
        values = [run[key] for run in good if isinstance(run.get(key), int | float)]
        if values:
            merged[key] = type(values[0])(statistics.median(values))
    merged["runs"] = runs
    return merged


def _long_probe(home: Path, registry: ModelRegistry, options: BenchOptions, model_path: Path,
                progress: Progress) -> dict[str, Any]:
    """The long-conversation probe (``haven --bench-probe-long``) in a fresh process, on a seeded conversation."""
    progress(f"desktop app: a conversation of {options.long_exchanges} exchanges")
    database = AppPaths.from_environment({"HAVEN_HOME": str(home)}).ensure().database_file
    seed_long_conversation(database, options.long_exchanges)
    out = home / "bench-probe-long.json"
    return _ui_probe(home, registry, options, model_path, progress, ["--bench-probe-long", str(out)], out)


def _ui_probe(home: Path, registry: ModelRegistry, options: BenchOptions, model_path: Path,
              progress: Progress, arguments: list[str] | None = None, out: Path | None = None) -> dict[str, Any]:
    """Run the desktop app's probe (``haven --bench-probe``, :mod:`ui.bench_probe`, or the ``arguments``
    given) in a fresh process on the same model; its figures, or an error."""
    haven = _haven_executable()
    if haven is None:
        return {"error": "the desktop app (the `haven` program) is not installed beside haven-cli"}
    if arguments is None:
        progress("desktop app: start-up, first text, memory, UI stalls")
        out = home / "bench-probe.json"
        arguments = ["--bench-probe", str(options.reply_tokens * 2), str(out)]
    assert out is not None
    probe_paths = AppPaths.from_environment({"HAVEN_HOME": str(home)}).ensure()
    if options.model not in (None, STARTER_MODEL_ID):  # the app opens on its default model: make it this one
        probe_registry = ModelRegistry(probe_paths)
        imported = probe_registry.import_file(model_path, name="bench-model")
        save_settings(probe_paths.settings_file, Settings().replace(default_model=imported.id))
    env = {**os.environ, "HAVEN_HOME": str(home), "QT_QPA_PLATFORM": "offscreen",
           "HAVEN_BENCH_T0": repr(time.time())}
    try:
        done = subprocess.run([str(haven), *arguments], env=env,
                              capture_output=True, text=True, timeout=UI_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"the desktop-app probe did not finish ({exc})"}
    if done.returncode != 0 or not out.is_file():
        return {"error": f"the desktop-app probe failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"}
    return cast(dict[str, Any], json.loads(out.read_text(encoding="utf-8")))


def _haven_executable() -> Path | None:
    """The desktop app's program beside this one: the frozen bundle's ``haven`` next to ``haven-cli``, or the
    ``haven`` entry point in the same environment's scripts folder."""
    folder = Path(sys.executable).parent
    for name in ("haven", "haven.exe"):
        if (folder / name).is_file():
            return folder / name
    found = shutil.which("haven")
    return Path(found) if found else None
