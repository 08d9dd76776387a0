"""Threshold tuning on the validation split: every check the app makes of a text, the lowest threshold
within a false-block budget, per-category thresholds and their balance, and the figures printed."""

from __future__ import annotations

import math

import numpy as np

from assistant.safety.classifier import ClassifierScore, TextClassifier
from assistant.safety.eval import Example
from assistant.safety.policy import Stage, Verdict
from assistant.safety.stream import StreamFilter
from assistant.safety.taxonomy import CODES

__all__ = ["by_category", "checks", "lowest_threshold", "report", "tune"]

FLOOR = 0.75  # no category threshold goes below this
SPEND_FLOOR = 0.5  # nor below this when the false-block budget is spent on the categories that gain most
# Candidate thresholds: steps of 0.01, then finer towards 1 (the combined model is confident).
GRID = np.round(np.concatenate([np.arange(0.05, 0.955, 0.01), [0.96, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999]]), 3)


def lowest_threshold(budgets: list[tuple[list[float], float]], floor: float) -> float:
    """The lowest threshold (not below ``floor``) at which each list of benign scores has at most its budget's
    share at or above it. Candidates: a grid, and just above every score (the model is often confident)."""
    scores = np.array([x for values, _ in budgets for x in values], dtype=np.float64)
    candidates = np.unique(np.concatenate([GRID, np.nextafter(scores, 2.0)]))
    arrays = [(np.array(values), budget) for values, budget in budgets if values]
    for t in candidates[candidates >= floor]:
        if all(np.mean(values >= t) <= budget for values, budget in arrays):
            return float(t)
    return 1.0


def checks(model: TextClassifier, example: Example) -> list[ClassifierScore]:
    """Every check the app makes of this text: a prompt is checked once; a reply goes through the stream
    filter exactly as in a chat (fed word by word, each sentence checked with the released text before it,
    then the whole reply), so thresholds are tuned on the checks that really decide."""
    if example.kind == "prompt":
        return [model.score(example.text)]
    scores: list[ClassifierScore] = []

    def record(text: str) -> Verdict:
        scores.append(model.score(text))
        return Verdict.allow(Stage.OUTPUT)

    stream = StreamFilter(record, record)
    words = example.text.split(" ")
    for i, word in enumerate(words):
        stream.feed(word + (" " if i < len(words) - 1 else ""))
    stream.finish()
    return scores or [model.score(example.text)]


def by_category(scores: list[ClassifierScore]) -> dict[str, float]:
    """The highest score among the checks the model assigned to each category."""
    out: dict[str, float] = {}
    for s in scores:
        out[s.category] = max(out.get(s.category, 0.0), s.harmful)
    return out


def tune(model: TextClassifier, val: list[Example], max_fpr: float, max_hard_fpr: float,
         spend: tuple[float, float] | None = None) -> None:
    """The lowest global threshold meeting both false-block budgets on validation, then per-category ones."""
    scores = [by_category(checks(model, e)) for e in val]
    # Synthetic instructions are too easy to say anything about the threshold; real benign sets decide.
    benign = [max(s.values()) for s, e in zip(scores, val, strict=True)
              if not e.harmful and e.category is None and not e.source.startswith("synthetic")]
    hard = [max(s.values()) for s, e in zip(scores, val, strict=True) if not e.harmful and e.category is not None]
    threshold = lowest_threshold([(benign, max_fpr), (hard, max_hard_fpr)], 0.05)
    # Per category: the lowest threshold (not below FLOOR) at which the benign and contrast validation items
    # the model assigns to that category stay within the contrast budget. Categories whose look-alikes are
    # common (S6 medical questions, S10 discussions of prejudice) end up stricter, rare ones more sensitive.
    per_category: dict[str, float] = {}
    for code in CODES:
        assigned = [s[code] for s, e in zip(scores, val, strict=True)
                    if not e.harmful and not e.source.startswith("synthetic") and code in s]
        per_category[code] = round(lowest_threshold([(assigned, max_hard_fpr)], FLOOR), 6)
    if spend:
        per_category = balance(scores, val, per_category, spend)
    model.threshold = round(threshold, 6)
    model.category_thresholds = per_category


