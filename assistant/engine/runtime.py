"""The chat model's runtime: one llama.cpp model, its own thread, streaming generation.

One model is loaded at a time, and one thread (``haven-engine``) creates, uses and frees it, because a
``Llama`` is not thread-safe. Callers on any thread submit work and read results through queues.

Why Haven drives generation itself instead of ``create_chat_completion``:
* prompts are tokenized from :mod:`assistant.engine.chat_format` fragments, so text a person typed can never
  become a control token;
* pieces are detokenized one token at a time with an incremental UTF-8 decoder (the library's streaming
  path re-detokenizes the whole completion on every token, which is quadratic);
* Stop is checked on every token, and ``llama_set_abort_callback`` interrupts a long prompt evaluation.
  The callback is installed only while the prompt is evaluated, so decoding pays nothing for it.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp
from llama_cpp.llama_grammar import LlamaGrammar

from assistant.chat import ChatMessage, StopReason  # StopReason: re-exported, one enum for engine and store
from assistant.compute import SHARED
from assistant.engine.chat_format import ChatFormatter, Fragment, TokenNames, detect_format
from assistant.engine.loading import construct_chat
from assistant.engine.native import gpu_infos, load_backends, route_native_logs, runtime_report
from assistant.engine.selftest import LoadPlan, ModelKind, NativeCheck
from assistant.errors import GenerationError, ModelError
from assistant.hardware import detect_hardware, physical_cores
from assistant.models.fit import ModelShape, memory_needed
from assistant.models.gguf import GgufInfo, read_gguf
from assistant.models.splits import split_parts
from assistant.settings import GpuOffload

__all__ = [
    "Engine", "GenerationStats", "LoadOptions", "ModelInfo", "SamplingParams", "StopReason", "describe_runtime",
    "gpu_offload_supported",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    context_length: int = 4096
    threads: int = 0                   # 0: one per physical core
    gpu_layers: int = GpuOffload.AUTO  # AUTO, ALL (-1), NONE (0) or a layer count
    batch_size: int = 512
    chat_format: str | None = None     # force "llama-2", "chatml" or "jinja"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: Path
    name: str
    architecture: str
    size_bytes: int
    context_length: int
    trained_context_length: int
    layer_count: int
    gpu_layers: int
    threads: int
    chat_format: str
    gpu_offload_supported: bool
    extra_buffer_types: bool = True  # llama.cpp's extra CPU buffer types (AMX, repacking), if proven safe
    runtime_notice: str | None = None  # a sentence when the self-test had to step down (docs/core.md)
    runtime_checked_now: bool = False  # the self-test ran for this load (not remembered from before)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None  # None: a fresh random seed for every request
    grammar: str | None = None  # a GBNF grammar constraining the output (the guard model's answer)
    ignore_eos: bool = False    # keep going past end-of-turn (benchmarks of long replies)


@dataclass(frozen=True, slots=True)
class GenerationStats:
    prompt_tokens: int
    reused_prompt_tokens: int    # taken from the KV cache of the previous turn
    completion_tokens: int
    prompt_eval_ms: float        # llama.cpp's counter
    decode_ms: float             # llama.cpp's counter
    tokens_per_second: float     # decode speed from llama.cpp's counters
    started_at: float            # time.perf_counter() when the request reached the engine
    first_token_at: float | None # time.perf_counter() when the first token was sampled
    stop_reason: StopReason
    seed: int


def model_bytes(path: Path) -> int:
    """The weights' size on disk: every part of a split model (llama.cpp loads them all from the first).
    A missing part counts nothing here: loading it is what says which part is missing, in a sentence."""
    return sum(part.stat().st_size for part in split_parts(path) if part.is_file())


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can offload layers to a GPU (CUDA, Metal, Vulkan...)."""
    load_backends()
    return bool(llama_cpp.llama_supports_gpu_offload())


