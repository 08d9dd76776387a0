"""Text to hashed features: the one featuriser shared by the training script and the runtime check.

Lower-cased, NFKC-normalised text with common character substitutions undone (``k1ll``, ``b0mb``);
features are word unigrams and bigrams plus character 3- to 5-grams inside words, hashed with CRC-32
into ``2**bits`` buckets and weighted by log counts, then L2-normalised. Pure Python, ~1 ms for a
paragraph.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib

__all__ = ["featurize", "sentences", "windows"]

_WORD = re.compile(r"[a-z0-9']+")
_UNLEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_SENTENCE_END = re.compile(r"(?<=[.!?\n])\s+")


def _normalise(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    words = []
    for word in _WORD.findall(text):
        if any(c.isalpha() for c in word) and any(c.isdigit() for c in word):
            word = word.translate(_UNLEET)  # only mixed tokens: keep real numbers as they are
        words.append(word)
    return words


def featurize(text: str, bits: int) -> dict[int, float]:
    """Sparse feature vector {bucket: weight} of unit length."""
    mask = (1 << bits) - 1
    counts: dict[int, float] = {}

    def add(feature: str) -> None:
        key = zlib.crc32(feature.encode("utf-8")) & mask
        counts[key] = counts.get(key, 0.0) + 1.0

    words = _normalise(text)
    previous = "<s>"
    for word in words:
        add("w:" + word)
        add("b:" + previous + " " + word)
        previous = word
        padded = f"<{word}>"
        if len(padded) <= 24:
            for n in (3, 4, 5):
                for i in range(len(padded) - n + 1):
                    add("c:" + padded[i : i + n])
    add("b:" + previous + " </s>")
    norm = math.sqrt(sum((1.0 + math.log(v)) ** 2 for v in counts.values())) or 1.0
    return {k: (1.0 + math.log(v)) / norm for k, v in counts.items()}


def sentences(text: str) -> list[str]:
    """The text's sentences (split after . ! ? or a line break), empty pieces dropped."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def windows(text: str, size: int = 400) -> list[str]:
    """Split long text into sentence-aligned windows of about ``size`` characters (overlapping by one
    sentence), so one harmful sentence inside a long benign text is not diluted away."""
    if len(text) <= size:
        return [text]
    out: list[str] = []
    current: list[str] = []
    length = 0
    for sentence in sentences(text):
        if current and length + len(sentence) > size:
            out.append(" ".join(current))
            current, length = current[-1:], len(current[-1])
        current.append(sentence)
        length += len(sentence)
    if current:
        out.append(" ".join(current))
    return out
