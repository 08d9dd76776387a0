"""``haven --bench-probe TOKENS FILE``: the desktop app timed from the inside, for ``haven-cli bench``.

The probe starts the real app (:class:`ui.app.HavenApp`, exactly as ``haven`` does), notes when the
window is first exposed, waits for the model, sends one message through the window, notes when the first
text reaches the chat view, and watches the main thread with a heartbeat timer while the reply streams.
Then it quits and writes one JSON object to FILE (a file, not stdout: the frozen ``haven`` on Windows is a
GUI program without one). ``haven-cli bench`` runs it as an option of the ``haven`` executable in a fresh
process, exactly the program people start, so start-up is measured from process start (the parent passes
its spawn time in ``HAVEN_BENCH_T0``), and peak memory is this process's own.

``haven --bench-probe-long FILE`` is the long-conversation probe (:class:`LongProbe`): the data folder holds
a conversation of many exchanges (:mod:`assistant.bench.long_conversation`); once the model is loaded the
probe opens it in the window (timed until the transcript is laid out and painted), then streams a reply of
the same shape into it through the view's streaming path at a model's pace, watching the UI thread.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication

from assistant.app_logging import configure_logging
from assistant.bench.long_conversation import STREAM_SECONDS, long_reply
from assistant.paths import AppPaths
from ui.app import HavenApp
from ui.chat_view import ViewMessage

SPAWN_TIME_VARIABLE = "HAVEN_BENCH_T0"  # time.time() in the parent just before it started this process
HEARTBEAT_MS = 5
PROMPT = "Write a long story about a lighthouse keeper and her cat, with many details."


def peak_rss_bytes() -> int:
    """This process's own peak resident memory.

    On Linux this is VmHWM, the high-water mark of this program's memory. ``ru_maxrss`` would be
    wrong here: Linux carries it over from the parent across fork and exec, so a probe started by a
    benchmark that holds two models would report the benchmark's peak.
    """
    if sys.platform == "win32":
        return int(psutil.Process().memory_info().peak_wset)
    if sys.platform.startswith("linux"):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    import resource  # POSIX only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, others KiB


class _ShownFilter(QObject):
    """Notes the first expose or paint event: the window is on screen."""

    def __init__(self, shown: Callable[[], None]) -> None:
        super().__init__()
        self._shown: Callable[[], None] | None = shown

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._shown is not None and event.type() in (QEvent.Type.Expose, QEvent.Type.Paint):
            self._shown()
            self._shown = None
        return False


class Probe(QObject):
    """Hooks into the window; measures, then quits the app. Slots are bound methods of this UI-thread
    object, so the worker's signals reach them queued, exactly as they reach the window."""

    def __init__(self, spawned_at: float, max_tokens: int) -> None:
        super().__init__()
        configure_logging(AppPaths.from_environment(), debug=False)
        self.spawned_at = spawned_at
        self.max_tokens = max_tokens
        self.figures: dict[str, Any] = {}
        self.app = QApplication([sys.argv[0], "-platform", os.environ.get("QT_QPA_PLATFORM", "offscreen")])
        self.app.setApplicationName("Haven")
        self.haven = HavenApp(self.app)
        window = self.haven.window
        self.window = window
        self._last_beat = 0.0
        self._streaming = False
        self.max_gap_ms = 0.0
        self.beats = 0

        self._filter = _ShownFilter(self._shown)
        self.app.installEventFilter(self._filter)
        self.heartbeat = QTimer()
        self.heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
        self.heartbeat.setInterval(HEARTBEAT_MS)
        self.heartbeat.timeout.connect(self._beat)
        self._hook(window, "attach_session", after=self._model_ready)
        window.show()

    def _shown(self) -> None:
        self.figures["window_ms"] = (time.time() - self.spawned_at) * 1000.0
        self._note_memory("window")

    def _note_memory(self, moment: str) -> None:
        """Resident memory at a moment of the run, to see which stage costs what."""
        self.figures.setdefault("rss_mb", {})[moment] = round(psutil.Process().memory_info().rss / 2**20, 1)

    @staticmethod
    def _hook(target: object, name: str, *, after: Callable[[], None]) -> None:
        """Run ``after`` once a method of one instance was called directly (not through a signal)."""
        original = getattr(target, name)

        def hooked(*args: Any) -> Any:
            result = original(*args)
            after()
            return result

        setattr(target, name, hooked)

    def _model_ready(self) -> None:
        self.figures["model_ready_ms"] = (time.time() - self.spawned_at) * 1000.0
        self._note_memory("model_ready")
        session = self.window.session
        if session is not None:
            session.sampling = dataclasses.replace(session.sampling, max_tokens=self.max_tokens, seed=1234)
            model = session.engine.model
            self.figures["model_size_bytes"] = model.size_bytes if model is not None else 0
        QTimer.singleShot(0, self._send)

    def _send(self) -> None:
        self.window.input.setPlainText(PROMPT)
        self.window.send()
        turn = self.window.turn
        if turn is not None:  # bound methods of this QObject: queued to the UI thread like the window's own
            turn.text.connect(self._text_arrived)
            turn.done.connect(self._turn_done)
        self._last_beat = time.perf_counter()
        self.heartbeat.start()

    def _text_arrived(self, _text: str) -> None:
        if "first_text_ms" not in self.figures:
            self.figures["first_text_ms"] = (time.time() - self.spawned_at) * 1000.0
            self._note_memory("first_text")
            self._streaming = True
            self._last_beat = time.perf_counter()

    def _beat(self) -> None:
        now = time.perf_counter()
        if self._streaming:
            self.max_gap_ms = max(self.max_gap_ms, (now - self._last_beat) * 1000.0)
            self.beats += 1
        self._last_beat = now

    def _turn_done(self) -> None:
        self._streaming = False
        self.heartbeat.stop()
        self._note_memory("reply_done")
        reply = self.window.chat.messages[-1] if self.window.chat.messages else None
        self.figures.update({
            "ui_max_stall_ms": max(0.0, self.max_gap_ms - HEARTBEAT_MS),
            "heartbeats": self.beats,
            "reply_chars": len(reply.content) if reply is not None else 0,
            "reply_blocked": bool(reply.blocked) if reply is not None else False,
        })
        QTimer.singleShot(0, self.app.quit)

    def run(self) -> dict[str, Any]:
        code = self.app.exec()
        self.haven.shutdown()
        self.figures.update({"exit_code": int(code), "peak_rss_bytes": peak_rss_bytes()})
        return self.figures


