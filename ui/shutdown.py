"""Every way the system can end Haven, routed to the one clean exit: the window's close, then ``shutdown``.

- SIGTERM, SIGINT and SIGHUP (SIGINT and SIGBREAK on Windows, from a console): the main loop exits with 0;
  later signals while Haven is ending are only logged (logind sends SIGHUP right after SIGTERM at logout).
- ``commitDataRequest`` (logout or shutdown through the session manager; on Windows WM_QUERYENDSESSION,
  on macOS the system asking the app to quit): a reply being written is stopped and stored, marked
  incomplete. The window stays open: the session manager may still cancel the logout.
- ``saveStateRequest``: nothing to do; conversations are stored as they stream (an XSMP checkpoint also
  sends it, and must not stop a reply).
- ``aboutToQuit`` (the main loop ending for any reason; on Windows also WM_ENDSESSION, after which the
  process is ended without returning from ``exec``): the window is closed, which stops a reply and waits
  briefly for it (``MainWindow.closeEvent``), then ``shutdown`` frees the model and closes the store.
- After that, ``end_with_running_threads`` lets a model load (which cannot be interrupted) end first.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSocketNotifier, Signal
from PySide6.QtGui import QGuiApplication

from ui.workers import live_threads

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["CleanExit", "SignalNotifier", "end_with_running_threads", "termination_signals"]

log = logging.getLogger(__name__)


def termination_signals() -> tuple[signal.Signals, ...]:
    """The signals that ask a program to end: SIGTERM, SIGINT, SIGHUP (POSIX) and SIGBREAK (Windows)."""
    return tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK")
                 if hasattr(signal, name))


class SignalNotifier(QObject):
    """Turns operating-system signals into the Qt signal ``received``, delivered by the UI thread's loop.

    A Python signal handler runs only when the interpreter gets control, and Qt's event loop waits in
    C++: a handler alone would run at the next Python slot, seconds or never later. So the handler does
    nothing, and ``signal.set_wakeup_fd`` has the C-level handler write the signal's number into one end of
    a socket pair; a ``QSocketNotifier`` on the other end wakes the event loop at once (no polling timer,
    no delay, no wake-ups while idle). A socket pair rather than a pipe because Windows accepts only a
    socket there. The work is done in ``_drain``, between two events, never in the middle of a slot.
    """

    received = Signal(int)

    def __init__(self, signals: Iterable[int], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)  # set_wakeup_fd requires it: a full buffer must not block
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {signum: signal.signal(signum, self._handle) for signum in signals}
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)

    @staticmethod
    def _handle(signum: int, frame: FrameType | None) -> None:
        """Replaces the default action (ending the process); the number already went through the socket."""

    def _drain(self) -> None:
        while True:
            try:
                data = self._reader.recv(64)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signum in data:
                if signum in self._previous:  # the descriptor hears every signal with a Python handler
                    self.received.emit(signum)

    def close(self) -> None:
        """Give the signals back their earlier handlers and the wake-up descriptor its earlier owner."""
        if self._reader.fileno() < 0:
            return
        self._notifier.setEnabled(False)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()


class CleanExit(QObject):
    """Connects the signals and the session manager to the window and ``shutdown`` (see the module doc).

    ``shutdown`` must be safe to call twice: ``main`` also calls it after the event loop returns.
    """

    def __init__(self, app: QGuiApplication, window: MainWindow, shutdown: Callable[[], None],
                 signals: Iterable[int] | None = None) -> None:
        super().__init__()
        self._app = app
        self._window = window
        self._shutdown = shutdown
        self._ending = False
        chosen = termination_signals() if signals is None else tuple(signals)
        self.signals = SignalNotifier(chosen, self)
        self.signals.received.connect(self._signalled)
        # Slots without the QSessionManager argument: Haven neither cancels the logout nor asks to be restarted.
        app.commitDataRequest.connect(self.session_ending)
        app.saveStateRequest.connect(self._save_state)
        app.aboutToQuit.connect(self.quitting)
        # Tests starting `haven` send a signal only after this line (docs/app.md, "How Haven ends").
        log.info("clean exit ready: %s", ", ".join(signal.Signals(s).name for s in chosen))

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._ending:
            log.info("%s received while Haven is already ending; ignored", name)
            return
        self._ending = True
        log.info("shutting down on %s", name)
        self._window.close()  # while the loop runs: the reply is stopped and the window goes at once
        self._app.exit(0)  # a requested end is a success; quitting() does the rest

    def session_ending(self) -> None:
        """``commitDataRequest``: store a reply being written; quitting is the session manager's call."""
        log.info("the session is ending: stopping and storing a reply being written")
        self._window.finish_turn()

    def _save_state(self) -> None:
        log.info("the session manager saves its state; conversations are already stored")

    def quitting(self) -> None:
        """``aboutToQuit``: on Windows at logoff the process ends as soon as this returns."""
        self._ending = True
        log.info("the event loop is ending: closing the window, then the model and the store")
        self._window.close()
        self._shutdown()

    def close(self) -> None:
        """Disconnect from the application and give the signals back (tests; the end of ``main``)."""
        self._app.commitDataRequest.disconnect(self.session_ending)
        self._app.saveStateRequest.disconnect(self._save_state)
        self._app.aboutToQuit.disconnect(self.quitting)
        self.signals.close()


def end_with_running_threads(code: int, wait_ms: int = 30_000) -> None:
    """After ``shutdown``: let work that cannot be interrupted (a model still loading) end, for at most
    ``wait_ms``; if a thread still runs then, end the process here with ``code``. Otherwise Python would
    destroy the running QThread on its way out, and Qt answers that with abort() (exit -6, no clean end)."""
    for thread in live_threads():
        log.info("waiting for a background task to end (a model still loading cannot be interrupted)")
        thread.wait(wait_ms)
    if live_threads():
        log.warning("a background task is still running after %d s; ending the process now", wait_ms // 1000)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        os._exit(code)
