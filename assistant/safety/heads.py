"""The trained part of Haven's safety classifiers: linear heads over the encoder's vector and the
jailbreak signals; how they are fitted; and how a text becomes their features.

Two heads, one per check:

* **prompt**: a window of the prompt (or a decoded view of it) as
  ``[encoder vector (512) | jailbreak signals (9) | any signal (1)]``;
* **reply**: a reply read with the request it answers, as
  ``[mean of the reply spans' vectors | request's vector | their product | the request's signals]``.
  The product lets a linear head see "this reply complies with that request", which neither vector
  shows alone.

Each head has a "harmful?" logit (logistic) and 14 category logits (softmax, trained on harmful items
only). Fitting is full-batch Adam on a weighted logistic loss with L2, in NumPy: the leave-one-source-out
evaluation refits the heads once per source, so it must take seconds, not a GPU.

Hashed word and character n-grams beside the vector were tried and dropped: left-out sources measured
worse with them (jailbreak-wrapped prompts 90 % -> 75 % caught, Chinese 92 % -> 38 %), because they
memorise the phrasing of the sources they were trained on; see docs/safety.md.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.safety.encoder import DIMENSION
from assistant.safety.normalise import JAILBREAK_PATTERNS, jailbreak_signals
from assistant.safety.taxonomy import CODES

__all__ = [
    "PROMPT_WIDTH",
    "REPLY_WIDTH",
    "Head",
    "fit_head",
    "load_heads",
    "prompt_dense",
    "reply_dense",
    "save_heads",
    "signal_row",
]

SIGNALS = tuple(JAILBREAK_PATTERNS)
PROMPT_WIDTH = DIMENSION + len(SIGNALS) + 1
REPLY_WIDTH = 3 * DIMENSION + len(SIGNALS) + 1


def signal_row(text: str) -> np.ndarray:
    """The text's jailbreak signals as features (one per family, then "any"): computed once per prompt or
    request, then shared by all its windows or reply spans."""
    found = jailbreak_signals(text)
    return np.array([found[name] for name in SIGNALS] + [any(found.values())], dtype=np.float32)


def prompt_dense(vector: np.ndarray, prompt_signals: np.ndarray) -> np.ndarray:
    return np.concatenate([vector.astype(np.float32), prompt_signals])


def reply_dense(reply_mean: np.ndarray, request: np.ndarray, request_signals: np.ndarray) -> np.ndarray:
    return np.concatenate([reply_mean, request, reply_mean * request * np.sqrt(DIMENSION),
                           request_signals]).astype(np.float32)


class Head:
    """``harmful = sigmoid(relu(dense @ w1 + b1) @ w2 + b2)``: one hidden layer, so a head can learn that a
    reply that complies *and* a request that is harmful make a harmful reply, which a linear head cannot;
    the category is the largest of ``dense @ w_cat + b_cat``; ``threshold`` applies to ``harmful``."""

    def __init__(self, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: float, w_cat: np.ndarray,
                 b_cat: np.ndarray, threshold: float) -> None:
        self.w1 = w1.astype(np.float32)
        self.b1 = b1.astype(np.float32)
        self.w2 = w2.astype(np.float32)
        self.b2 = float(b2)
        self.w_cat = w_cat.astype(np.float32)
        self.b_cat = b_cat.astype(np.float32)
        self.threshold = float(threshold)

    def logits(self, dense: np.ndarray) -> np.ndarray:
        hidden = np.maximum(dense @ self.w1 + self.b1, 0.0)
        return np.asarray(hidden @ self.w2 + self.b2, dtype=np.float32)

    def category(self, dense: np.ndarray) -> str:
        return CODES[int(np.argmax(dense @ self.w_cat + self.b_cat))]

    def with_threshold(self, threshold: float) -> Head:
        return Head(self.w1, self.b1, self.w2, self.b2, self.w_cat, self.b_cat, threshold)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_w1": self.w1.astype(np.float16), f"{prefix}_b1": self.b1, f"{prefix}_w2": self.w2,
                f"{prefix}_b2": np.asarray(self.b2, np.float32), f"{prefix}_cat": self.w_cat.astype(np.float16),
                f"{prefix}_cat_bias": self.b_cat, f"{prefix}_threshold": np.asarray(self.threshold, np.float32)}

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], prefix: str, width: int) -> Head:
        head = cls(data[f"{prefix}_w1"], data[f"{prefix}_b1"], data[f"{prefix}_w2"], float(data[f"{prefix}_b2"]),
                   data[f"{prefix}_cat"], data[f"{prefix}_cat_bias"], float(data[f"{prefix}_threshold"]))
        if head.w1.shape[0] != width or head.w_cat.shape != (width, len(CODES)) or \
                head.w2.shape != head.b1.shape or head.w1.shape[1:] != head.b1.shape:
            raise ValueError(f"its {prefix} head does not fit this version of Haven")
        if not (np.isfinite(head.w1).all() and np.isfinite(head.w2).all() and 0.0 < head.threshold < 1.0):
            raise ValueError(f"its {prefix} head holds invalid numbers")
        return head


def save_heads(path: Path, heads: dict[str, Head], metadata: dict[str, object]) -> None:
    """``path`` (.npz) with every head's arrays, and a .json beside it saying how they were made."""
    arrays: dict[str, np.ndarray] = {}
    for name, head in heads.items():
        arrays |= head.arrays(name)
    np.savez_compressed(path.with_suffix(".npz"), **arrays)  # type: ignore[arg-type]
    path.with_suffix(".json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")


