"""Generate benign replies with the starter model, as negative examples for the output filter. From the
repository root:

    .venv/bin/python -m training.generate_benign_responses [--limit N] [--own-data DIR] [--public-data DIR]

Prompts: the benign questions of the public sets (MT-Bench, Vicuna, self-instruct seeds; all Apache-2.0)
and Haven's own benign-but-scary prompts (``contrast_benign.jsonl`` in ``--own-data``). Replies are what a
real local model writes, which is what the output filter sees. Output: ``generated_benign_responses.jsonl``
in ``--own-data`` (kept when rerun: prompts already answered are skipped).
"""

from __future__ import annotations

import argparse
import json
import sys

from assistant.chat import ChatMessage, Role, system_message
from assistant.engine import Engine, LoadOptions, SamplingParams
from assistant.models.registry import find_starter_model
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT
from training.common import add_data_arguments, check_data_folders, training_examples


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m training.generate_benign_responses", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--limit", type=int, default=10_000, help="answer at most this many prompts")
    args = parser.parse_args()
    check_data_folders(parser, args)
    out = args.own_data / "generated_benign_responses.jsonl"
    done = set()
    if out.exists():
        done = {json.loads(line)["prompt"] for line in out.read_text().splitlines() if line.strip()}
    prompts = [e for e in training_examples(args.public_data, args.own_data)
               if e.kind == "prompt" and not e.harmful
               and e.source in ("mtbench", "vicuna", "selfinstruct", "contrast") and e.text not in done]
    path = find_starter_model()
    if path is None:
        print("The starter model is not installed: run `python3 scripts/dev.py install`.", file=sys.stderr)
        return 1
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
