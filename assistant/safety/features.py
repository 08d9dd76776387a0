"""Cutting text as the checks read it: sentences, reply spans (what the stream filter checks at a time)
and prompt windows (a long prompt is judged piece by piece, so one harmful request cannot hide in a long
harmless text). Training cuts its texts with the same functions.
"""

from __future__ import annotations

import re

__all__ = ["reply_spans", "sentences", "windows"]

_SENTENCE_END = re.compile(r"(?<=[。！？\n])\s*(?=\S)|(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """The text's sentences (split after . ! ? or a line break), empty pieces dropped."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def reply_spans(text: str, min_chars: int = 60, max_chars: int = 300) -> list[str]:
    """A reply cut as the stream filter checks it: whole sentences, gathered until a span has at least
    ``min_chars`` characters, and cut hard at ``max_chars``. Training reads replies in the same spans."""
    spans: list[str] = []
    current = ""
    for sentence in sentences(text):
        while len(sentence) > max_chars:
            if current:
                spans.append(current)
                current = ""
            spans.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        current = f"{current} {sentence}".strip() if current else sentence
        if len(current) >= min_chars:
            spans.append(current)
            current = ""
    if current:
        spans.append(current)
    return spans


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
