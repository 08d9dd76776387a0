"""Haven ends cleanly when the system asks it to: SIGTERM, SIGINT and SIGHUP, and the end of the session.

The real ``haven`` in a subprocess gets a real SIGTERM: idle on the starter model (ready is two log lines,
``clean exit ready`` from ui/shutdown.py and the engine's ``loaded``), and mid-reply on a slow
``FakeEngine``. In this process, real signals sent to ourselves and the session-end slots stop a reply the
fake engine is writing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import SIGNAL, QTimer

from assistant.chat import StopReason
from assistant.engine import SamplingParams
from assistant.paths import AppPaths
from assistant.safety import PassThroughPolicy
from assistant.session import ChatSession
from assistant.settings import Settings, load_settings, save_settings
from assistant.store import ReplyUpdate, Store
from tests.fakes import FakeEngine
from ui.main_window import MainWindow
from ui.shutdown import CleanExit

REPO = Path(__file__).resolve().parents[2]
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals; Windows ends a GUI app otherwise")
PIECES = [f"word{i} " for i in range(400)]

# The real app (its main, window, signals and shutdown) on a slow fake engine, for the cases a real model
# makes slow or uncertain: a reply the model may end early, a load that may be over before the signal.
FAKE_HAVEN = """
import sys, time
from PySide6.QtCore import QTimer
import ui.app as app_module
from assistant.safety import PassThroughPolicy
from tests.ui.test_shutdown import PIECES, SlowEngine

class LoadedEngine(SlowEngine):
    def __init__(self):
        super().__init__(PIECES * 10)

    def load(self, path, options):
        time.sleep(LOAD_SECONDS)

    def close(self):
        print("ENGINE CLOSED", flush=True)

app_module.Engine = LoadedEngine
app_module.build_policy = lambda paths, settings, registry: PassThroughPolicy()
"""
MAIN = """
sys.exit(app_module.main(["haven"]))
"""
# Says WRITING once the reply shows on screen.
WRITE_A_LONG_REPLY = FAKE_HAVEN + """
LOAD_SECONDS = 0

class Writing(app_module.HavenApp):
    def __init__(self, app):
        super().__init__(app)
        self.sent = False
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.step)
        self.timer.start(20)

    def step(self):
        window = self.window
        if not self.sent and window.session is not None:
            window.input.setPlainText("Write a very long essay about mountains.")
            window.send()
            self.sent = True
        elif self.sent and window.turn is not None and window.chat.messages[-1].content.strip():
            self.timer.stop()
            print("WRITING " + window.conversation_id, flush=True)

