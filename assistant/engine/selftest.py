"""Proof, before Haven trusts it, that llama.cpp's fast paths run on this computer without crashing.

Why. A fault inside llama.cpp is not a Python exception: it kills the process, and with it the app and
the reply being written. One such fault is known and unfixed upstream: on Intel CPUs with AMX (Xeon
Sapphire Rapids and later, including cloud desktops) llama.cpp repacks weights into its AMX buffer type
and segfaults on the first decode of more than one token (llama.cpp issue 20824; Ollama issues 17205 and
17006). Others come and go with drivers and builds. So nothing decides "this CPU is fine" from a list:
each configuration is tried where a crash costs nothing.

How. Before a model is first loaded with a given llama.cpp build, processor, model file and placement,
a child process (``multiprocessing``'s spawn, which also works in the frozen app) loads it through the
engine's own loading code and decodes a multi-token batch, then a single token. If the child dies, the
next rung of a ladder is tried:

1. as asked: extra buffer types on (AMX, weight repacking), the requested GPU layers;
2. extra buffer types off: llama.cpp's standard CPU code (a little slower on some CPUs, stable);
3. extra buffer types off and no GPU (only when GPU layers were asked for).

The first rung that survives is used and remembered in ``<cache>/llama-selftest.json``; a rung below
the first comes with a sentence for the person. If none survives, loading fails with a sentence and the
app stays up. A child that cannot be started at all (a locked-down system) is not a proof: the safe rung
2 is used, and nothing is remembered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from assistant.errors import ModelError

__all__ = ["CheckedPlan", "LoadPlan", "ModelKind", "NativeCheck"]

log = logging.getLogger(__name__)

CACHE_FILE = "llama-selftest.json"
CACHE_VERSION = 1
# A child gets this long to load and decode: generous, because the first read of a big model from a
# slow disk is the slow part (the parent's own load afterwards finds it in the page cache).
PROBE_TIMEOUT_S = 300.0
# Exit codes the probe uses for outcomes that are not crashes.
EXIT_PASSED, EXIT_LOAD_ERROR = 0, 3


class ModelKind(StrEnum):
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How a model is placed: the knobs the ladder turns, plus what the probe needs to load it."""

    path: str
    kind: ModelKind
    extra_bufts: bool
    gpu_layers: int
    context_length: int
    threads: int


@dataclass(frozen=True, slots=True)
class CheckedPlan:
    extra_bufts: bool
    gpu_layers: int
    notice: str | None  # a sentence for the person when Haven had to step down the ladder
    fresh: bool         # the self-test ran just now (not remembered from an earlier run)


Probe = Callable[[LoadPlan], None]


def run_probe(plan: LoadPlan) -> None:
    """The real probe: load through the engine's code and decode (runs in the child)."""
    from assistant.engine.loading import probe_load_and_decode  # imports this module: import it late

    probe_load_and_decode(plan)


def _child(probe: Probe, plan: LoadPlan) -> None:
    # llama.cpp's chatter and any crash report belong to the child alone: the person sees one sentence.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    logging.disable(logging.CRITICAL)
    try:
        probe(plan)
    except ModelError:
        os._exit(EXIT_LOAD_ERROR)  # a file llama.cpp refuses: the parent's own load will explain it
    os._exit(EXIT_PASSED)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return f"did not finish within {PROBE_TIMEOUT_S:.0f} s"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"crashed ({signal.Signals(-code).name})"
        return f"crashed (signal {-code})"
    return f"exited with code {code}"


