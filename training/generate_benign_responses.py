#!/usr/bin/env python3
"""Generate benign replies with the starter model, as negative examples for the output filter.

    .venv/bin/python scripts/generate_benign_responses.py [--limit N]

Prompts: the benign questions of the shared sets (MT-Bench, Vicuna, self-instruct seeds; all Apache-2.0)
and Haven's own benign-but-scary prompts (data/safety/contrast_benign.jsonl). Replies are what a real
local model writes, which is what the output filter sees. Output: data/safety/generated_benign_responses.jsonl
(kept when rerun: prompts already answered are skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.chat import ChatMessage, Role, system_message  # noqa: E402
from assistant.engine import Engine, LoadOptions, SamplingParams  # noqa: E402
from assistant.models.registry import find_starter_model  # noqa: E402
from assistant.safety.eval.datasets import load_examples  # noqa: E402
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "safety-data")
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args()
    out = ROOT / "data" / "safety" / "generated_benign_responses.jsonl"
    done = set()
    if out.exists():
        done = {json.loads(line)["prompt"] for line in out.read_text().splitlines() if line.strip()}
    prompts = [e for e in load_examples(args.shared, ROOT / "data" / "safety")
               if e.kind == "prompt" and not e.harmful and not e.eval_only
               and e.source in ("mtbench", "vicuna", "selfinstruct", "contrast") and e.text not in done]
    path = find_starter_model()
    assert path is not None, "the starter model is not installed"
    with Engine() as engine, out.open("a", encoding="utf-8") as handle:
        engine.load(path, LoadOptions(context_length=2048))
        system = system_message(SAFETY_SYSTEM_PROMPT)
        for n, example in enumerate(prompts[: args.limit]):
            messages = [system, ChatMessage(Role.USER, example.text)]
            params = SamplingParams(temperature=0.7, max_tokens=120, seed=n)
            reply = "".join(i for i in engine.generate(messages, params) if isinstance(i, str)).strip()
            handle.write(json.dumps({"prompt": example.text, "response": reply,
                                     "sounds_like": example.category}) + "\n")
            handle.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
