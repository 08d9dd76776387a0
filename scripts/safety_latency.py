#!/usr/bin/env python3
"""Latency of the input check as the chat runs it (one BLAS thread, the shipped heads), on the same 400
prompts ``haven-cli safety eval`` times, each with a cold encoder cache; p50/p90/p99 and the median by
number of windows read. Needs the safety data beside the checkout (or HAVEN_SAFETY_DATA).

    .venv/bin/python scripts/safety_latency.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.paths import resource_path
from assistant.safety.encoder import load_encoder
from assistant.safety.eval.evaluation import LATENCY_SAMPLE, evaluation_examples
from assistant.safety.factory import single_threaded_blas
from assistant.safety.heads import load_heads
from assistant.safety.judge import SafetyJudge, prompt_windows
from training.common import OWN_DATA, PUBLIC_DATA


def main() -> int:
    single_threaded_blas()
    judge = SafetyJudge(load_encoder(), *load_heads(resource_path("safety", "heads.npz")))
    prompts = [e for e in evaluation_examples(PUBLIC_DATA, OWN_DATA) if e.kind == "prompt"]
    sample = prompts[:: max(1, len(prompts) // LATENCY_SAMPLE)][:LATENCY_SAMPLE]
    for e in sample[:20]:
        judge.score_prompt(e.text + " (warm-up)")
    rows: list[tuple[float, int]] = []
    for e in sample:
        judge.encoder._cache.clear()  # as for a new message: nothing of it encoded yet
        started = time.perf_counter()
        judge.score_prompt(e.text)
        rows.append(((time.perf_counter() - started) * 1000, len(prompt_windows(e.text))))
    times = sorted(t for t, _ in rows)
    print(f"input check over {len(times)} prompts: p50 {statistics.median(times):.1f} ms, "
          f"p90 {times[int(0.9 * len(times))]:.1f} ms, p99 {times[int(0.99 * len(times))]:.1f} ms")
    for windows in sorted({w for _, w in rows}):
        chosen = [t for t, w in rows if w == windows]
        print(f"  {windows} window(s): {len(chosen)} prompts, median {statistics.median(chosen):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
