"""What the training scripts share: where a checkout keeps things, the data-folder arguments, the training
examples (never the evaluation-only ones), and how examples are weighted.

The data are Haven's own sets (``training/data``) and the public ones (``../shared/safety-data`` beside the
checkout), read through ``assistant.safety.eval`` so that training and ``haven-cli safety eval`` split
and label them identically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from assistant.safety.eval import Example, load_examples
from assistant.safety.features import sentences

__all__ = ["HARD_NEGATIVE_WEIGHT", "OWN_DATA", "PUBLIC_DATA", "REPO", "SAFETY_RESOURCES", "add_data_arguments",
           "check_data_folders", "sample_weights", "sentence_windows", "training_examples"]

REPO = Path(__file__).resolve().parent.parent  # the source checkout
OWN_DATA = REPO / "training" / "data"
PUBLIC_DATA = REPO.parent / "shared" / "safety-data"
SAFETY_RESOURCES = REPO / "resources" / "safety"  # what the app loads at run time
HARD_NEGATIVE_WEIGHT = 3.0  # benign texts that only sound dangerous: the over-refusal we must avoid


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--own-data", type=Path, default=OWN_DATA, metavar="DIR",
                        help="Haven's own safety data sets (default: %(default)s)")
    parser.add_argument("--public-data", type=Path, default=PUBLIC_DATA, metavar="DIR",
                        help="the public safety data sets (default: %(default)s)")


def check_data_folders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a message if a data folder is missing (reading would skip it silently and train on less)."""
    for option, folder in (("--own-data", args.own_data), ("--public-data", args.public_data)):
        if not folder.is_dir():
            parser.error(f"{option} {folder} is not a folder")


def training_examples(public: Path, own: Path) -> list[Example]:
    """Every example training may learn or tune from: all but the evaluation-only sets (Alpaca, CC BY-NC)."""
    return [e for e in load_examples(public, own) if not e.eval_only]


def sample_weights(examples: list[Example]) -> np.ndarray:
    """Per-example loss weights: both classes weigh the same in total; benign look-alikes count extra."""
    y = np.array([e.harmful for e in examples])
    w = np.where(y, 0.5 / max(y.sum(), 1), 0.5 / max((~y).sum(), 1)) * len(examples)
    hard = np.array([(not e.harmful) and e.category is not None for e in examples])
    return w * np.where(hard, HARD_NEGATIVE_WEIGHT, 1.0)


def sentence_windows(benign: list[Example]) -> list[Example]:
    """The stream filter checks a reply a sentence (plus the one before) at a time: teach the output model
    what benign windows look like, not only whole benign replies."""
    out = []
    for example in benign:
        parts = sentences(example.text)
        for i in range(len(parts)):
            for window in (parts[i], " ".join(parts[max(0, i - 1) : i + 1])):
                out.append(Example(window, False, example.category, example.source + "-window", "response"))
    return list({e.text: e for e in out}.values())
