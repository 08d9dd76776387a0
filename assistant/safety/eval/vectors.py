"""Encoder vectors of the evaluation and training texts, computed once and kept on disk.

Leave-one-source-out refits the heads once per source, on the same texts: the encoder (frozen) needs to
read each text only once. The store is a NumPy file in Haven's cache folder, keyed by a hash of the
encoder's name and the text, so a changed encoder never reuses stale vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from assistant.safety.encoder import DIMENSION, ENCODER_NAME, SentenceEncoder

__all__ = ["VectorStore"]

log = logging.getLogger(__name__)
BATCH = 64


def _key(text: str) -> str:
    return hashlib.blake2b(f"{ENCODER_NAME}\0{text}".encode(), digest_size=12).hexdigest()


class VectorStore:
    def __init__(self, path: Path | None, encoder: SentenceEncoder) -> None:
        self.path = path
        self.encoder = encoder
        self._index: dict[str, int] = {}
        self._rows: list[np.ndarray] = []
        if path is not None and path.is_file():
            try:
                with np.load(path) as data:
                    keys, matrix = data["keys"], data["vectors"]
                if matrix.shape[1:] == (DIMENSION,):
                    self._index = {str(k): i for i, k in enumerate(keys)}
                    self._rows = list(matrix.astype(np.float32))
            except (OSError, ValueError, KeyError):
                log.warning("the vector store %s was unreadable; starting afresh", path)

    def vectors(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(len(texts), 512): from the store where known, encoded (in batches) and stored where not."""
        keys = [_key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._index))
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            started, done = time.monotonic(), 0
            for i in range(0, len(missing), BATCH):
                chunk = missing[i : i + BATCH]
                for key, vector in zip(chunk, self.encoder.vectors([text_of[k] for k in chunk]), strict=True):
                    self._index[key] = len(self._rows)
                    self._rows.append(vector)
                done += len(chunk)
                if progress is not None:
                    progress(done, len(missing))
                if self.path is not None and time.monotonic() - started > 120:  # keep long runs' work
                    self.save()
                    started = time.monotonic()
            self.save()
        if not texts:
            return np.zeros((0, DIMENSION), np.float32)
        return np.stack([self._rows[self._index[k]] for k in keys])

    def save(self) -> None:
        if self.path is None or not self._rows:
            return
        keys = np.array(sorted(self._index, key=self._index.__getitem__))
        matrix = np.stack(self._rows).astype(np.float16)
        temporary = self.path.with_name(self.path.name + ".tmp.npz")
        temporary.parent.mkdir(parents=True, exist_ok=True)
        np.savez(temporary, keys=keys, vectors=matrix)
        os.replace(temporary, self.path)  # a reader sees the old store or the new one
