"""The desktop app under faults: a 1 MB paste, a broken model, Stop pressed again and again, a model switch
mid-reply, the window closed mid-reply (the real ``main`` in a subprocess, which also shows the app never
touches the network), and a data folder it cannot use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from assistant.engine import SamplingParams
from assistant.paths import AppPaths
from assistant.store import Store

ONE_MB = ("The quick brown fox jumps over the lazy dog. " * 25_000)[:1_000_000]
REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "tests" / "offline_shim"


def errors_shown(window) -> list[str]:
    return [box.text() for box in window.findChildren(QMessageBox) if box.isVisible()]


def close_errors(window) -> None:
    for box in window.findChildren(QMessageBox):
        box.close()


def chat(qtbot, window, text: str, max_tokens: int = 16) -> None:
    window.session.sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=1)
    window.input.setPlainText(text)
    window.send()
    qtbot.waitUntil(lambda: window.turn is None, timeout=120_000)


def test_a_1_mb_paste_is_refused_with_a_sentence_and_stays_in_the_box(qtbot, haven) -> None:
    window = haven.window
    window.input.setPlainText(ONE_MB)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert window.turn is not None, "the UI thread does not wait: the turn's thread refuses it"
    qtbot.waitUntil(lambda: window.turn is None, timeout=120_000)  # the limit only detects a hang
    [error] = errors_shown(window)
    assert "too long for this model" in error
    assert window.input.toPlainText() == ONE_MB, "the text is back in the message box"
    assert window.chat.messages == [] and haven.store.list_conversations() == []
    close_errors(window)
    window.input.clear()
    chat(qtbot, window, "Say hi.")
    assert [m.role for m in haven.store.messages(window.conversation_id)] == ["user", "assistant"]


def test_a_broken_model_file_is_a_sentence_and_the_app_keeps_running(qtbot, haven, tmp_path: Path,
                                                                     starter_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(starter_path.read_bytes()[: 20 * 1024 * 1024])  # a whole header, half the weights
    haven.registry.import_file(cut, "cut")
    haven.set_default_model("cut")
    qtbot.waitUntil(lambda: bool(errors_shown(haven.window)), timeout=60_000)
    [error] = errors_shown(haven.window)
    assert "could not load cut.gguf" in error and haven.window.session is None
    close_errors(haven.window)
    haven.set_default_model("smollm2-135m-instruct")
    qtbot.waitUntil(lambda: haven.window.session is not None, timeout=60_000)
    chat(qtbot, haven.window, "Say hi.")
    assert haven.store.messages(haven.window.conversation_id)[-1].complete


def test_stop_pressed_again_and_again_stops_once_and_loses_nothing(qtbot, haven) -> None:
    window = haven.window
    qtbot.keyClick(window, Qt.Key.Key_Escape)  # nothing to stop: nothing happens
    window.stop()
    window.session.sampling = SamplingParams(temperature=0.8, max_tokens=2000, seed=4)
    window.input.setPlainText("Write a very long story about the sea.")
    window.send()
    qtbot.waitUntil(lambda: bool(window.chat.messages[-1].content.strip()), timeout=120_000)
    conversation = window.conversation_id
    for _ in range(5):
        qtbot.keyClick(window, Qt.Key.Key_Escape)
        qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
        window.stop()
    qtbot.waitUntil(lambda: window.turn is None, timeout=60_000)
    for _ in range(3):
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    stored = haven.store.messages(conversation)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert (stored[1].complete, stored[1].stop_reason) == (False, "cancelled")
    assert stored[1].content == window.chat.messages[-1].content and stored[1].content.strip()
    assert errors_shown(window) == []
    chat(qtbot, window, "Thanks.", 8)  # the next turn is not stopped by the earlier presses
    stored = haven.store.messages(conversation)
    assert len(stored) == 4 and stored[1].content == window.chat.messages[1].content
    assert stored[3].complete and stored[3].stop_reason in ("end", "length", "blocked")


def test_switching_models_mid_reply_waits_and_the_conversation_carries_on(qtbot, haven, tmp_path: Path,
                                                                          starter_path: Path) -> None:
    copy = tmp_path / "other.gguf"
    copy.write_bytes(starter_path.read_bytes())
    haven.registry.import_file(copy, "other-model")
    window = haven.window
    window.session.sampling = SamplingParams(temperature=0.0, max_tokens=40, seed=1)
    window.input.setPlainText("Describe the sea in three sentences.")
    window.send()
    session = window.session
    qtbot.waitUntil(lambda: bool(window.chat.messages[-1].content.strip()), timeout=120_000)
    conversation = window.conversation_id
    haven.set_default_model("other-model")  # mid-reply: the reply is not cut off, the model not swapped
    haven.switch_model("other-model")
    assert window.session is session and haven.engine.model.path == starter_path
    qtbot.waitUntil(lambda: window.turn is None, timeout=120_000)
    reply = haven.store.messages(conversation)[-1]
    assert reply.complete and reply.model == "smollm2-135m-instruct" and reply.content.strip()

    haven.set_default_model("other-model")  # now, between turns, it switches
    qtbot.waitUntil(lambda: window.session is not None and window.session.model_id == "other-model",
                    timeout=60_000)
    assert window.conversation_id == conversation
    chat(qtbot, window, "And in one word?", 8)
    stored = haven.store.messages(conversation)
    assert [m.role for m in stored] == ["user", "assistant"] * 2 and stored[1] == reply
    assert [m.model for m in stored if m.role == "assistant"] == ["smollm2-135m-instruct", "other-model"]


# Hostile model output (no resource loads, no HTML, links only on click): tests/ui/test_transcript_safety.py.


def test_chatting_while_a_download_runs(qtbot, haven, tmp_path: Path) -> None:
    from assistant.models.download import DownloadSpec, DownloadState
    from tests.gguf_writer import write_gguf
    from tests.hub_server import FakeHub

    hub = FakeHub()
    hub.add("someone/tiny-GGUF", "tiny.gguf", write_gguf(tmp_path / "tiny.gguf", tensor_bytes=2 * 1024**2).read_bytes())
    hub.switches.seconds_per_chunk = 0.05
    url = hub.start()
    try:
        job = haven.downloads.submit(DownloadSpec("tiny", "someone/tiny-GGUF", "tiny.gguf", endpoint=url))
        qtbot.waitUntil(lambda: haven.downloads.jobs()[0].downloaded > 0, timeout=20_000)
        before = haven.downloads.jobs()[0].downloaded
        chat(qtbot, haven.window, "Name three colours.", 24)
        during = haven.downloads.jobs()[0]
        assert during.downloaded > before or during.state is DownloadState.COMPLETED, "the download went on"
        assert haven.store.messages(haven.window.conversation_id)[-1].complete
        assert haven.downloads.wait(job, 30).state is DownloadState.COMPLETED
        assert haven.registry.find("tiny") is not None
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def closed_mid_reply(tmp_path_factory) -> dict:
    """The real app in its own process, offline: a full turn, then the window closed mid-reply."""
    folder = tmp_path_factory.mktemp("app-run")
    env = dict(os.environ, HAVEN_HOME=str(folder / "home"), QT_QPA_PLATFORM="offscreen",
               HAVEN_TEST_NETWORK_LOG=str(folder / "network.jsonl"),
               HAVEN_TEST_PROCESS_STATE=str(folder / "state.json"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(SHIM), str(REPO), os.environ.get("PYTHONPATH")])))
    for name in ("HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_OFFLINE"):
        env.pop(name, None)
    process = subprocess.Popen([sys.executable, "-m", "tests.ui.app_driver"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    watchdog = threading.Timer(300, process.kill)  # a hung app fails the test instead of the run
    watchdog.start()
    lines: dict[str, dict] = {}
    assert process.stdout is not None
    for line in process.stdout:  # blocks until the driver speaks (or exits)
        word, _, payload = line.partition(" ")
        lines[word] = json.loads(payload)
        if word == "CLOSING":
            closing = time.monotonic()
            break
    else:
        watchdog.cancel()
        pytest.fail("the app never got to close: " + process.communicate(timeout=30)[1][-3000:])
    try:
        process.wait(timeout=30)
    finally:
        process.kill()
        watchdog.cancel()
    exit_seconds = time.monotonic() - closing
    network = folder / "network.jsonl"
    return {"exit_seconds": exit_seconds, "returncode": process.returncode, "stderr": process.stderr.read(),
            "lines": lines, "home": folder / "home", "attempts": network.read_text() if network.exists() else "",
            "state": json.loads((folder / "state.json").read_text())}


def test_closing_the_window_mid_reply_exits_within_2_s_and_keeps_everything(closed_mid_reply: dict) -> None:
    run = closed_mid_reply
    assert run["returncode"] == 0, run["stderr"][-3000:]
    # Stop is checked between tokens: the token llama.cpp is computing is finished first. On a quiet machine
    # that is a few milliseconds; on a crowded one (2 cores shared by several runs) it can take seconds.
    allowance = 2.0 + 2 * run["lines"]["CLOSING"]["slowest_step"]
    assert run["exit_seconds"] < allowance, f"the process took {run['exit_seconds']:.2f} s to exit"
    assert "Traceback" not in run["stderr"]
    database = AppPaths.from_environment({"HAVEN_HOME": str(run["home"])}).database_file
    with Store(database) as store:
        assert store.integrity_ok()
        _, first = store.messages(run["lines"]["FIRST"]["conversation"])
        question, interrupted = store.messages(run["lines"]["CLOSING"]["conversation"])
    assert first.complete and first.content == run["lines"]["FIRST"]["content"]
    assert question.content == "Write a very long story about the sea."
    assert not interrupted.complete and interrupted.content.startswith(run["lines"]["CLOSING"]["shown"])
    assert interrupted.content.strip()


def test_the_desktop_app_never_touches_the_network(closed_mid_reply: dict) -> None:
    run = closed_mid_reply
    assert run["state"]["shim_loaded"] is True
    assert run["attempts"] == "", "the desktop app tried to connect:\n" + run["attempts"]
    state = run["state"]  # the app switched the hub's telemetry off itself, before the hub could be imported
    assert state["environment"] == "1" and (not state["huggingface_hub_imported"]
                                            or state["hub_telemetry_disabled"] is True), state


def test_a_data_folder_it_cannot_use_is_a_sentence_at_start(tmp_path: Path) -> None:
    blocked = tmp_path / "home"
    blocked.write_text("a file where Haven's folder should be")
    code = ("import sys; from PySide6.QtWidgets import QMessageBox; import ui.app as a;"
            "QMessageBox.critical = lambda parent, title, text: print('DIALOG', title, text, flush=True);"
            "sys.exit(a.main(['haven']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                            env=dict(os.environ, HAVEN_HOME=str(blocked), QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("DIALOG Haven Haven cannot create its folder")
    assert "Traceback" not in result.stderr
    assert blocked.read_text() == "a file where Haven's folder should be"
