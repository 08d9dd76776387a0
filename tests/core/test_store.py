"""The SQLite store: WAL, migrations, messages written when final, incomplete replies kept."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.chat import StopReason
from assistant.errors import ConversationNotFoundError, StoreError
from assistant.store import MIGRATIONS, ReplyUpdate, Store


def test_wal_mode_and_migrations_recorded(tmp_path: Path) -> None:
    with Store(tmp_path / "c.sqlite3") as store:
        assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
    db = sqlite3.connect(tmp_path / "c.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Store(tmp_path / "c.sqlite3") as store:  # reopening applies nothing twice
        assert len(store.applied_migrations()) == len(MIGRATIONS)


def test_messages_are_visible_to_another_connection_the_moment_they_are_final(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = Store(path)
    conversation = store.create_conversation("m")
    store.add_user_message(conversation.id, "hello there")
    reply = store.start_reply(conversation.id, "m")
    store.save_partial_reply(reply, "partial te")
    # A second process (here: a second connection) sees both rows before anything is closed.
    other = sqlite3.connect(path)
    rows = other.execute("SELECT role, content, complete FROM messages ORDER BY id").fetchall()
    assert rows == [("user", "hello there", 1), ("assistant", "partial te", 0)]
    store.finish_reply(reply, ReplyUpdate(content="partial text", complete=True, stop_reason=StopReason.END,
                                          prompt_tokens=10, completion_tokens=3))
    assert other.execute("SELECT content, complete FROM messages WHERE id = ?", (reply,)).fetchone() == (
        "partial text", 1)
    store.close()


def test_a_reply_left_unfinished_by_a_crash_is_kept_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = Store(path)
    conversation = store.create_conversation("m")
    reply = store.start_reply(conversation.id, "m")
    store.save_partial_reply(reply, "half a sent")
    del store  # no close, no "save on exit"
    with Store(path) as reopened:
        [message] = reopened.messages(conversation.id)
        assert (message.content, message.complete, message.stop_reason) == ("half a sent", False, "interrupted")
        assert reopened.integrity_ok()


def test_titles_listing_and_missing_conversation(tmp_path: Path) -> None:
    with Store(tmp_path / "c.sqlite3") as store:
        a = store.create_conversation("m")
        store.add_user_message(a.id, "  What is the capital of France and why is it so famous in art history?  ")
        b = store.create_conversation("m")
        store.add_user_message(b.id, "second")
        listed = store.list_conversations()
        assert [c.id for c in listed] == [b.id, a.id]
        assert listed[1].title.startswith("What is the capital of France") and len(listed[1].title) <= 60
        assert listed[1].messages == 1
        with pytest.raises(ConversationNotFoundError, match="history list"):
            store.conversation("nope")


def test_unopenable_database_is_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(path)


def test_stop_reasons_are_stored_as_the_same_strings_and_read_back_as_the_enum(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    with Store(path) as store:
        conversation = store.create_conversation("m").id
        store.add_user_message(conversation, "hello")
        writing = store.start_reply(conversation, "m")
        for reason in (StopReason.END, StopReason.LENGTH, StopReason.CANCELLED, StopReason.ERROR):
            reply = store.start_reply(conversation, "m")
            store.finish_reply(reply, ReplyUpdate(content="x", complete=False, stop_reason=reason))
        store.add_notice(conversation, "Blocked.", stage="input", category="S9")
        read = [m.stop_reason for m in store.messages(conversation)]
        assert store.messages(conversation)[1].id == writing
    # The column keeps the values earlier versions wrote, so their databases read the same.
    raw = [r[0] for r in sqlite3.connect(path).execute("SELECT stop_reason FROM messages ORDER BY id")]
    assert raw == [None, "interrupted", "end", "length", "cancelled", "error", "blocked"]
    assert read == [None, StopReason.INTERRUPTED, StopReason.END, StopReason.LENGTH, StopReason.CANCELLED,
                    StopReason.ERROR, StopReason.BLOCKED]
    assert all(type(r) is StopReason for r in read[1:])


def test_a_stop_reason_this_version_does_not_know_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    with Store(path) as store:
        conversation = store.create_conversation("m").id
        reply = store.start_reply(conversation, "m")
    db = sqlite3.connect(path)
    db.execute("UPDATE messages SET stop_reason = 'from-a-newer-haven' WHERE id = ?", (reply,))
    db.commit()
    with Store(path) as store:
        [message] = store.messages(conversation)
        assert (message.id, message.stop_reason) == (reply, None)


def test_the_store_loads_no_llama_cpp() -> None:
    code = "import sys, assistant.store; assert 'llama_cpp' not in sys.modules, 'assistant.store loaded llama_cpp'"
    subprocess.run([sys.executable, "-c", code], check=True)