app_module.HavenApp = Writing
""" + MAIN
LOAD_FOR_8_S = FAKE_HAVEN + "LOAD_SECONDS = 8\n" + MAIN


class SlowEngine(FakeEngine):
    """Writes one piece every 10 ms, so a reply is still being written when the test ends Haven."""

    def generate(self, messages, params, cancel=None) -> Generator:
        for item in super().generate(messages, params, cancel):
            if isinstance(item, str):
                time.sleep(0.01)
            yield item


# -- the real app in a subprocess ---------------------------------------------------------------------


def log_text(home: Path) -> str:
    log = AppPaths.from_environment({"HAVEN_HOME": str(home)}).log_file
    return log.read_text(encoding="utf-8") if log.exists() else ""


def start_haven(home: Path, code: str = MAIN) -> subprocess.Popen:
    """``ui.app.main`` as the ``haven`` launcher runs it (the log names its logger ``ui.app``)."""
    command = [sys.executable, "-c", "import sys\nimport ui.app as app_module\n" + code]
    env = dict(os.environ, HAVEN_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def wait_for_log(process: subprocess.Popen, home: Path, line: str, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        text = log_text(home)
        if line in text:
            return
        if "background task failed" in text:  # the model did not load: an error is on screen
            process.kill()
            pytest.fail("haven could not load the model:\n" + text[-3000:])
        if process.poll() is not None:
            pytest.fail(f"haven exited early ({process.returncode}): {process.communicate()[1][-3000:]}")
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"haven did not log {line!r} in time:\n" + log_text(home)[-3000:])


def terminate(process: subprocess.Popen, *then: signal.Signals) -> tuple[int, str, str]:
    """SIGTERM (and ``then``), then the exit; the timeout (not a stopwatch) is what fails a hang."""
    for signum in (signal.SIGTERM, *then):
        process.send_signal(signum)
    try:
        stdout, stderr = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("haven did not exit within 15 s of SIGTERM: " + process.communicate()[1][-3000:])
    return process.returncode, stdout, stderr


@pytest.fixture
def earlier_data(haven_home: Path) -> Iterator[tuple[Settings, str]]:
    """Settings and one finished conversation from an earlier run, which the signal must not disturb."""
    paths = AppPaths.from_environment().ensure()
    settings = Settings(user_instructions="Answer in one sentence.", context_length=2048)
    save_settings(paths.settings_file, settings)
    with Store(paths.database_file) as store:
        conversation = store.create_conversation("smollm2-135m-instruct", title="Earlier").id
        store.add_user_message(conversation, "Hello?")
        store.finish_reply(store.start_reply(conversation, "smollm2-135m-instruct"),
                           ReplyUpdate(content="Hello! How can I help?", complete=True,
                                       stop_reason=StopReason.END))
    yield settings, conversation


def assert_intact(home: Path, settings: Settings, conversation: str) -> None:
    paths = AppPaths.from_environment({"HAVEN_HOME": str(home)})
    loaded = load_settings(paths.settings_file)
    assert (loaded.settings, loaded.warnings) == (settings, ())
    with Store(paths.database_file) as store:
        assert store.integrity_ok()
        assert [(m.role, m.content, m.complete) for m in store.messages(conversation)] == [
            ("user", "Hello?", True), ("assistant", "Hello! How can I help?", True)]


@POSIX_ONLY
def test_sigterm_closes_the_idle_app_with_0_and_keeps_everything(haven_home: Path, earlier_data) -> None:
    settings, conversation = earlier_data
    process = start_haven(haven_home)
    wait_for_log(process, haven_home, "ui.app: ready: ")  # the window is up and the starter model loaded
    code, _, stderr = terminate(process)
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert_intact(haven_home, settings, conversation)
    log = log_text(haven_home)
    assert "shutting down on SIGTERM" in log and "shut down: the model and the conversation store are closed" in log
    assert log.index("shutting down on SIGTERM") < log.index("shut down: the model")


@POSIX_ONLY
def test_sigterm_then_sighup_mid_reply_keep_the_partial_reply_marked_incomplete(haven_home: Path,
                                                                                earlier_data) -> None:
    settings, conversation = earlier_data
    process = start_haven(haven_home, WRITE_A_LONG_REPLY)
    watchdog = threading.Timer(180, process.kill)  # a hung app fails the test instead of the run
    watchdog.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the reply shows (or the app exits: an empty line)
        assert line.startswith("WRITING "), process.communicate(timeout=30)[1][-3000:]
        code, stdout, stderr = terminate(process, signal.SIGHUP)  # logind sends SIGHUP right after SIGTERM at logout
    finally:
        watchdog.cancel()
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr and stdout == "ENGINE CLOSED\n"
    assert_intact(haven_home, settings, conversation)
    with Store(AppPaths.from_environment().database_file) as store:
        question, reply = store.messages(line.split()[1])
    assert question.content == "Write a very long essay about mountains."
    # "cancelled": stopped and stored by Haven; a killed process leaves "interrupted" (see Store.start_reply).
    assert (reply.complete, reply.stop_reason) == (False, "cancelled")
    assert reply.content and "".join(PIECES * 10).startswith(reply.content)
    log = log_text(haven_home)
    # Both signals are pending at once; Python runs pending handlers in signal-number order, so SIGHUP (1) may
    # be handled before SIGTERM (15). Either way one ends Haven and the other is ignored.
    assert ("shutting down on SIGTERM" in log and "SIGHUP received while Haven is already ending; ignored" in log) or (
        "shutting down on SIGHUP" in log and "SIGTERM received while Haven is already ending; ignored" in log), log
    assert "shut down: the model and the conversation store are closed" in log


@POSIX_ONLY
def test_sigterm_while_the_model_loads_waits_for_the_load_and_exits_0(haven_home: Path, earlier_data) -> None:
    """A load cannot be interrupted: Haven lets it end, rather than Qt aborting on a running thread."""
    settings, conversation = earlier_data
    process = start_haven(haven_home, LOAD_FOR_8_S)
    wait_for_log(process, haven_home, "ui.shutdown: clean exit ready: ")
    code, stdout, stderr = terminate(process)
    assert code == 0, stderr[-3000:]
    assert "QThread: Destroyed while thread" not in stderr and stdout == "ENGINE CLOSED\n"
    assert_intact(haven_home, settings, conversation)
    log = log_text(haven_home)
    assert "ui.app: ready: " not in log, "the signal came while the model was loading"
    assert "shutting down on SIGTERM" in log and "waiting for a background task to end" in log


# -- in this process, with a slow fake engine ----------------------------------------------------------


@pytest.fixture
def writing(qtbot, haven_home: Path) -> Iterator[tuple[MainWindow, Store, SlowEngine]]:
    """The window, halfway through a reply that would take 4 s."""
    store = Store(AppPaths.from_environment().ensure().database_file)
    engine = SlowEngine(PIECES)
    window = MainWindow(store)
    qtbot.addWidget(window)
    window.attach_session(ChatSession(engine, store, PassThroughPolicy(), model_id="fake",
                                      sampling=SamplingParams(max_tokens=1000)), "fake")
    window.show()
    window.input.setPlainText("Tell me a long story.")
    window.send()
    qtbot.waitUntil(lambda: bool(window.chat.messages[-1].content), timeout=10_000)
    yield window, store, engine
    window.close()
    store.close()


def assert_stopped_and_stored(window: MainWindow, store: Store, engine: SlowEngine) -> None:
    assert window.turn_thread is None or window.turn_thread.isFinished()
    [question, reply] = store.messages(window.conversation_id)
    assert question.content == "Tell me a long story."
    assert (reply.complete, reply.stop_reason) == (False, "cancelled")
    assert reply.content and "".join(PIECES).startswith(reply.content) and engine.produced < len(PIECES)


@POSIX_ONLY
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_mid_reply_stops_it_stores_it_closes_the_window_and_exits_0(qtbot, qapp, writing,
                                                                             signum) -> None:
    window, store, engine = writing
    before = signal.getsignal(signum)
    shut_down: list[bool] = []  # whether the window was still visible when shutdown ran
    clean_exit = CleanExit(qapp, window, lambda: shut_down.append(window.isVisible()))
    # Closing the last window posts a Quit event that would outlive this exec() and end the next test's waits.
    qapp.setQuitOnLastWindowClosed(False)
    watchdog = QTimer()
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(lambda: qapp.exit(3))  # a signal that never arrives fails the test
    try:
        QTimer.singleShot(0, lambda: os.kill(os.getpid(), signum))
        watchdog.start(30_000)
        code = qapp.exec()
    finally:
        watchdog.stop()
        clean_exit.close()
        qapp.setQuitOnLastWindowClosed(True)
    assert code == 0
    assert shut_down == [False], "shutdown ran once, after the window had closed"
    assert_stopped_and_stored(window, store, engine)
    assert signal.getsignal(signum) == before, "the earlier handler is back"


def test_the_session_ending_stores_the_reply_and_leaves_the_window_open(qtbot, qapp, writing) -> None:
    """commitDataRequest (WM_QUERYENDSESSION on Windows): the logout may still be cancelled."""
    window, store, engine = writing
    connected = qapp.receivers(SIGNAL("commitDataRequest(QSessionManager&)"))
    clean_exit = CleanExit(qapp, window, lambda: None, signals=[])
    try:
        assert qapp.receivers(SIGNAL("commitDataRequest(QSessionManager&)")) == connected + 1
        clean_exit.session_ending()  # a QSessionManager cannot be made outside Qt: the slot is called
        assert_stopped_and_stored(window, store, engine)
        assert window.isVisible()
        qtbot.waitUntil(lambda: window.turn is None, timeout=5_000)  # the window learns the turn stopped
        assert not window.chat.messages[-1].complete
    finally:
        clean_exit.close()


def test_about_to_quit_while_the_loop_runs_stops_the_reply_and_shuts_down(qtbot, qapp, writing) -> None:
    """Windows at logoff: WM_ENDSESSION emits aboutToQuit inside the loop, and the process ends right after."""
    window, store, engine = writing
    shut_down: list[bool] = []
    clean_exit = CleanExit(qapp, window, lambda: shut_down.append(window.isVisible()), signals=[])
    try:
        qapp.aboutToQuit.emit()
        assert shut_down == [False]
        assert_stopped_and_stored(window, store, engine)
    finally:
        clean_exit.close()


@POSIX_ONLY
def test_other_signals_with_a_python_handler_do_not_end_haven(qtbot, qapp, writing) -> None:
    """The wake-up descriptor hears every signal that has a Python handler, not only the three."""
    window, _, _ = writing
    heard: list[int] = []
    before = signal.signal(signal.SIGUSR1, lambda signum, frame: heard.append(signum))
    clean_exit = CleanExit(qapp, window, lambda: None)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        qtbot.waitUntil(lambda: heard == [signal.SIGUSR1], timeout=5_000)
        qtbot.wait(100)  # time for the notifier to deliver the byte
        assert window.isVisible() and window.turn is not None, "still writing"
    finally:
        clean_exit.close()
        signal.signal(signal.SIGUSR1, before)
