"""Train Haven's built-in safety classifier and write it to resources/safety/. From the repository root:

    .venv/bin/python -m training.train_safety [--own-data training/data] [--public-data ../shared/safety-data]

1. Every text is read by the frozen sentence encoder (vectors kept in Haven's cache folder, so a second
   run starts at once).
2. Leave-one-source-out: the heads are refitted once per source with that source left out and scored on
   it; the thresholds are chosen on these pooled held-out scores (``choose_threshold``), never on data the
   heads were fitted on.
3. The shipped heads are fitted on every source (the Alpaca set, CC BY-NC, is never trained on) and saved
   with those thresholds, together with the figures that chose them (``heads.json``).

NumPy only; about 10 minutes on 2 cores the first time (3 of them encoding), 7 after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from assistant.paths import AppPaths
from assistant.safety.encoder import ENCODER_NAME, load_encoder
from assistant.safety.eval.generalization import (
    example_weights,
    fit_rows,
    generalization_report,
    prompt_rows,
    reply_rows,
)
from assistant.safety.eval.vectors import VectorStore
from assistant.safety.heads import HIDDEN, save_heads
from training.common import SAFETY_RESOURCES, add_data_arguments, check_data_folders, training_examples


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_safety", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="also write the whole leave-one-source-out report (JSON) here, for docs/safety.md")
    args = parser.parse_args()
    check_data_folders(parser, args)
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    examples = training_examples(args.public_data, args.own_data)
    store = VectorStore(AppPaths.from_environment().cache_dir / "safety-vectors.npz", load_encoder())
    report = generalization_report(examples, store, progress=say)
    heads = {}
    for stage, name, kind, build in (("input", "prompt", "prompt", prompt_rows),
                                     ("output", "reply", "response", reply_rows)):
        chosen = [e for e in examples if e.kind == kind]
        say(f"fitting the shipped {name} head on {len(chosen)} examples")
        rows = build(chosen, store)
        head = fit_rows(rows, chosen, example_weights(chosen))
        heads[name] = head.with_threshold(report[stage]["threshold"])
    sources = sorted({e.source for e in examples})
    save_heads(SAFETY_RESOURCES / "heads.npz", heads, {
        "encoder": ENCODER_NAME, "hidden": HIDDEN,
        "thresholds": {name: round(h.threshold, 3) for name, h in heads.items()},
        "trained_on": sources, "examples": len(examples),
        "leave_one_source_out": report["summary"], "seconds": round(time.monotonic() - started),
    })
    say(f"wrote {SAFETY_RESOURCES / 'heads.npz'}")
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report["summary"], indent=2, ensure_ascii=False))
    return 0 if all(np.isfinite(h.w1).all() for h in heads.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
