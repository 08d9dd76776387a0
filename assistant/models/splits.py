"""Split GGUF models: one model in several files, ``NAME-00001-of-00003.gguf`` to ``NAME-00003-of-00003.gguf``.

llama.cpp loads a split model from its first part: it reads ``split.count`` there and finds the other parts
beside it by this very naming (``llama_split_path``: ``PREFIX-%05d-of-%05d.gguf``, numbered from 1). So the
parts are installed side by side under one prefix, and the model's path is the first part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SplitName", "part_name", "split_name", "split_parts"]

_SPLIT = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass(frozen=True, slots=True)
class SplitName:
    prefix: str   # everything before "-00001-of-00003.gguf" (may include folders in a repository path)
    index: int    # 1-based
    count: int


def split_name(name: str) -> SplitName | None:
    """The split parts of a file name or repository path, or None for an ordinary (single-file) GGUF."""
    match = _SPLIT.match(name)
    if match is None:
        return None
    index, count = int(match["index"]), int(match["count"])
    if count < 2 or not 1 <= index <= count:
        return None
    return SplitName(match["prefix"], index, count)


def part_name(prefix: str, index: int, count: int) -> str:
    return f"{prefix}-{index:05d}-of-{count:05d}.gguf"


def split_parts(first: Path) -> list[Path]:
    """Every part of the model whose first part is ``first`` (just ``[first]`` for a single file)."""
    split = split_name(first.name)
    if split is None or split.index != 1:
        return [first]
    return [first.with_name(part_name(split.prefix, i, split.count)) for i in range(1, split.count + 1)]
