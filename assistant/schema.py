"""The conversation database's shape: the append-only list of named migrations, and how a row becomes a
:class:`~assistant.records.StoredMessage`. :class:`~assistant.store.Store` applies and uses them.
"""

from __future__ import annotations

import logging
import sqlite3

from assistant.chat import StopReason
from assistant.records import StoredMessage

__all__ = ["MIGRATIONS", "message_from_row"]

log = logging.getLogger(__name__)

# Append only: never edit or reorder a step that has shipped; add a new one.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_conversations_and_messages",
        """
        CREATE TABLE conversations (
            id           TEXT PRIMARY KEY,
            title        TEXT NOT NULL,
            model        TEXT NOT NULL,
            instructions TEXT NOT NULL DEFAULT '',
            created      TEXT NOT NULL,
            updated      TEXT NOT NULL
        );
        CREATE TABLE messages (
            id                INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id   TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role              TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content           TEXT NOT NULL,
            created           TEXT NOT NULL,
            model             TEXT,
            complete          INTEGER NOT NULL DEFAULT 1,
            stop_reason       TEXT,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            ttft_ms           REAL,
            tokens_per_second REAL,
            blocked           INTEGER NOT NULL DEFAULT 0,
            stage             TEXT,
            category          TEXT
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE INDEX conversations_by_update ON conversations(updated);
        """,
    ),
    (
        # Messages form a tree: each names its parent; a conversation remembers the end of the branch on
        # screen. What was stored before becomes one chain, in the order it was written.
        "0002_message_tree",
        """
        ALTER TABLE messages ADD COLUMN parent_id INTEGER;
        ALTER TABLE messages ADD COLUMN active INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE conversations ADD COLUMN current_id INTEGER;
        UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages p
            WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id);
        UPDATE messages SET active = id;
        UPDATE conversations SET current_id = (SELECT MAX(m.id) FROM messages m
            WHERE m.conversation_id = conversations.id);
        CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id, id);
        CREATE INDEX messages_by_activity ON messages(conversation_id, active);
        """,
    ),
    (
        # A reasoning model's thinking text and how long it took; never sent back to a model.
        "0003_reasoning",
        """
        ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT '';
        ALTER TABLE messages ADD COLUMN reasoning_ms REAL;
        """,
    ),
)

def message_from_row(row: sqlite3.Row, sibling_index: int = 1, sibling_count: int = 1) -> StoredMessage:
    """A ``messages`` row as a value; the tree gives its place among its siblings."""
    return StoredMessage(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"],
        created=row["created"], model=row["model"], complete=bool(row["complete"]),
        stop_reason=_stop_reason(row["stop_reason"]), prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"], blocked=bool(row["blocked"]), stage=row["stage"],
        category=row["category"], parent_id=row["parent_id"],
        sibling_index=sibling_index, sibling_count=sibling_count,
        reasoning=row["reasoning"], reasoning_ms=row["reasoning_ms"],
    )


def _stop_reason(stored: str | None) -> StopReason | None:
    """The column's value as the enum. A value this version does not know (written by a newer Haven) reads
    as None rather than making the whole conversation unreadable."""
    if stored is None:
        return None
    try:
        return StopReason(stored)
    except ValueError:
        log.warning("unknown stop reason %r in the conversation database", stored)
        return None
