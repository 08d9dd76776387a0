"""The SQLite store: WAL, migrations, messages written when final, incomplete replies kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

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
    store.finish_reply(reply, ReplyUpdate("partial text", True, "end", 10, 3))
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
