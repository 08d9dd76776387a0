"""The benchmark's baseline: plain llama-cpp-python, used the way its own documentation shows.

This is the one module besides :mod:`assistant.engine` that imports ``llama_cpp``, on purpose: the
throughput ratio in ``haven-cli bench`` compares a full Haven turn against the library itself, so the
baseline must not go through any of Haven's code. It runs ``Llama.create_completion(stream=True)`` on the
very prompt tokens Haven would send, with the same load options, sampling settings and seed. "The same load
options" include where the weights live: the backends come from the same folder, and llama.cpp's extra
CPU buffer types are on only where the engine's self-test proved them safe (docs/core.md), because the
library's defaults crash on some CPUs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from assistant.engine import SamplingParams
from assistant.engine.native import load_backends, model_params

__all__ = ["RawBaseline", "RawRun", "main"]


@dataclass(frozen=True, slots=True)
class RawRun:
    text: str
    completion_tokens: int
    first_token_at: float  # time.perf_counter() when the first piece arrived
    last_token_at: float   # time.perf_counter() when the stream ended

    @property
    def tokens_per_second(self) -> float:
        span = self.last_token_at - self.first_token_at
        return (self.completion_tokens - 1) / span if span > 0 and self.completion_tokens > 1 else 0.0


class RawBaseline:
    """One ``llama_cpp.Llama``, loaded with the options Haven's engine reports it used."""

    def __init__(self, path: Path, *, n_ctx: int, threads: int, gpu_layers: int, extra_bufts: bool,
                 batch_size: int = 512) -> None:
        load_backends()
        with contextlib.redirect_stderr(io.StringIO()), model_params(use_extra_bufts=extra_bufts):
            self._llm: Any = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=gpu_layers, n_batch=batch_size, n_ubatch=batch_size, use_mmap=True, verbose=False,
            )

    def close(self) -> None:
        self._llm.close()

    def token_times(self, prompt_tokens: list[int], count: int, params: SamplingParams, seed: int) -> list[float]:
        """Generate ``count`` tokens with ``Llama.generate`` (no text at all) and note when each arrived: the
        library's own speed along a long reply, to compare Haven's long reply with."""
        self._llm.set_seed(seed)
        times: list[float] = []
        stream = self._llm.generate(prompt_tokens, top_k=params.top_k, top_p=params.top_p, min_p=params.min_p,
                                    temp=params.temperature, repeat_penalty=params.repeat_penalty, reset=True)
        try:
            for _token in stream:
                times.append(time.perf_counter())
                if len(times) >= count:
                    break
        finally:
            stream.close()
        return times

    def complete(self, prompt_tokens: list[int], params: SamplingParams, seed: int) -> RawRun:
        """Stream a completion of ``prompt_tokens``; the stream's chunks are counted as tokens (one each)."""
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        stream = self._llm.create_completion(
            prompt=prompt_tokens, max_tokens=params.max_tokens, temperature=params.temperature,
            top_p=params.top_p, top_k=params.top_k, min_p=params.min_p, repeat_penalty=params.repeat_penalty,
            seed=seed, stream=True,
        )
        count = 0
        for chunk in stream:
            if first is None:
                first = time.perf_counter()
            pieces.append(chunk["choices"][0]["text"])
            count += 1
        end = time.perf_counter()
        return RawRun("".join(pieces), count, first if first is not None else started, end)


def main(argv: list[str] | None = None) -> int:
    """``python -m assistant.bench.raw JOB.json``: one completion in a process of its own, for the
    benchmark's independent measure; prints ``{"tokens_per_second", "completion_tokens"}``. The job holds
    the model path, load options, prompt tokens, sampling settings and seed."""
    job = json.loads(Path((argv or sys.argv[1:])[0]).read_text(encoding="utf-8"))
    params = SamplingParams(**{f.name: job["params"][f.name] for f in dataclasses.fields(SamplingParams)
                               if f.name in job["params"]})
    raw = RawBaseline(Path(job["path"]), n_ctx=job["n_ctx"], threads=job["threads"], gpu_layers=job["gpu_layers"],
                      extra_bufts=job["extra_bufts"])
    try:
        run = raw.complete(job["prompt_tokens"], params, job["seed"])
    finally:
        raw.close()
    print(json.dumps({"tokens_per_second": run.tokens_per_second, "completion_tokens": run.completion_tokens}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
