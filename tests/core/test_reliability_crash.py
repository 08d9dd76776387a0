"""Crash safety: the process killed mid-reply, and the disk filling up mid-conversation.

(The process killed mid-download: tests/core/test_models_cli.py::
test_download_killed_half_way_resumes_in_a_second_run.)
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from assistant.chat import StopReason
from assistant.errors import StoreError
from assistant.paths import AppPaths
from assistant.safety import PassThroughPolicy
from assistant.session import ChatSession, TurnResult
from assistant.store import ReplyUpdate, Store
from tests.fakes import FakeEngine

LONG_PROMPT = "Write a very long story about the sea."


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=180)


def latest_reply(db: Path) -> tuple[str, str, int] | None:
    """The newest assistant row, read the way another process would, without disturbing the writer."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as reader:
            return reader.execute("SELECT conversation_id, content, complete FROM messages WHERE role = 'assistant'"
                                  " ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        return None  # the writer has not opened the database yet


def exported(conversation: str) -> list[dict]:
    result = cli("history", "export", conversation, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["conversations"][0]["messages"]


def kill_mid_reply(db: Path) -> tuple[str, str]:
    """Start a long reply and SIGKILL the process once part of it is stored. A reply that ends before that
    (the model decides) is simply another finished turn: try again with another seed."""
    for seed in range(2, 8):
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "chat", "--new", "--seed", str(seed), "--temperature", "0.8",
             "--max-tokens", "2000", LONG_PROMPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            row = latest_reply(db)
            if row is not None and row[2] == 0 and row[1].strip():
                process.kill()  # SIGKILL (TerminateProcess on Windows): no cleanup, no "save on exit"
                process.wait(10)
                assert process.returncode == (-signal.SIGKILL if os.name == "posix" else 1)
                return row[0], row[1]  # the reply is stored, incomplete, with the text shown so far
            time.sleep(0.05)
        assert process.wait(120) in (0, 3), process.communicate()[1].decode()
    raise AssertionError("no reply was long enough to be killed half way")


def test_killed_mid_reply_keeps_every_message_and_the_partial_reply(haven_home: Path) -> None:
    db = AppPaths.from_environment().ensure().database_file
    with Store(db) as store:  # an earlier, finished turn
        earlier = store.create_conversation("smollm2-135m-instruct").id
        store.add_user_message(earlier, "Name three colours.")
        reply_id = store.start_reply(earlier, "smollm2-135m-instruct")
        store.finish_reply(reply_id, ReplyUpdate(content="Red, green and blue.", complete=True,
                                                 stop_reason=StopReason.END, prompt_tokens=20, completion_tokens=6))
        finished = {c.id: store.messages(c.id) for c in store.list_conversations()}

    conversation, seen = kill_mid_reply(db)

    with closing(sqlite3.connect(db)) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with Store(db) as store:
        assert {c: store.messages(c) for c in finished} == finished, "every finished message is there, unchanged"
    user, reply = exported(conversation)
    assert (user["role"], user["content"], user["complete"]) == ("user", LONG_PROMPT, True)
    assert reply["role"] == "assistant" and reply["complete"] is False
    assert reply["content"].startswith(seen) and not reply["blocked"]

    # Haven carries on: the conversation continues, the interrupted reply stays as it was.
    again = cli("chat", "--conversation", conversation, "--max-tokens", "4", "Thanks.")
    assert again.returncode in (0, 3), again.stderr  # 3: the safety filter stopped the reply, also a turn
    with Store(db) as store:
        after = store.messages(conversation)
    assert len(after) == 4
    assert (after[1].content, after[1].complete, after[1].stop_reason) == (reply["content"], False, "interrupted")


def fill_the_disk(store: Store) -> None:
    """SQLite's own disk-full fault: the file may not grow past the pages it has now."""
    with store._lock:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_disk_that_fills_up_mid_conversation_is_a_sentence_and_loses_nothing_saved(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = Store(path)
    session = ChatSession(FakeEngine(), store, PassThroughPolicy(), model_id="fake")
    result = list(session.send("Hello"))[-1]
    assert isinstance(result, TurnResult) and result.complete
    before = store.messages(result.conversation_id)
    fill_the_disk(store)
    with pytest.raises(StoreError, match="Check free disk space; nothing already saved was lost"):
        list(session.send("A message that no longer fits. " * 400, result.conversation_id))
    with pytest.raises(StoreError, match="free disk space"):
        store.finish_reply(before[1].id,
                           ReplyUpdate(content="x" * 500_000, complete=True, stop_reason=StopReason.END))
    store.close()
    with Store(path) as reopened:
        assert reopened.integrity_ok()
        assert reopened.messages(result.conversation_id) == before