def load_heads(path: Path) -> tuple[Head, Head]:
    """The prompt and the reply head from ``path`` (.npz); a missing or damaged file is a ConfigError."""
    try:
        with np.load(path.with_suffix(".npz")) as data:
            arrays = {k: data[k] for k in data.files}
        return Head.from_arrays(arrays, "prompt", PROMPT_WIDTH), Head.from_arrays(arrays, "reply", REPLY_WIDTH)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(
            f"Haven's safety classifier {path.name} is missing or damaged ({exc}); reinstall Haven. "
            "Until then every message is blocked, because the safety check cannot run."
        ) from exc


# -- fitting ------------------------------------------------------------------------------------

HIDDEN = 384
EPOCHS = 16
BATCH = 256


class _Adam:
    def __init__(self, params: list[np.ndarray], rate: float) -> None:
        self.params, self.rate, self.t = params, rate, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.rate * (m / (1 - 0.9**self.t)) / (np.sqrt(v / (1 - 0.999**self.t)) + 1e-8)


def fit_head(dense: np.ndarray, harmful: np.ndarray, weights: np.ndarray, categories: Sequence[str | None],
             *, hidden: int = HIDDEN, epochs: int = EPOCHS, l2: float = 1e-4, rate: float = 2e-3,
             seed: int = 0) -> Head:
    """The "harmful?" head by mini-batch Adam on the weighted logistic loss (``weights`` per row), and a
    softmax category head fitted on the harmful rows. Deterministic for a seed. The threshold is left at
    0.5: thresholds are chosen on left-out sources."""
    rng = np.random.default_rng(seed)
    n, width = dense.shape
    y = harmful.astype(np.float32)
    w_row = (weights / weights.mean()).astype(np.float32)
    w1 = (rng.standard_normal((width, hidden)) * np.sqrt(2.0 / width)).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = (rng.standard_normal(hidden) * np.sqrt(1.0 / hidden)).astype(np.float32)
    b2 = np.zeros(1, np.float32)
    adam = _Adam([w1, b1, w2, b2], rate)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, BATCH):
            batch = order[start : start + BATCH]
            x = dense[batch]
            pre = x @ w1 + b1
            h = np.maximum(pre, 0.0)
            z = h @ w2 + b2[0]
            r = (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))) - y[batch]) * w_row[batch] / len(batch)
            g_h = np.outer(r, w2) * (pre > 0)
            adam.step([x.T @ g_h + l2 * w1, g_h.sum(axis=0), h.T @ r + l2 * w2, np.array([r.sum()], np.float32)])

    index = [i for i in range(n) if harmful[i] and categories[i] in CODES]
    w_cat = np.zeros((width, len(CODES)), np.float32)
    b_cat = np.zeros(len(CODES), np.float32)
    if index:
        x = dense[index]
        target = np.zeros((len(index), len(CODES)), np.float32)
        target[np.arange(len(index)), [CODES.index(str(categories[i])) for i in index]] = 1.0
        adam = _Adam([w_cat, b_cat], 0.05)
        for _ in range(150):
            z = x @ w_cat + b_cat
            p = np.exp(z - z.max(axis=1, keepdims=True))
            r = (p / p.sum(axis=1, keepdims=True) - target) / len(index)
            adam.step([x.T @ r + l2 * w_cat, r.sum(axis=0)])
    return Head(w1, b1, w2, float(b2[0]), w_cat, b_cat, threshold=0.5)
