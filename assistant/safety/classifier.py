"""Haven's built-in safety classifier: a linear model over hashed n-grams, shipped in ``resources/safety``.

Two of them: one for prompts (the input check) and one for replies (the output filter). Each has a
"harmful?" head (logistic) and a category head (softmax over S1..S14), and a threshold per category,
tuned on a validation split by ``scripts/train_safety.py``. No torch, no download: NumPy and ~1 ms.

A long text is scored window by window (the most harmful window counts), so one harmful request
cannot hide inside a long harmless preamble.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.paths import resource_path
from assistant.safety.features import featurize, windows
from assistant.safety.static_embeddings import StaticEmbedder
from assistant.safety.taxonomy import CODES

__all__ = ["ClassifierScore", "TextClassifier", "load_classifier"]


@dataclass(frozen=True, slots=True)
class ClassifierScore:
    harmful: float     # probability-like score in [0, 1]
    category: str      # the most likely S-code
    threshold: float   # the threshold that applies to that category

    @property
    def blocked(self) -> bool:
        return self.harmful >= self.threshold


class TextClassifier:
    """``dense_*`` weights apply to the static word-vector embedding of the text, when an embedder is given."""

    def __init__(self, buckets: np.ndarray, w_harm: np.ndarray, b_harm: float, w_cat: np.ndarray,
                 b_cat: np.ndarray, *, bits: int, threshold: float, category_thresholds: dict[str, float],
                 name: str = "haven-linear", embedder: StaticEmbedder | None = None,
                 dense_harm: np.ndarray | None = None, dense_cat: np.ndarray | None = None) -> None:
        self.embedder = embedder
        self._dense_harm = None if dense_harm is None else dense_harm.astype(np.float32)
        self._dense_cat = None if dense_cat is None else dense_cat.astype(np.float32)
        self._buckets = buckets.astype(np.int64)
        self._w_harm = w_harm.astype(np.float32)
        self._b_harm = float(b_harm)
        self._w_cat = w_cat.astype(np.float32)
        self._b_cat = b_cat.astype(np.float32)
        self.bits = bits
        self.threshold = threshold
        self.category_thresholds = {c: category_thresholds.get(c, threshold) for c in CODES}
        self.name = name

    def _score_one(self, text: str) -> tuple[float, np.ndarray]:
        features = featurize(text, self.bits)
        if not features:
            return 0.0, self._b_cat
        keys = np.fromiter(features.keys(), dtype=np.int64, count=len(features))
        values = np.fromiter(features.values(), dtype=np.float32, count=len(features))
        rows = np.searchsorted(self._buckets, keys)
        rows[rows >= len(self._buckets)] = 0
        known = self._buckets[rows] == keys
        rows, values = rows[known], values[known]
        harm = self._b_harm + float(values @ self._w_harm[rows])
        cat = self._b_cat + values @ self._w_cat[rows]
        if self.embedder is not None and self._dense_harm is not None and self._dense_cat is not None:
            vector = self.embedder.embed(text)
            harm += float(vector @ self._dense_harm)
            cat = cat + vector @ self._dense_cat
        return 1.0 / (1.0 + math.exp(-max(min(harm, 50.0), -50.0))), cat

    def score(self, text: str) -> ClassifierScore:
        best_p, best_cat = -1.0, self._b_cat
        for window in windows(text):
            p, cat = self._score_one(window)
            if p > best_p:
                best_p, best_cat = p, cat
        code = CODES[int(np.argmax(best_cat))]
        return ClassifierScore(max(best_p, 0.0), code, self.category_thresholds[code])

    def save(self, path: Path, metadata: dict[str, object]) -> None:
        arrays: dict[str, np.ndarray] = {
            "buckets": self._buckets.astype(np.int32), "w_harm": self._w_harm,
            "b_harm": np.asarray(self._b_harm, dtype=np.float32), "w_cat": self._w_cat.astype(np.float16),
            "b_cat": self._b_cat}
        if self._dense_harm is not None and self._dense_cat is not None:
            arrays |= {"dense_harm": self._dense_harm, "dense_cat": self._dense_cat}
        np.savez_compressed(path.with_suffix(".npz"), **arrays)  # type: ignore[arg-type]
        meta = {"bits": self.bits, "threshold": self.threshold, "category_thresholds": self.category_thresholds,
                "name": self.name, **metadata}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_classifier(name: str, folder: Path | None = None, embedder: StaticEmbedder | None = None) -> TextClassifier:
    """Load ``resources/safety/<name>.npz`` and its ``.json``; a missing or damaged file is a ConfigError.
    A model trained with word vectors needs them: they are loaded here unless ``embedder`` is given."""
    base = (folder or resource_path("safety")) / name
    try:
        meta = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
        with np.load(base.with_suffix(".npz")) as data:
            dense = "dense_harm" in data.files
            if dense and embedder is None:
                embedder = StaticEmbedder()
            return TextClassifier(
                data["buckets"], data["w_harm"], float(data["b_harm"]), data["w_cat"], data["b_cat"],
                bits=int(meta["bits"]), threshold=float(meta["threshold"]),
                category_thresholds={k: float(v) for k, v in meta["category_thresholds"].items()},
                name=str(meta.get("name", name)), embedder=embedder if dense else None,
                dense_harm=data["dense_harm"] if dense else None, dense_cat=data["dense_cat"] if dense else None,
            )
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"Haven's safety classifier {base.name} is missing or damaged ({exc}); reinstall Haven. "
            "Until then every message is blocked, because the safety check cannot run."
        ) from exc