def balance(scores: list[dict[str, float]], val: list[Example], thresholds: dict[str, float],
            budgets: tuple[float, float]) -> dict[str, float]:
    """Move the per-category thresholds until the validation false blocks just fit the budgets (plain
    benign, contrast), greedily: while over budget, raise the threshold that removes the most false blocks
    per harmful item lost; then lower the threshold that catches the most harmful items per false block
    added, while the budgets allow. The per-category thresholds above give each category few false blocks
    of its own (with 20 benign items assigned to a category, 3 % allows none), and several categories
    together may overshoot; this spends the budget where the harmful items are. None goes below SPEND_FLOOR."""
    thresholds = dict(thresholds)
    harmful = [i for i, e in enumerate(val) if e.harmful]
    plain = [i for i, e in enumerate(val)
             if not e.harmful and e.category is None and not e.source.startswith("synthetic")]
    hard = [i for i, e in enumerate(val) if not e.harmful and e.category is not None]
    limits = (int(budgets[0] * len(plain)), int(budgets[1] * len(hard)))

    def counts(t: dict[str, float]) -> tuple[int, int, int]:
        hit = [any(p >= t[c] for c, p in s.items()) for s in scores]
        return sum(hit[i] for i in harmful), sum(hit[i] for i in plain), sum(hit[i] for i in hard)

    def over(figures: tuple[int, int, int]) -> int:
        return max(0, figures[1] - limits[0]) + max(0, figures[2] - limits[1])

    current = counts(thresholds)
    while True:
        best: tuple[float, str, float, tuple[int, int, int]] | None = None
        for code in CODES:
            if over(current):  # just above the lowest false blocks of this category
                found = {math.floor(scores[i][code] * 1e6 + 1) / 1e6 for i in plain + hard
                         if code in scores[i] and scores[i][code] >= thresholds[code]}
                candidates = sorted(t for t in found if t <= 1.0)[:5]
            else:  # just at the highest missed harmful items of this category
                found = {math.floor(scores[i][code] * 1e6) / 1e6 for i in harmful
                         if code in scores[i] and SPEND_FLOOR <= scores[i][code] < thresholds[code]}
                candidates = sorted(found, reverse=True)[:5]
            for t in candidates:
                figures = counts({**thresholds, code: t})
                if over(current):
                    value = (over(current) - over(figures)) / (current[0] - figures[0] + 0.5)
                    if over(figures) >= over(current):
                        continue
                else:
                    gain = figures[0] - current[0]
                    if gain <= 0 or over(figures):
                        continue
                    value = gain / (figures[1] + figures[2] - current[1] - current[2] + 0.5)
                if best is None or value > best[0]:
                    best = (value, code, t, figures)
        if best is None:
            return thresholds
        _, code, t, current = best
        thresholds[code] = t


def report(model: TextClassifier, examples: list[Example], label: str) -> dict[str, float]:
    blocked = np.array([any(s.blocked for s in checks(model, e)) for e in examples])
    harmful = np.array([e.harmful for e in examples])
    hard = np.array([(not e.harmful) and e.category is not None for e in examples])
    plain = ~harmful & ~hard
    figures = {
        "recall": float(blocked[harmful].mean()) if harmful.any() else float("nan"),
        "false_block_rate": float(blocked[plain].mean()) if plain.any() else float("nan"),
        "contrast_false_block_rate": float(blocked[hard].mean()) if hard.any() else float("nan"),
        "harmful": int(harmful.sum()), "benign": int(plain.sum()), "contrast": int(hard.sum()),
    }
    print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in figures.items()))
    return figures
