"""The figures of ``haven-cli safety eval``: the safety system on the test split of every data set it knows.

Recall on harmful items, false-block rate on benign ones (reported separately for benign prompts that
only sound dangerous), per-category recall, and check latency p50/p99, for the input check (prompts)
and the output filter (responses). The test split is never trained or tuned on (see ``datasets``). The
checks are passed in, so this module knows nothing of the safety pipeline or of where the data lives.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.safety.eval.datasets import Example, load_examples, split_of

__all__ = ["SetFigures", "evaluate"]

ALPACA_SAMPLE = 5000  # of 31,323: enough for a false-block rate to +-0.3 %, in seconds


@dataclass
class SetFigures:
    """The counts of one source at one stage, for one kind of item."""

    name: str
    stage: str
    kind: str                    # "harmful", "benign" or "contrast" (benign that sounds dangerous)
    items: int = 0
    blocked: int = 0
    per_category: dict[str, list[int]] = field(default_factory=dict)  # code -> [blocked, items]

    @property
    def rate(self) -> float:
        return self.blocked / self.items if self.items else 0.0

    def to_json(self) -> dict[str, object]:
        key = "recall" if self.kind == "harmful" else "false_block_rate"
        return {"set": self.name, "stage": self.stage, "kind": self.kind, "items": self.items,
                key: round(self.rate, 4),
                "per_category": {c: {"blocked": b, "items": n} for c, (b, n) in sorted(self.per_category.items())}}


def _kind(example: Example) -> str:
    if example.harmful:
        return "harmful"
    return "contrast" if example.category is not None else "benign"


def evaluate(public: Path, own: Path, check_prompt: Callable[[str], tuple[bool, str | None]],
             check_response: Callable[[str, str], tuple[bool, str | None]]) -> dict[str, Any]:
    """The report on the test split of the data sets in ``public`` and ``own``: ``{"summary": {...},
    "sets": [...]}``. ``check_prompt(text)`` and ``check_response(prompt, reply)`` return (blocked, category)."""
    examples = [e for e in load_examples(public, own) if split_of(e.text) == "test" or e.eval_only]
    alpaca = [e for e in examples if e.source == "alpaca"]
    if len(alpaca) > ALPACA_SAMPLE:
        keep = {id(e) for e in alpaca[:: max(1, len(alpaca) // ALPACA_SAMPLE)][:ALPACA_SAMPLE]}
        examples = [e for e in examples if e.source != "alpaca" or id(e) in keep]
    sets: dict[tuple[str, str, str], SetFigures] = {}
    latencies: dict[str, list[float]] = defaultdict(list)
    for example in examples:
        stage = "input" if example.kind == "prompt" else "output"
        started = time.perf_counter()
        if stage == "input":
            blocked, _ = check_prompt(example.text)
        else:
            blocked, _ = check_response(example.context, example.text)
        latencies[stage].append((time.perf_counter() - started) * 1000)
        kind = _kind(example)
        figures = sets.setdefault((example.source, stage, kind), SetFigures(example.source, stage, kind))
        figures.items += 1
        figures.blocked += blocked
        if example.category:
            entry = figures.per_category.setdefault(example.category, [0, 0])
            entry[0] += blocked
            entry[1] += 1
    summary: dict[str, Any] = {}
    for stage in ("input", "output"):
        rows = [f for f in sets.values() if f.stage == stage]
        for kind in ("harmful", "benign", "contrast"):
            chosen = [f for f in rows if f.kind == kind]
            items = sum(f.items for f in chosen)
            if items:
                summary[f"{stage}_{kind}_{'recall' if kind == 'harmful' else 'false_block_rate'}"] = round(
                    sum(f.blocked for f in chosen) / items, 4)
        times = sorted(latencies[stage])
        if times:
            summary[f"{stage}_latency_ms_p50"] = round(statistics.median(times), 3)
            summary[f"{stage}_latency_ms_p99"] = round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)
    return {"summary": summary, "sets": [f.to_json() for f in sorted(sets.values(),
                                                                   key=lambda f: (f.stage, f.kind, f.name))]}