def describe_runtime(info: ModelInfo | None) -> str:
    """Where llama.cpp runs, in words for Settings: the backends it found, and where this model's layers
    went (with the self-test's notice when Haven had to step down)."""
    report = runtime_report()
    text = f"llama.cpp {report.llama_cpp_version}: {report.describe()}."
    if info is None:
        return text
    gpu_names = ", ".join(d.name for d in report.gpus) or "GPU"
    if info.gpu_layers >= info.layer_count > 0:
        placement = f"all {info.layer_count} layers on {gpu_names}"
    elif info.gpu_layers > 0:
        placement = f"{info.gpu_layers} of {info.layer_count} layers on {gpu_names}, the rest on the CPU"
    else:
        placement = f"on the CPU with {info.threads} threads"
    cpu_code = "" if info.extra_buffer_types else " (llama.cpp's standard CPU code)"
    text += f" {info.name}: {placement}{cpu_code}."
    return text + (f" {info.runtime_notice}" if info.runtime_notice else "")


# --- the engine --------------------------------------------------------------------------------


class Engine:
    """Owns one llama.cpp model on its own thread. Safe to call from any thread."""

    def __init__(self, native_check: NativeCheck | None = None) -> None:
        route_native_logs()
        self._native_check = native_check or NativeCheck.for_environment()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="haven-engine", daemon=True)
        self._llm: Any = None
        self._info: ModelInfo | None = None
        self._formatter: ChatFormatter | None = None
        self._vocab: Any = None
        self._abort_requested = threading.Event()
        self._abort_callback = llama_cpp.ggml_abort_callback(lambda _data: self._abort_requested.is_set())
        self._piece_buffer = ctypes.create_string_buffer(256)
        self._closed = False
        # Kept prefixes (keep_prefix): key -> (tokens, llama.cpp's state of sequence 0 after them).
        self._prefix_states: dict[str, tuple[tuple[int, ...], bytes]] = {}
        self._thread.start()

    # -- thread plumbing -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
        self._free_model()

    def _submit(self, fn: Callable[[], T]) -> Future[T]:
        if self._closed:
            raise GenerationError("The model engine has been shut down; restart Haven.")
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        return future

    def _call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        return self._submit(fn).result()

    def close(self, timeout: float = 5.0) -> None:
        """Free the model and stop the engine thread. A generation in progress is stopped first."""
        if self._closed:
            return
        self._abort_requested.set()
        self._closed = True
        self._jobs.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loading -------------------------------------------------------------------------------

    @property
    def model(self) -> ModelInfo | None:
        return self._info

    def load(self, path: Path, options: LoadOptions = LoadOptions()) -> ModelInfo:
        """Load ``path`` (unloading any current model). Raises :class:`ModelError` with a sentence."""
        header = read_gguf(path)  # validates the file before llama.cpp sees it
        parts = split_parts(path)
        if missing := [p for p in parts if not p.is_file()]:
            raise ModelError(
                f"{path.name} is the first of {len(parts)} parts of one model, and {len(missing)} of them "
                f"({', '.join(p.name for p in missing)}) are not beside it in {path.parent}. Download the model "
                "again, or put every part in the same folder.")
        return self._call(lambda: self._load(path, header, options))

    def unload(self) -> None:
        self._call(self._free_model)

    def _free_model(self) -> None:
        self._prefix_states.clear()  # kept prefixes belong to the model being freed
        if self._llm is not None:
            self._llm.close()
        self._llm, self._info, self._formatter, self._vocab = None, None, None, None

    def _choose_gpu_layers(self, requested: int, header: GgufInfo, path: Path, n_ctx: int) -> int:
        if requested != GpuOffload.AUTO:
            return requested
        if not llama_cpp.llama_supports_gpu_offload():
            return 0
        free = [g.free_bytes for g in detect_hardware(gpu_infos()).gpus if g.free_bytes is not None]
        if not free:
            return GpuOffload.ALL  # unknown memory: try, and fall back to the CPU if loading fails
        # The same estimate as the model manager's fit label (grouped-query attention's smaller KV cache
        # included), so "fits on the GPU" there means offload here. A split model's weights are all its parts.
        needed = memory_needed(model_bytes(path), ModelShape.from_gguf_metadata(header.metadata), n_ctx)
        return GpuOffload.ALL if needed <= max(free) else 0

    def _load(self, path: Path, header: GgufInfo, options: LoadOptions) -> ModelInfo:
        self._free_model()
        trained = header.context_length or options.context_length
        n_ctx = max(256, min(options.context_length, trained))
        threads = options.threads or physical_cores()
        gpu_layers = self._choose_gpu_layers(options.gpu_layers, header, path, n_ctx)
        plan = self._native_check.choose(LoadPlan(
            path=str(path), kind=ModelKind.CHAT, extra_bufts=True, gpu_layers=gpu_layers, context_length=n_ctx,
            threads=threads))
        gpu_layers = plan.gpu_layers
        try:
            llm = construct_chat(path, n_ctx, threads, gpu_layers, options.batch_size, plan.extra_bufts)
        except ModelError:
            if gpu_layers == 0 or options.gpu_layers != GpuOffload.AUTO:
                raise
            log.warning("loading with GPU offload failed; retrying on the CPU")
            gpu_layers = 0
            llm = construct_chat(path, n_ctx, threads, gpu_layers, options.batch_size, plan.extra_bufts)
        try:
            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            fmt = detect_format(header.chat_template, header.name or path.stem, options.chat_format)
            formatter = ChatFormatter(
                fmt, header.chat_template, self._control_tokens(vocab), self._token_names(vocab),
                add_bos=bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            )
        except BaseException:
            llm.close()  # a template Haven cannot use: free the weights and the KV cache before saying so
            raise
        layers = header.block_count
        self._llm, self._vocab, self._formatter = llm, vocab, formatter
        self._info = ModelInfo(
            path=path, name=header.name or path.stem, architecture=header.architecture,
            size_bytes=model_bytes(path), context_length=llm.n_ctx(), trained_context_length=trained,
            layer_count=layers, gpu_layers=layers if gpu_layers == GpuOffload.ALL else min(gpu_layers, layers),
            threads=threads, chat_format=fmt,
            gpu_offload_supported=bool(llama_cpp.llama_supports_gpu_offload()),
            extra_buffer_types=plan.extra_bufts, runtime_notice=plan.notice, runtime_checked_now=plan.fresh,
        )
        log.info("loaded %s: ctx %d, %d threads, %d GPU layers, format %s", path.name,
                 self._info.context_length, threads, self._info.gpu_layers, fmt)
        return self._info

    def _token_text(self, vocab: Any, token: int) -> str:
        raw = llama_cpp.llama_vocab_get_text(vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def _control_tokens(self, vocab: Any) -> dict[str, int]:
        wanted = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        found: dict[str, int] = {}
        for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
            if llama_cpp.llama_vocab_get_attr(vocab, token) & wanted:
                text = self._token_text(vocab, token)
                if text:
                    found.setdefault(text, token)
        return found

    def _token_names(self, vocab: Any) -> TokenNames:
        bos, eos = llama_cpp.llama_vocab_bos(vocab), llama_cpp.llama_vocab_eos(vocab)
        return TokenNames(
            bos_id=bos if bos >= 0 else None, eos_id=eos if eos >= 0 else None,
            bos_text=self._token_text(vocab, bos) if bos >= 0 else "",
            eos_text=self._token_text(vocab, eos) if eos >= 0 else "",
        )

    # -- tokens --------------------------------------------------------------------------------

    def _require_model(self) -> Any:
        if self._llm is None:
            raise ModelError("No model is loaded. Choose a model first.")
        return self._llm

    def tokenize_chat(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]:
        """The exact prompt tokens for ``messages``; message text is never parsed for control tokens."""
        return self._call(lambda: self._tokenize_fragments(self._render(messages, add_generation_prompt)))

    def count_chat_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self.tokenize_chat(messages))

    def tokenize_text(self, text: str, *, parse_control: bool = False) -> list[int]:
        return self._call(lambda: self._tokenize(text, parse_control))

    def tokenize_parts(self, parts: Sequence[tuple[str, bool]], *, add_bos: bool = False) -> list[int]:
        """Tokenize ``(text, parse_control)`` pieces in order: a hand-built prompt (the guard model's) whose
        own markup is parsed for control tokens while the conversation inside it stays plain text."""
        def run() -> list[int]:
            tokens: list[int] = []
            if add_bos:
                bos = llama_cpp.llama_vocab_bos(self._vocab)
                if bos >= 0:
                    tokens.append(bos)
            for text, parse_control in parts:
                tokens += self._tokenize(text, parse_control)
            return tokens
        return self._call(run)

    def token_text(self, token: int) -> str:
        """The vocabulary text of one token (for tests and diagnostics)."""
        return self._call(lambda: self._token_text(self._vocab, token))

    def is_control_token(self, token: int) -> bool:
        return self._call(lambda: bool(llama_cpp.llama_vocab_is_control(self._vocab, token)))

    def _render(self, messages: Sequence[ChatMessage], add_generation_prompt: bool) -> list[Fragment]:
        self._require_model()
        assert self._formatter is not None
        return self._formatter.render(messages, add_generation_prompt=add_generation_prompt)

    def _tokenize(self, text: str, special: bool) -> list[int]:
        llm = self._require_model()
        return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def _tokenize_fragments(self, fragments: Sequence[Fragment]) -> list[int]:
        tokens: list[int] = []
        for fragment in fragments:
            if isinstance(fragment, int):
                tokens.append(fragment)
            else:
                tokens += self._tokenize(fragment, special=False)
        return tokens

    def _piece(self, token: int) -> bytes:
        """One token's bytes (llama_token_to_piece), growing the buffer when a piece is long."""
        size = len(self._piece_buffer)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buffer, size, 0, False)
        if n < 0:
            self._piece_buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buffer, -n, 0, False)
        return self._piece_buffer.raw[:n]

    # -- generation ----------------------------------------------------------------------------

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        """Evaluate ``messages`` (a finished exchange) into the KV cache, on the engine thread, without
        waiting. The next prompt starts with them, so its time to first token then covers only the new
        message: the end of the last reply (its final token and end-of-turn marker) is done while the
        person reads it. Any later request simply queues behind this one."""
        def job() -> None:
            llm = self._llm
            if llm is None:
                return
            try:
                tokens = self._tokenize_fragments(self._render(messages, False))
                common = _common_prefix(llm._input_ids, tokens)
                if common < len(tokens) < llm.n_ctx():
                    llm.n_tokens = common  # eval() drops the cache beyond this point, then extends it
                    llm.eval(tokens[common:])
            except Exception:  # an optimisation only: the next turn evaluates what is missing itself
                log.debug("prefill skipped", exc_info=True)

        if not self._closed:
            self._submit(job)

    def keep_prefix(self, key: str, tokens: Sequence[int]) -> None:
        """Make the KV cache hold exactly ``tokens`` (evaluated once, then restored from a copy kept under
        ``key``), so that a following :meth:`generate_tokens` of a prompt that starts with them evaluates
        only the rest, whatever ran in between. The guard model keeps its fixed instructions so: one prefix
        for checks of a user turn, one for checks of a reply, which differ early in the prompt."""
        wanted = tuple(tokens)

        def job() -> None:
            llm = self._require_model()
            saved = self._prefix_states.get(key)
            if saved is not None and saved[0] == wanted:
                if tuple(llm._input_ids[: len(wanted)]) != wanted or llm.n_tokens < len(wanted):
                    data = (ctypes.c_uint8 * len(saved[1])).from_buffer_copy(saved[1])
                    if not llama_cpp.llama_state_seq_set_data(llm.ctx, data, len(saved[1]), 0):
                        raise GenerationError("llama.cpp could not restore a kept prompt prefix.")
                    llm.n_tokens = len(wanted)
                    llm.input_ids[: len(wanted)] = wanted
                return
            common = _common_prefix(llm._input_ids, list(wanted))
            llm.n_tokens = common  # eval() drops the cache beyond this point, then extends it
            if common < len(wanted):
                llm.eval(list(wanted[common:]))
            size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(llm.ctx, buffer, size, 0)
            self._prefix_states[key] = (wanted, bytes(buffer)[:written])

        self._call(job)

    def generate(
        self,
        messages: Sequence[ChatMessage],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Generator[str | GenerationStats, None, None]:
        """Stream text pieces, then one :class:`GenerationStats`. Setting ``cancel`` stops within a token."""
        return self.generate_tokens(None, params, cancel, messages=messages)

    def generate_tokens(
        self,
        prompt: Sequence[int] | None,
        params: SamplingParams,
        cancel: threading.Event | None = None,
        *,
        messages: Sequence[ChatMessage] | None = None,
    ) -> Generator[str | GenerationStats, None, None]:
        stop = cancel if cancel is not None else threading.Event()
        out: queue.SimpleQueue[str | GenerationStats | BaseException | None] = queue.SimpleQueue()

        def job() -> None:
            try:
                tokens = list(prompt) if prompt is not None else self._tokenize_fragments(
                    self._render(messages or (), True))
                self._generate(tokens, params, stop, out)
            except BaseException as exc:
                out.put(exc)
            finally:
                out.put(None)

        self._submit(job)
        return _drain(out, stop)

    def _generate(
        self, tokens: list[int], params: SamplingParams, stop: threading.Event,
        out: queue.SimpleQueue[str | GenerationStats | BaseException | None],
    ) -> None:
        llm = self._require_model()
        started = time.perf_counter()
        n_ctx = llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise GenerationError(
                f"The prompt has {len(tokens)} tokens but the context holds {n_ctx}; shorten the conversation.")
        seed = params.seed if params.seed is not None else secrets.randbits(31)
        llm.set_seed(seed)
        reused = _common_prefix(llm._input_ids, tokens)
        llama_cpp.llama_perf_context_reset(llm.ctx)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        first_token_at: float | None = None
        last_token_at = started
        produced = 0
        reason = StopReason.END
        leading = True
        self._abort_requested = stop
        llama_cpp.llama_set_abort_callback(llm.ctx, self._abort_callback, None)
        grammar = LlamaGrammar.from_string(params.grammar, verbose=False) if params.grammar else None
        stream = llm.generate(
            tokens, top_k=params.top_k, top_p=params.top_p, min_p=params.min_p, temp=params.temperature,
            repeat_penalty=params.repeat_penalty, reset=True, grammar=grammar,
        )
        tokens_left = iter(stream)
        try:
            while True:
                # One decode step at a time on the CPU with the safety checks (assistant.compute).
                with SHARED.decode_step():
                    token = next(tokens_left, None)
                if token is None:
                    break
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                    # The prompt is evaluated: decoding needs no abort hook (Stop is checked per token).
                    llama_cpp.llama_set_abort_callback(llm.ctx, llama_cpp.ggml_abort_callback(), None)
                if stop.is_set():
                    reason = StopReason.CANCELLED
                    break
                if llama_cpp.llama_vocab_is_eog(self._vocab, token) and not params.ignore_eos:
                    break
                produced += 1
                last_token_at = time.perf_counter()
                text = decoder.decode(self._piece(token))
                if leading:
                    text = text.lstrip()
                    leading = not text
                if text:
                    out.put(text)
                if produced >= params.max_tokens or llm.n_tokens + 1 >= n_ctx:
                    reason = StopReason.LENGTH
                    break
        except RuntimeError as exc:
            if not stop.is_set():
                raise GenerationError(f"llama.cpp failed while generating ({exc}). Try again.") from exc
            reason = StopReason.CANCELLED  # the abort callback interrupted the prompt evaluation
        finally:
            stream.close()
            llama_cpp.llama_set_abort_callback(llm.ctx, llama_cpp.ggml_abort_callback(), None)
        tail = decoder.decode(b"", final=True)
        if tail and not leading:
            out.put(tail)
        perf = llama_cpp.llama_perf_context(llm.ctx)
        out.put(GenerationStats(
            prompt_tokens=len(tokens), reused_prompt_tokens=min(reused, len(tokens)), completion_tokens=produced,
            prompt_eval_ms=float(perf.t_p_eval_ms), decode_ms=float(perf.t_eval_ms),
            # Wall-clock decode speed, first token to last: what a person sees, pauses for the safety
            # checks included (llama.cpp's own counters leave those out).
            tokens_per_second=(produced - 1) / (last_token_at - first_token_at)
            if produced > 1 and first_token_at is not None and last_token_at > first_token_at else 0.0,
            started_at=started, first_token_at=first_token_at, stop_reason=reason, seed=seed,
        ))


def _common_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    count = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        count += 1
    return count


def _drain(
    out: queue.SimpleQueue[str | GenerationStats | BaseException | None], stop: threading.Event
) -> Generator[str | GenerationStats, None, None]:
    """Yield what the engine thread produces; closing this iterator early stops the generation."""
    finished = False
    try:
        while True:
            item = out.get()
            if item is None:
                finished = True
                return
            if isinstance(item, BaseException):
                finished = True
                raise item
            yield item
    finally:
        if not finished:
            stop.set()
