"""What the training script shares with nothing in the app: where a checkout keeps things, the
data-folder arguments, and the training examples (never the evaluation-only ones).

The data are Haven's own sets (``training/data``) and the public ones (``../shared/safety-data`` beside the
checkout), read through ``assistant.safety.eval`` so that training and ``haven-cli safety eval`` label
them identically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assistant.safety.eval import Example, load_examples

__all__ = ["OWN_DATA", "PUBLIC_DATA", "REPO", "SAFETY_RESOURCES", "add_data_arguments", "check_data_folders",
           "training_examples"]

REPO = Path(__file__).resolve().parent.parent  # the source checkout
OWN_DATA = REPO / "training" / "data"
PUBLIC_DATA = REPO.parent / "shared" / "safety-data"
SAFETY_RESOURCES = REPO / "resources" / "safety"  # what the app loads at run time


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
    """Every example training may learn from: all but the evaluation-only sets (Alpaca, CC BY-NC)."""
    return [e for e in load_examples(public, own) if not e.eval_only]
