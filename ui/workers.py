"""The only home of QThread: long calls of the core run here, and their results come back as signals.

The UI thread never waits on the model, the disk or the network: a :class:`TaskWorker` runs one call on
a thread of its own; a :class:`TurnWorker` runs one chat turn and sends the released text in batches
(at most ~30 updates a second) so the view is not flooded token by token.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from assistant.errors import HavenError
from assistant.session import (
    ChatSession,
    ReasoningDone,
    ReasoningReleased,
    TextReleased,
    TurnEvent,
    TurnResult,
    TurnStarted,
)

__all__ = ["TaskWorker", "TurnWorker", "live_threads", "start"]

log = logging.getLogger(__name__)

BATCH_SECONDS = 1 / 30
# Started threads and their workers. Python owns both (no deleteLater): a worker freed by Python's
# garbage collector while Qt also had a deferred delete pending crashed the app. They are dropped only
# once their thread has finished, from the UI thread, which is safe.
_LIVE: dict[QThread, QObject] = {}


def _purge() -> None:
    for thread in [t for t in _LIVE if t.isFinished()]:
        del _LIVE[thread]


def live_threads() -> list[QThread]:
    """Threads started here that are still running (the test fixture checks none is left behind)."""
    _purge()
    return [t for t in _LIVE if t.isRunning()]


def start(worker: QObject, entry: Callable[[], None]) -> QThread:
    """Move ``worker`` to a new thread and run ``entry`` there; the thread ends when the worker is done."""
    _purge()
    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(entry)
    # Direct: QThread.quit is thread-safe, and a queued call would wait for a UI thread that may itself be
    # waiting for this thread (on shutdown).
    worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # type: ignore[attr-defined]
    _LIVE[thread] = worker
    thread.start()
    return thread


def describe(exc: BaseException) -> tuple[str, str]:
    """A sentence for the user and the details behind the expander."""
    details = "".join(traceback.format_exception(exc))
    if isinstance(exc, HavenError):
        return str(exc), details
    return f"Something went wrong ({type(exc).__name__}: {exc}). The details below help when reporting it.", details


class TaskWorker(QObject):
    """Runs ``call()`` off the UI thread; emits ``result`` or ``failed``, then ``done``."""

    result = Signal(object)
    failed = Signal(str, str)
    done = Signal()

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__()
        self._call = call

    @Slot()
    def run(self) -> None:
        try:
            self.result.emit(self._call())
        except BaseException as exc:  # reported to the UI, never raised into Qt
            log.exception("background task failed")
            self.failed.emit(*describe(exc))
        finally:
            self.done.emit()


Turn = Callable[[threading.Event], Iterator[TurnEvent]]  # a session operation, given the cancel flag


class TurnWorker(QObject):
    """One chat turn: a new message (``send``), or ``turn`` (an edit or a regenerate, any of the session's
    operations that yield turn events). ``cancel`` (set from the UI thread) stops it within a token.

    Only released text ever leaves here: the events carry nothing the output filter has not passed."""

    turn_started = Signal(str, int)
    text = Signal(str)
    reasoning = Signal(str)         # released thinking text
    reasoning_done = Signal(float)  # how long the thinking took, ms
    finished = Signal(object)
    failed = Signal(str, str)
    done = Signal()

    def __init__(self, session: ChatSession, message: str, conversation_id: str | None,
                 instructions: str | None = None, *, turn: Turn | None = None) -> None:
        super().__init__()
        self.cancel = threading.Event()
        self._session = session
        self._message = message
        self._conversation_id = conversation_id
        self._instructions = instructions
        self._turn = turn

    def _events(self) -> Iterator[TurnEvent]:
        if self._turn is not None:
            return self._turn(self.cancel)
        return self._session.send(self._message, self._conversation_id, cancel=self.cancel,
                                  instructions=self._instructions)

    @Slot()
    def run(self) -> None:
        pending: list[str] = []
        last = time.monotonic()
        try:
            for event in self._events():
                if isinstance(event, ReasoningReleased):
                    self.reasoning.emit(event.text)
                elif isinstance(event, ReasoningDone):
                    self.reasoning_done.emit(event.duration_ms)
                elif isinstance(event, TextReleased):
                    pending.append(event.text)
                    if time.monotonic() - last >= BATCH_SECONDS:
                        self.text.emit("".join(pending))
                        pending.clear()
                        last = time.monotonic()
                elif isinstance(event, TurnStarted):
                    self.turn_started.emit(event.conversation_id, event.user_message_id)
                elif isinstance(event, TurnResult):
                    if pending:
                        self.text.emit("".join(pending))
                        pending.clear()
                    self.finished.emit(event)
        except BaseException as exc:
            log.exception("chat turn failed")
            self.failed.emit(*describe(exc))
        finally:
            self.done.emit()
