"""The safety encoder's runtime: a BERT-style GGUF in its own llama.cpp instance."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from assistant.engine.loading import construct_embedding
from assistant.engine.native import route_native_logs
from assistant.engine.selftest import LoadPlan, ModelKind, NativeCheck
from assistant.errors import ModelError
from assistant.hardware import physical_cores
from assistant.models.gguf import read_gguf

__all__ = ["EmbeddingModel"]


class EmbeddingModel:
    """A BERT-style encoder GGUF in its own llama.cpp instance: text in, its mean-pooled last hidden state
    out (not normalised). The safety classifier reads these vectors; it is small (tens of MB) and runs on
    the CPU, beside whatever chat model is loaded.

    Texts longer than ``max_tokens`` word pieces are cut as Hugging Face's tokenizer cuts them when
    training (the start kept, the closing [SEP] kept), so the vectors match those the heads were trained
    on. Calls are serialised by a lock: a ``Llama`` is not thread-safe, and the input check and the
    output filter may run on different threads."""

    def __init__(self, path: Path, *, max_tokens: int, threads: int = 0,
                 native_check: NativeCheck | None = None) -> None:
        route_native_logs()
        threads = threads or physical_cores()
        header = read_gguf(path)  # validates the file before llama.cpp sees it
        if header.architecture != "bert":
            raise ModelError(f"{path.name} is a {header.architecture} model, not a BERT-style encoder.")
        check = native_check or NativeCheck.for_environment()
        self.plan = check.choose(LoadPlan(path=str(path), kind=ModelKind.EMBEDDING, extra_bufts=True,
                                          gpu_layers=0, context_length=max_tokens, threads=threads))
        self._llm: Any = construct_embedding(path, max_tokens, threads, extra_bufts=self.plan.extra_bufts)
        self.max_tokens = max_tokens
        self.dimension = self._llm.n_embd()
        self._lock = threading.Lock()

    def tokens(self, text: str) -> list[int]:
        """The word pieces the encoder reads, [CLS] and [SEP] included, cut to ``max_tokens``."""
        with self._lock:
            tokens: list[int] = self._llm.tokenize(text.encode("utf-8", errors="replace"), add_bos=True,
                                                   special=False)
        if len(tokens) > self.max_tokens:
            tokens = tokens[: self.max_tokens - 1] + tokens[-1:]
        return tokens

    def embed(self, text: str) -> np.ndarray:
        """The mean of the last hidden states over the text's word pieces, a float32 array."""
        tokens = self.tokens(text)
        with self._lock:
            llm: Any = self._llm  # the library's batch and context helpers are untyped
            llm._batch.reset()
            llm._ctx.kv_cache_clear()
            llm._batch.add_sequence(tokens, 0, True)
            llm._ctx.decode(llm._batch)
            pointer = llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)
            if not pointer:
                raise ModelError("llama.cpp returned no embedding for the text.")
            vector = np.ctypeslib.as_array(pointer, shape=(self.dimension,)).astype(np.float32)
            llm._batch.reset()
            llm._ctx.kv_cache_clear()
        return vector

    def close(self) -> None:
        with self._lock:
            self._llm.close()