class LongProbe(Probe):
    """Opens the data folder's long conversation, then streams a reply into it; see the module docstring."""

    def __init__(self, spawned_at: float) -> None:
        super().__init__(spawned_at, max_tokens=0)
        self._reply = long_reply(0) * 3  # ~1,700 characters: a paragraph, code and a table, three times
        self._fed = 0
        self._stream_started = 0.0
        self._last_cpu = 0.0
        self.max_gap_cpu_ms = 0.0
        self.feeder = QTimer()
        self.feeder.setInterval(33)  # the turn worker's batches: at most ~30 a second
        self.feeder.timeout.connect(self._feed)

    def _beat(self) -> None:
        """Also note the UI thread's own CPU time in the longest gap: on a busy machine the scheduler,
        not Haven, can hold the thread back, and the wall-clock figure alone cannot tell which."""
        now, cpu = time.perf_counter(), time.thread_time()
        if self._streaming:
            gap = (now - self._last_beat) * 1000.0
            if gap > self.max_gap_ms:
                self.max_gap_cpu_ms = (cpu - self._last_cpu) * 1000.0
            self.max_gap_ms = max(self.max_gap_ms, gap)
            self.beats += 1
        self._last_beat, self._last_cpu = now, cpu

    def _model_ready(self) -> None:
        self._note_memory("before_open")
        summaries = self.haven.store.list_conversations()
        if not summaries:
            self.figures["error"] = "the data folder holds no conversation"
            QTimer.singleShot(0, self.app.quit)
            return
        conversation = max(summaries, key=lambda c: c.messages)
        started = time.perf_counter()
        self.window.open_conversation(conversation.id)
        self.app.processEvents()
        self.window.chat.viewport().repaint()  # laid out and drawn, as the person sees it
        self.figures["long_load_ms"] = (time.perf_counter() - started) * 1000.0
        self.figures["long_messages"] = conversation.messages
        self._note_memory("opened")
        QTimer.singleShot(200, self._start_stream)

    def _start_stream(self) -> None:
        chat = self.window.chat
        chat.add(ViewMessage("user", "One more, please."))
        chat.add(ViewMessage("assistant", "", complete=False))
        self._stream_started = time.perf_counter()
        self._streaming = True
        self._last_beat, self._last_cpu = time.perf_counter(), time.thread_time()
        self.heartbeat.start()
        self.feeder.start()

    def _feed(self) -> None:
        """Hand the view what a model would have released by now: the UI's stalls do not slow the model."""
        elapsed = time.perf_counter() - self._stream_started
        due = min(len(self._reply), int(len(self._reply) * elapsed / STREAM_SECONDS))
        if due > self._fed:
            self.window.chat.append_text(self._reply[self._fed:due])
            self._fed = due
        if self._fed >= len(self._reply):
            self.feeder.stop()
            self.window.chat.replace_last(ViewMessage("assistant", self._reply))
            QTimer.singleShot(300, self._finish)  # the last render and a few heartbeats after it

    def _finish(self) -> None:
        self._streaming = False
        self.heartbeat.stop()
        self._note_memory("streamed")
        self.figures.update({"long_max_stall_ms": max(0.0, self.max_gap_ms - HEARTBEAT_MS),
                             "long_max_stall_cpu_ms": round(self.max_gap_cpu_ms, 2),
                             "long_heartbeats": self.beats, "long_rss_mb": self.figures["rss_mb"]["streamed"],
                             "long_rss_growth_mb": round(self.figures["rss_mb"]["streamed"]
                                                         - self.figures["rss_mb"]["before_open"], 1)})
        QTimer.singleShot(0, self.app.quit)


def main(max_tokens: int, out: Path, *, long_conversation: bool = False) -> int:
    """Run by ``ui.app.main`` for ``haven --bench-probe TOKENS FILE`` and ``haven --bench-probe-long FILE``."""
    spawned_at = float(os.environ.get(SPAWN_TIME_VARIABLE) or time.time())
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    probe = LongProbe(spawned_at) if long_conversation else Probe(spawned_at, max_tokens)
    figures = probe.run()
    out.write_text(json.dumps(figures), encoding="utf-8")
    return 0
