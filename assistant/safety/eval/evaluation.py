"""The report of ``haven-cli safety eval``: how well the safety system generalizes, and how fast it is.

* Leave-one-source-out and random-split figures (:mod:`generalization`): per source, per language, per
  jailbreak style, at the thresholds chosen on the left-out sources, for the input check (prompts) and
  the output filter (replies judged with their request).
* Latency of the shipped checks, through the chat's own pipeline: the input check on a fixed sample of
  prompts (p50 / p99), and the output filter on a fixed sample of replies (per reply).

The checks and the vector store are passed in, so this module knows nothing of where things live.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.safety.eval.datasets import Example, load_examples
from assistant.safety.eval.generalization import generalization_report
from assistant.safety.eval.vectors import VectorStore

__all__ = ["ALPACA_SAMPLE", "LATENCY_SAMPLE", "evaluate", "evaluation_examples"]

ALPACA_SAMPLE = 3000   # of 31,323 (evaluation only, CC BY-NC): a false-block rate to +-0.5 %
LATENCY_SAMPLE = 400   # prompts (and a quarter as many replies) timed through the real checks


def evaluation_examples(public: Path, own: Path) -> list[Example]:
    examples = load_examples(public, own)
    alpaca = [e for e in examples if e.source == "alpaca"]
    keep = {id(e) for e in alpaca[:: max(1, len(alpaca) // ALPACA_SAMPLE)][:ALPACA_SAMPLE]}
    return [e for e in examples if e.source != "alpaca" or id(e) in keep]


def _percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50": round(statistics.median(ordered), 3),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3)}


def evaluate(public: Path, own: Path, store: VectorStore, check_prompt: Callable[[str], object],
             check_reply: Callable[[str, str], object],
             progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """``{"summary": {...}, "input": {...}, "output": {...}}``; ``check_prompt(text)`` and
    ``check_reply(prompt, reply)`` run the shipped checks (only their time is used here)."""
    examples = evaluation_examples(public, own)
    report = generalization_report(examples, store, progress)
    prompts = [e for e in examples if e.kind == "prompt"]
    replies = [e for e in examples if e.kind == "response"]
    timings: dict[str, Any] = {}
    runs: tuple[tuple[str, list[Example], int, Callable[[Example], object]], ...] = (
        ("input_check_ms", prompts, LATENCY_SAMPLE, lambda e: check_prompt(e.text)),
        ("output_filter_ms_per_reply", replies, LATENCY_SAMPLE // 4, lambda e: check_reply(e.context, e.text)))
    for name, chosen, count, run in runs:
        sample = chosen[:: max(1, len(chosen) // count)][:count]
        if not sample:
            continue
        progress(f"timing the shipped checks on {len(sample)} items")
        times = []
        for example in sample:
            started = time.perf_counter()
            run(example)
            times.append((time.perf_counter() - started) * 1000)
        timings[name] = _percentiles(times)
    report["summary"] |= {f"{name}_{k}": v for name, figures in timings.items() for k, v in figures.items()}
    return report
