"""Taking turns on the CPU: the chat model's decode steps and the safety checks never run at once.

Measured in round 1: llama.cpp decodes the starter model at 75 tokens/s alone, and at 26 tokens/s when
a safety encoder runs on another thread every 50 ms, because both spread one thread per core over the
same cores and each waits for the other's slowest thread at every barrier. Giving each a fixed share of
the cores halves the chat model's speed for good. Taking turns costs the chat model only the time the
checks really take: the engine holds :meth:`ComputeShare.decode_step` around each token; a check
holds :meth:`ComputeShare.turn`, which waits at most for the decode step under way, and while a check
waits, the engine does not start another step.

Taking turns is not enough on its own: NumPy's BLAS (OpenBLAS) keeps its worker threads spinning for a
while after each call, on the cores llama.cpp decodes on, and that cost a tenth of decode speed until the
checks were given one BLAS thread (``safety.factory.single_threaded_blas``).

One share per process (:data:`SHARED`); tests make their own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SHARED", "ComputeShare"]


class ComputeShare:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting = 0
        self._no_one_waiting = threading.Condition(threading.Lock())

    @contextmanager
    def turn(self) -> Iterator[None]:
        """A safety check's turn: waits for the current decode step, then holds the CPU."""
        with self._no_one_waiting:
            self._waiting += 1
        try:
            with self._lock:
                yield
        finally:
            with self._no_one_waiting:
                self._waiting -= 1
                if not self._waiting:
                    self._no_one_waiting.notify_all()

    @contextmanager
    def decode_step(self) -> Iterator[None]:
        """One decode step of the chat model: first lets every waiting check run."""
        with self._no_one_waiting:
            while self._waiting:
                self._no_one_waiting.wait()
        with self._lock:
            yield


SHARED = ComputeShare()