class NativeCheck:
    """Chooses, and remembers, a load plan proven not to crash llama.cpp on this computer."""

    def __init__(self, cache_dir: Path | None, *, fingerprint: Callable[[], str] | None = None,
                 probe: Probe = run_probe, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._cache_file = cache_dir / CACHE_FILE if cache_dir is not None else None
        self._fingerprint = fingerprint
        self._probe = probe
        self._timeout_s = timeout_s

    @classmethod
    def for_environment(cls) -> NativeCheck:
        from assistant.paths import AppPaths

        return cls(AppPaths.from_environment().cache_dir)

    # -- the ladder ------------------------------------------------------------------------------

    def choose(self, requested: LoadPlan) -> CheckedPlan:
        rungs = [requested, _with(requested, extra_bufts=False)]
        if requested.gpu_layers != 0:
            rungs.append(_with(requested, extra_bufts=False, gpu_layers=0))
        key = self._key(requested)
        remembered = self._remembered(key)
        if remembered is not None:
            return remembered
        failures: list[str] = []
        for index, rung in enumerate(rungs):
            try:
                code = self._run_child(rung)
            except OSError as exc:  # no child process possible here: no proof, take the safe rung
                log.warning("the llama.cpp self-test could not start a process (%s); using the safe CPU path", exc)
                return CheckedPlan(extra_bufts=False, gpu_layers=requested.gpu_layers, notice=None, fresh=True)
            if code is not None and code > 0 and code not in (EXIT_PASSED, EXIT_LOAD_ERROR):
                # The child failed in Python before its probe said anything (a __main__ that a spawned
                # process cannot import, such as a script read from stdin): no evidence of a crash either
                # way, so nothing is remembered and the safe rung is taken.
                log.warning("the llama.cpp self-test child exited with code %s before probing; using the safe "
                            "CPU path", code)
                return CheckedPlan(extra_bufts=False, gpu_layers=requested.gpu_layers, notice=None, fresh=True)
            if code in (EXIT_PASSED, EXIT_LOAD_ERROR):
                checked = CheckedPlan(rung.extra_bufts, rung.gpu_layers, _notice(index, failures), fresh=True)
                if code == EXIT_PASSED:
                    self._remember(key, requested, checked, failures)
                return checked
            failures.append(f"{_rung_name(rung)}: {_describe_exit(code)}")
            log.warning("llama.cpp self-test of %s with %s %s", Path(requested.path).name, _rung_name(rung),
                        _describe_exit(code))
        self._remember(key, requested, None, failures)
        raise ModelError(_no_rung_sentence(Path(requested.path).name, failures))

    def _run_child(self, plan: LoadPlan) -> int | None:
        context = multiprocessing.get_context("spawn")
        process = context.Process(target=_child, args=(self._probe, plan), name="haven-llama-selftest",
                                  daemon=True)
        started = time.monotonic()
        process.start()
        process.join(self._timeout_s)
        if process.is_alive():
            process.kill()
            process.join(5)
            return None
        log.info("llama.cpp self-test of %s with %s: exit %s after %.1f s", Path(plan.path).name,
                 _rung_name(plan), process.exitcode, time.monotonic() - started)
        return process.exitcode

    # -- memory ----------------------------------------------------------------------------------

    def _key(self, plan: LoadPlan) -> str:
        from assistant.engine.native import build_fingerprint

        fingerprint = self._fingerprint() if self._fingerprint else build_fingerprint()
        path = Path(plan.path)
        stat = path.stat()
        identity = [fingerprint, str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns), plan.kind,
                    "gpu" if plan.gpu_layers != 0 else "cpu", str(plan.extra_bufts)]
        return hashlib.sha256("\n".join(identity).encode()).hexdigest()

    def _read(self) -> dict[str, Any]:
        if self._cache_file is None:
            return {}
        try:
            data = json.loads(self._cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        results = data.get("results")
        return results if isinstance(results, dict) else {}

    def _remembered(self, key: str) -> CheckedPlan | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        plan = entry.get("plan")
        if plan is None:
            raise ModelError(_no_rung_sentence(str(entry.get("model", "this model")), list(entry.get("failures", []))))
        if not isinstance(plan, dict):
            return None
        return CheckedPlan(extra_bufts=bool(plan.get("extra_bufts")), gpu_layers=int(plan.get("gpu_layers", 0)),
                           notice=plan.get("notice"), fresh=False)

    def _remember(self, key: str, requested: LoadPlan, checked: CheckedPlan | None, failures: list[str]) -> None:
        if self._cache_file is None:
            return
        results = self._read()
        results[key] = {
            "model": Path(requested.path).name,
            "plan": None if checked is None else {k: v for k, v in asdict(checked).items() if k != "fresh"},
            "failures": failures,
            "checked": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            self._cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._cache_file.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"version": CACHE_VERSION, "results": results}, indent=1),
                                 encoding="utf-8")
            temporary.replace(self._cache_file)  # atomic: a reader sees the old file or the new one
        except OSError as exc:  # not remembered: the check simply runs again next time
            log.warning("could not save the llama.cpp self-test result (%s)", exc)


def _with(plan: LoadPlan, **changes: Any) -> LoadPlan:
    values = asdict(plan)
    values.update(changes)
    return LoadPlan(**values)


def _rung_name(plan: LoadPlan) -> str:
    cpu = "extra CPU buffer types (AMX, repacking)" if plan.extra_bufts else "standard CPU code"
    return cpu + (", GPU offload" if plan.gpu_layers != 0 else "")


def _notice(index: int, failures: list[str]) -> str | None:
    if index == 0:
        return None
    if index == 1:
        return ("llama.cpp's fastest CPU code crashed on this computer in Haven's start-up check, so this "
                "model runs on llama.cpp's standard CPU code: a little slower, and stable.")
    return ("llama.cpp crashed using the GPU in Haven's start-up check, so this model runs on the CPU. "
            "Updating the graphics driver may bring the GPU back.")


def _no_rung_sentence(model: str, failures: list[str]) -> str:
    detail = "; ".join(failures) if failures else "it crashed"
    return (f"llama.cpp crashed while loading {model} on this computer, even with its safest settings "
            f"({detail}). Haven did not load it, so nothing was lost; choose another model or quantization.")
