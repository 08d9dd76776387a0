"""``haven-cli bench``: the performance harness (see :mod:`assistant.bench` and docs/performance.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from assistant.bench.harness import BenchOptions, BenchReport, run_bench
from assistant.errors import UsageError

if TYPE_CHECKING:
    from assistant.core import Core

__all__ = ["add_bench_command"]

TARGETS: tuple[tuple[str, str, str, Callable[[float], bool] | None], ...] = (  # field, label, unit, target
    ("throughput_ratio", "throughput, Haven / raw llama-cpp-python", "", lambda v: v >= 0.95),
    ("independent_throughput_ratio", "same, haven-cli chat / llama-cpp-python", "", lambda v: v >= 0.95),
    ("safety_overhead", "safety share of turn time", "", lambda v: v <= 0.03),
    ("startup_window_ms", "start-up to window", "ms", lambda v: v <= 1500),
    ("startup_first_token_ms", "start-up to first text", "ms", None),
    ("rss_overhead_mb", "peak memory over model size", "MB", lambda v: v <= 300),
    ("ui_max_stall_ms", "longest UI stall while streaming", "ms", lambda v: v <= 50),
    ("long_load_ms", "opening 1,000 exchanges", "ms", lambda v: v <= 1000),
    ("long_max_stall_ms", "longest UI stall, streaming into them", "ms", lambda v: v <= 33),
    ("long_rss_mb", "app memory with them open", "MB", None),
    ("late_vs_early_tps", "speed at token 1000 / token 50", "", None),
    ("raw_tokens_per_second", "raw llama-cpp-python decode", "tok/s", None),
    ("haven_tokens_per_second", "Haven turn decode", "tok/s", None),
)


def _text_report(report: BenchReport) -> str:
    lines = [f"Haven benchmark on {report.model}"]
    data = report.to_json()
    for name, label, unit, passes in TARGETS:
        value = data[name]
        verdict = "" if value is None or passes is None else ("  ok" if passes(value) else "  MISSES TARGET")
        shown = "n/a" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")
        lines.append(f"  {label:<44} {shown:>10} {unit:<5}{verdict}")
    first = report.ttft_ms.get("1")
    for turn, value in report.ttft_ms.items():
        ratio = f"  ({value / first:.2f}x turn 1)" if first else ""
        lines.append(f"  {'time to first token, turn ' + turn:<44} {value:>10.1f} ms{ratio}")
    raw_late = report.details.get("raw_late_vs_early")
    if raw_late is not None:
        lines.append(f"  {'same, llama.cpp alone':<44} {raw_late:>10.3f}")
    safety = report.details.get("safety", {})
    for key in ("input_check_ms", "output_filter_call_ms"):
        if key in safety:
            lines.append(f"  {key.replace('_', ' '):<44} p50 {safety[key]['p50']:.3f} · p99 {safety[key]['p99']:.3f}")
    error = report.details.get("ui", {}).get("error")
    if error:
        lines.append(f"  desktop app not measured: {error}")
    long_error = report.details.get("ui_long", {}).get("error")
    if long_error:
        lines.append(f"  long conversation not measured: {long_error}")
    return "\n".join(lines) + "\n"


def cmd_bench(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    if args.pairs < 1:
        raise UsageError("--pairs must be at least 1.")
    options = BenchOptions.quick(args.model) if args.quick else BenchOptions(model=args.model, pairs=args.pairs)
    options = dataclasses.replace(options, ui=not args.no_ui)

    def progress(line: str) -> None:
        print(f"bench: {line}…", file=sys.stderr, flush=True)

    report = run_bench(core.paths, core.settings, core.registry, options, progress)
    if args.json:
        payload: dict[str, Any] = report.to_json()
        out.write(json.dumps(payload, indent=2) + "\n")
    else:
        out.write(_text_report(report))
    return 0


def add_bench_command(commands: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    bench = commands.add_parser("bench", parents=[common], help="measure Haven's speed against raw llama.cpp")
    bench.add_argument("--model", metavar="ID|PATH", help="an installed model id or a GGUF file (default: the starter)")
    bench.add_argument("--pairs", type=int, default=5, metavar="N", help="interleaved A/B pairs (default 5)")
    bench.add_argument("--no-ui", action="store_true", help="skip the desktop-app probe (start-up, memory, stalls)")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, figures mean little")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=cmd_bench)
