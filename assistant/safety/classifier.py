"""Haven's built-in safety classifier: hashed n-grams, static word vectors and a small convolution over
them, shipped in ``resources/safety``.

Two of them: one for prompts (the input check) and one for replies (the output filter). Each has a
"harmful?" head (logistic) and a category head (softmax over S1..S14), and a threshold per category,
tuned on a validation split by ``training/train_safety.py``. The "harmful?" logit is the sum of a linear
model over the n-grams and the mean word vector, and of a :class:`ConvHead` reading the word vectors in
order. No torch, no download: NumPy and a few milliseconds.

A long text is scored window by window (the most harmful window counts), so one harmful request
cannot hide inside a long harmless preamble.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.paths import resource_path
from assistant.safety.encoder import EncoderHead, SafetyEncoder, load_encoder
from assistant.safety.features import featurize, windows
from assistant.safety.static_embeddings import StaticEmbedder
from assistant.safety.taxonomy import CODES

__all__ = ["ClassifierScore", "ConvHead", "TextClassifier", "conv_inputs", "load_classifier"]

WIDTH = 3  # word pieces the convolution sees at once
CACHED_PIECES = 4096  # word pieces whose convolution parts are kept (1.5 KB each, in half precision)


@dataclass(frozen=True, slots=True)
class ClassifierScore:
    harmful: float     # probability-like score in [0, 1]
    category: str      # the most likely S-code
    threshold: float   # the threshold that applies to that category

    @property
    def blocked(self) -> bool:
        return self.harmful >= self.threshold


def conv_inputs(vectors: np.ndarray) -> np.ndarray:
    """One row per word piece: its vector with its neighbours' (zeros past either end), ``WIDTH`` in all.
    A text without word pieces is one row of zeros."""
    if not len(vectors):
        vectors = np.zeros((1, vectors.shape[1]), dtype=np.float32)
    pad = np.zeros((WIDTH // 2, vectors.shape[1]), dtype=np.float32)
    padded = np.vstack([pad, vectors, pad])
    return np.hstack([padded[i : i + len(vectors)] for i in range(WIDTH)])


class ConvHead:
    """A convolution over the word-piece vectors (``WIDTH`` at a time, ReLU), max- and mean-pooled over the
    text, and a linear read-out: it sees a word with its neighbours ("kill" next to "process" or next to
    "neighbour"), which a bag of n-grams only knows for word pairs it was trained on. ``weight`` is its
    share in the classifier's logit, chosen on the validation split.

    The convolution is linear before the ReLU, so each word piece's part of it (its vector times each of
    the ``WIDTH`` kernel blocks) is computed once and cached: a check is then sums and a maximum, with no
    matrix product (which, multi-threaded on a busy machine, cost tens of milliseconds now and then).
    The cache holds at most ``CACHED_PIECES`` word pieces, in half precision, and starts afresh when full, so
    its memory is bounded (6 MB) however long the app runs; a part is the same whether it was cached or not,
    so scores do not depend on what was checked before."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, out: np.ndarray, out_bias: float,
                 weight: float) -> None:
        self.kernel = kernel.astype(np.float16)   # (WIDTH * 384, hidden), as stored
        self.bias = bias.astype(np.float32)       # (hidden,)
        self.out = out.astype(np.float32)         # (2 * hidden,): max-pooled, then mean-pooled
        self.out_bias = float(out_bias)
        self.weight = float(weight)
        hidden = self.kernel.shape[1]
        # (WIDTH * hidden, 384): block k of the kernel applies to the word piece k - WIDTH // 2 places away
        self._blocks_t = np.ascontiguousarray(
            self.kernel.astype(np.float32).reshape(WIDTH, -1, hidden).transpose(0, 2, 1).reshape(WIDTH * hidden, -1))
        self._parts: dict[int, np.ndarray] = {}

    def with_weight(self, weight: float) -> ConvHead:
        return ConvHead(self.kernel, self.bias, self.out, self.out_bias, weight)

    def _read_out(self, active: np.ndarray) -> float:
        pooled = np.concatenate([active.max(axis=0), active.mean(axis=0)])
        return float(pooled @ self.out) + self.out_bias

    def logit_of_vectors(self, vectors: np.ndarray) -> float:
        """The definition (and what training computes, batched): a product per window of word pieces."""
        return self._read_out(np.maximum(conv_inputs(vectors) @ self.kernel.astype(np.float32) + self.bias, 0.0))

    def logit(self, ids: list[int], rows: Callable[[list[int]], np.ndarray]) -> float:
        """The same from word-piece ids; ``rows`` gives the vectors of ids not seen before."""
        if not ids:
            return self._read_out(np.maximum(self.bias, 0.0)[None, :])
        new = [i for i in dict.fromkeys(ids) if i not in self._parts]
        if new:
            if len(self._parts) + len(new) > CACHED_PIECES:
                self._parts = {i: self._parts[i] for i in dict.fromkeys(ids) if i in self._parts}
            # One vector-matrix product per new word piece: OpenBLAS runs a matrix product of even 20 rows
            # on several threads, which on a busy 2-core machine cost 2-10 ms where this costs 0.02 ms a row.
            for i, vector in zip(new, rows(new), strict=True):
                self._parts[i] = (self._blocks_t @ vector).astype(np.float16)
        hidden = len(self.bias)
        parts = np.stack([self._parts[i] for i in ids]).astype(np.float32).reshape(len(ids), WIDTH, hidden)
        pre = parts[:, WIDTH // 2] + self.bias
        for k in range(WIDTH):
            shift = k - WIDTH // 2  # the word piece ``shift`` places away contributes through block k
            if shift < 0:
                pre[-shift:] += parts[: len(ids) + shift, k]
            elif shift > 0:
                pre[:-shift] += parts[shift:, k]
        return self._read_out(np.maximum(pre, 0.0))


class TextClassifier:
    """``dense_*`` weights apply to the static word-vector embedding of the text, when an embedder is given;
    ``conv`` (which needs the embedder too) adds its logit to the "harmful?" head; ``encoder`` (the
    fine-tuned MiniLM's heads) adds its "harmful?" and category logits, times its weight, to the text's
    where the n-gram score reaches its gate."""

    def __init__(self, buckets: np.ndarray, w_harm: np.ndarray, b_harm: float, w_cat: np.ndarray,
                 b_cat: np.ndarray, *, bits: int, threshold: float, category_thresholds: dict[str, float],
                 name: str = "haven-linear", embedder: StaticEmbedder | None = None,
                 dense_harm: np.ndarray | None = None, dense_cat: np.ndarray | None = None,
                 conv: ConvHead | None = None, encoder: EncoderHead | None = None) -> None:
        self.embedder = embedder
        self.conv = conv
        self.encoder = encoder
        self._dense_harm = None if dense_harm is None else dense_harm.astype(np.float32)
        self._dense_cat = None if dense_cat is None else dense_cat.astype(np.float32)
        # Bucket ids fit in 32 bits (``bits`` <= 31) and the category weights are stored in half precision:
        # kept so in memory too (the category is read off the largest of 14 logits, which that cannot move).
        self._buckets = buckets.astype(np.int32)
        self._w_harm = w_harm.astype(np.float32)
        self._b_harm = float(b_harm)
        self._w_cat = w_cat.astype(np.float16)
        self._b_cat = b_cat.astype(np.float32)
        self.bits = bits
        self.threshold = threshold
        self.category_thresholds = {c: category_thresholds.get(c, threshold) for c in CODES}
        self.name = name

    def _linear(self, features: dict[int, float]) -> tuple[float, np.ndarray]:
        keys = np.fromiter(features.keys(), dtype=np.int32, count=len(features))
        values = np.fromiter(features.values(), dtype=np.float32, count=len(features))
        rows = np.searchsorted(self._buckets, keys)
        rows[rows >= len(self._buckets)] = 0
        known = self._buckets[rows] == keys
        rows, values = rows[known], values[known]
        return (self._b_harm + float(values @ self._w_harm[rows]),
                self._b_cat + values @ self._w_cat[rows].astype(np.float32))

    def _base_logits(self, text: str) -> tuple[float, np.ndarray] | None:
        """The n-grams', word vectors' and convolution's logits; None for text without words."""
        features = featurize(text, self.bits)
        if not features:
            return None
        harm, cat = self._linear(features)
        if self.embedder is not None and self._dense_harm is not None and self._dense_cat is not None:
            ids = self.embedder.ids(text)
            vector = self.embedder.pool(self.embedder.rows(ids))
            harm += float(vector @ self._dense_harm)
            cat = cat + vector @ self._dense_cat
            if self.conv is not None and self.conv.weight:
                harm += self.conv.weight * self.conv.logit(ids, self.embedder.rows)
        return harm, cat

    def _score_one(self, text: str, gate: float | None) -> tuple[float, np.ndarray]:
        base = self._base_logits(text)
        if base is None:
            return 0.0, self._b_cat
        harm, cat = base
        if self.encoder is not None and self.encoder.weight:
            gate = self.encoder.gate if gate is None else gate
            if _sigmoid(harm) >= gate:
                deep_harm, deep_cat = self.encoder.logits(text)
                harm += self.encoder.weight * deep_harm
                cat = cat + self.encoder.weight * deep_cat
        return _sigmoid(harm), cat

    def score(self, text: str, *, encoder_gate: float | None = None) -> ClassifierScore:
        """The most harmful window's score. ``encoder_gate`` overrides the encoder's gate for this call
        (the input check reads a message together with the one before it only where that could block)."""
        best_p, best_cat = -1.0, self._b_cat
        for window in windows(text):
            p, cat = self._score_one(window, encoder_gate)
            if p > best_p:
                best_p, best_cat = p, cat
        code = CODES[int(np.argmax(best_cat))]
        return ClassifierScore(max(best_p, 0.0), code, self.category_thresholds[code])

    @property
    def lowest_threshold(self) -> float:
        return min(self.category_thresholds.values())

    def save(self, path: Path, metadata: dict[str, object]) -> None:
        arrays: dict[str, np.ndarray] = {
            "buckets": self._buckets.astype(np.int32), "w_harm": self._w_harm,
            "b_harm": np.asarray(self._b_harm, dtype=np.float32), "w_cat": self._w_cat.astype(np.float16),
            "b_cat": self._b_cat}
        if self._dense_harm is not None and self._dense_cat is not None:
            arrays |= {"dense_harm": self._dense_harm, "dense_cat": self._dense_cat}
        if self.conv is not None:
            arrays |= {"conv_kernel": self.conv.kernel.astype(np.float16), "conv_bias": self.conv.bias,
                       "conv_out": self.conv.out, "conv_out_bias": np.asarray(self.conv.out_bias, dtype=np.float32),
                       "conv_weight": np.asarray(self.conv.weight, dtype=np.float32)}
        np.savez_compressed(path.with_suffix(".npz"), **arrays)  # type: ignore[arg-type]
        meta = {"bits": self.bits, "threshold": self.threshold, "category_thresholds": self.category_thresholds,
                "name": self.name, **metadata}
        if self.encoder is not None:
            meta |= {"encoder_weight": self.encoder.weight, "encoder_gate": self.encoder.gate}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))


