"""Building a ``llama_cpp.Llama`` the one way Haven does, for the engine (the chat model and the guard
model) and the self-test's child process (which must load exactly as a real load does to prove anything)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import llama_cpp
from jinja2 import TemplateError

from assistant.engine.native import StderrToLog, model_params, route_native_logs
from assistant.engine.selftest import LoadPlan
from assistant.errors import ModelError

__all__ = ["construct_chat", "probe_load_and_decode"]


def construct_chat(path: Path, n_ctx: int, threads: int, gpu_layers: int, batch: int, extra_bufts: bool) -> Any:
    try:
        # verbose=True keeps llama-cpp-python from redirecting the process's stdout/stderr file
        # descriptors; native logs go through our log hook, Python-level prints to the log.
        with contextlib.redirect_stderr(StderrToLog()), model_params(use_extra_bufts=extra_bufts):
            llm = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=gpu_layers, n_batch=batch, n_ubatch=batch, use_mmap=True, verbose=True,
            )
        llm.verbose = False  # after loading, `verbose` only makes generate() print cache hits to stderr
        return llm
    except (ValueError, RuntimeError, OSError, TemplateError) as exc:  # a broken GGUF chat template
        raise ModelError(
            f"llama.cpp could not load {path.name} ({exc}). The file may be damaged or use a model "
            "type this version of Haven does not support; try downloading it again or pick another model."
        ) from exc


_PROBE_TEXT = b"Haven checks that this computer can run the model: one batch of several tokens, then one more."


def probe_load_and_decode(plan: LoadPlan) -> None:
    """Load as ``plan`` says through the same code as a real load, decode a batch, then one token.
    Runs in the self-test's child process (assistant.engine.selftest); a crash kills only that child."""
    route_native_logs()
    path = Path(plan.path)
    context = min(plan.context_length, 512)
    llm = construct_chat(path, context, plan.threads, plan.gpu_layers, min(512, context), plan.extra_bufts)
    tokens = llm.tokenize(_PROBE_TEXT, add_bos=True, special=False)
    llm.eval(tokens)
    llm.eval(tokens[-1:])
    llm.close()
