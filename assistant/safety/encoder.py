"""Haven's safety encoder: all-MiniLM-L6-v2 fine-tuned on Haven's safety data, run through llama.cpp.

The n-gram model and the convolution read words and their neighbours; the encoder reads the whole text
with attention, so "What's the quickest way to get rid of a body" and "What's the quickest way to get
rid of a cold" come out far apart. One encoder (``resources/safety/encoder.gguf``, Q8_0, 25 MB) serves
both checks: its mean-pooled output is read by a pair of heads per check (``encoder.npz``: a "harmful?"
logit and 14 category logits for prompts, the same for replies), trained together with it by
``training/train_encoder.py``. No torch at run time: the GGUF runs in its own llama.cpp instance
(:class:`assistant.engine.EmbeddingModel`) and the heads are a dot product.

A check of a short prompt costs ~5 ms on 2 cores. The classifier adds the encoder's logit to the
n-gram model's with a weight chosen on the validation split; the reply check consults it only for text
the n-gram model does not already find clearly harmless (``gate``), because a reply is checked sentence
by sentence while the chat model generates on the same cores. (Giving the reply check half the cores,
so that its threads and the chat model's would not compete, measured no better in ``haven-cli bench``:
throughput ratio 0.96 and safety share 4.1 % against 0.99 and 3.3 % with all of them.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from assistant.engine import EmbeddingModel
from assistant.errors import ConfigError, HavenError
from assistant.paths import resource_path

__all__ = ["MAX_TOKENS", "EncoderHead", "SafetyEncoder", "load_encoder"]

MAX_TOKENS = 128  # word pieces the encoder reads of one window (a window is ~400 characters, ~100 pieces)
CACHED_TEXTS = 256  # recent windows' vectors kept: the whole-reply check re-reads what the spans read


class SafetyEncoder:
    """Text to the fine-tuned encoder's pooled vector, with a small cache of recent texts."""

    def __init__(self, model: EmbeddingModel, heads: dict[str, np.ndarray], cache_size: int = CACHED_TEXTS) -> None:
        self.model = model
        self.heads = heads
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vector(self, text: str) -> np.ndarray:
        with self._lock:
            found = self._cache.get(text)
            if found is not None:
                self._cache.move_to_end(text)
                return found
        vector = self.model.embed(text)
        with self._lock:
            self._cache[text] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vector

    def head(self, name: str, weight: float, gate: float) -> EncoderHead:
        """The heads ``name`` ("input" or "output") as one classifier part."""
        try:
            return EncoderHead(self, self.heads[f"{name}_harm"], float(self.heads[f"{name}_harm_bias"][0]),
                               self.heads[f"{name}_cat"], self.heads[f"{name}_cat_bias"], weight, gate)
        except KeyError as exc:
            raise ConfigError(f"Haven's safety encoder has no {name} head ({exc}); reinstall Haven.") from exc

    def close(self) -> None:
        self.model.close()


class EncoderHead:
    """One check's heads over the encoder: ``logits(text)`` gives the "harmful?" logit and the category
    logits. ``weight`` is its share in the classifier's logit; ``gate`` the n-gram score below which it is
    not consulted (0: always)."""

    def __init__(self, encoder: SafetyEncoder, harm: np.ndarray, harm_bias: float, cat: np.ndarray,
                 cat_bias: np.ndarray, weight: float, gate: float) -> None:
        self.encoder = encoder
        self.harm = harm.astype(np.float32)
        self.harm_bias = harm_bias
        self.cat = cat.astype(np.float32)
        self.cat_bias = cat_bias.astype(np.float32)
        self.weight = weight
        self.gate = gate

    def with_settings(self, weight: float, gate: float) -> EncoderHead:
        return EncoderHead(self.encoder, self.harm, self.harm_bias, self.cat, self.cat_bias, weight, gate)

    def logits(self, text: str) -> tuple[float, np.ndarray]:
        vector = self.encoder.vector(text)
        return float(vector @ self.harm) + self.harm_bias, vector @ self.cat + self.cat_bias


def load_encoder(folder: Path | None = None, threads: int = 0, cache_size: int = CACHED_TEXTS) -> SafetyEncoder:
    """Load ``encoder.gguf`` and ``encoder.npz``; a missing or damaged file is a ConfigError."""
    folder = folder or resource_path("safety")
    try:
        with np.load(folder / "encoder.npz") as data:
            heads = {k: data[k].astype(np.float32) for k in data.files}
        model = EmbeddingModel(folder / "encoder.gguf", max_tokens=MAX_TOKENS, threads=threads)  # checks the file
        if any(v.shape[0] != model.dimension for k, v in heads.items() if k.endswith(("_harm", "_cat"))):
            model.close()
            raise ValueError(f"its heads do not fit its {model.dimension}-wide output")
    except (OSError, ValueError, HavenError) as exc:
        raise ConfigError(
            f"Haven's safety encoder is missing or damaged ({exc}); reinstall Haven. "
            "Until then every message is blocked, because the safety check cannot run."
        ) from exc
    return SafetyEncoder(model, heads, cache_size)