def load_classifier(name: str, folder: Path | None = None, embedder: StaticEmbedder | None = None,
                    encoder: SafetyEncoder | None = None) -> TextClassifier:
    """Load ``resources/safety/<name>.npz`` and its ``.json``; a missing or damaged file is a ConfigError.
    A model trained with word vectors needs them, and one combined with the encoder needs that: each is
    loaded here unless given (both classifiers share one of each)."""
    base = (folder or resource_path("safety")) / name
    try:
        meta = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
        head = None
        if "encoder_weight" in meta:
            encoder = encoder or load_encoder(base.parent)
            head = encoder.head(name, float(meta["encoder_weight"]), float(meta["encoder_gate"]))
        with np.load(base.with_suffix(".npz")) as data:
            dense = "dense_harm" in data.files
            conv = None
            if dense and "conv_kernel" in data.files:
                conv = ConvHead(data["conv_kernel"].astype(np.float32), data["conv_bias"].astype(np.float32),
                                data["conv_out"].astype(np.float32), float(data["conv_out_bias"]),
                                float(data["conv_weight"]))
            if dense and embedder is None:
                embedder = StaticEmbedder()
            return TextClassifier(
                data["buckets"], data["w_harm"], float(data["b_harm"]), data["w_cat"], data["b_cat"],
                bits=int(meta["bits"]), threshold=float(meta["threshold"]),
                category_thresholds={k: float(v) for k, v in meta["category_thresholds"].items()},
                name=str(meta.get("name", name)), embedder=embedder if dense else None,
                dense_harm=data["dense_harm"] if dense else None, dense_cat=data["dense_cat"] if dense else None,
                conv=conv, encoder=head,
            )
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"Haven's safety classifier {base.name} is missing or damaged ({exc}); reinstall Haven. "
            "Until then every message is blocked, because the safety check cannot run."
        ) from exc
