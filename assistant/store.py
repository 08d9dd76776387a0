"""Conversation storage: one SQLite file in WAL mode, migrated by an append-only list of named steps.

Every message is written the moment it is final. A reply is created as soon as generation starts
(``complete = 0``), its text is saved as it grows, and it is marked complete only when the turn ends
normally, so a reply cut short by Stop or by a crash is kept and shows as incomplete. The
``stop_reason`` column holds :class:`~assistant.chat.StopReason` values; a reply still being written (or
left so by a crash) reads ``interrupted``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from assistant.chat import StopReason
from assistant.errors import ConversationNotFoundError, StoreError

__all__ = ["Conversation", "ConversationSummary", "ReplyUpdate", "Store", "StoredMessage"]

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
)

TITLE_LENGTH = 60


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversation:
    id: str
    title: str
    model: str
    instructions: str
    created: str
    updated: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationSummary:
    id: str
    title: str
    model: str
    created: str
    updated: str
    messages: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    id: int
    conversation_id: str
    role: str
    content: str
    created: str
    model: str | None
    complete: bool
    stop_reason: StopReason | None  # None for the user's messages
    prompt_tokens: int | None
    completion_tokens: int | None
    blocked: bool
    stage: str | None
    category: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyUpdate:
    """The final state of a reply, written when its turn ends."""

    content: str
    complete: bool
    stop_reason: StopReason
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    blocked: bool = False
    stage: str | None = None
    category: str | None = None


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class Store:
    """Thread-safe access to the conversation database (one connection, serialised by a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a message acknowledged as stored survives a power cut, not only a crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"Haven cannot open its conversation database {path} ({exc}). "
                "If the disk is full or the folder is read-only, fix that and start Haven again."
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(
                    f"Haven could not save to its conversation database ({exc}). "
                    "Check free disk space; nothing already saved was lost."
                ) from exc

    def _migrate(self) -> None:
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
            done = {row["name"] for row in db.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO migrations (name, applied) VALUES (?, ?)", (name, now_iso()))

    def applied_migrations(self) -> list[str]:
        with self._lock:
            return [r["name"] for r in self._db.execute("SELECT name FROM migrations ORDER BY name")]

    # -- conversations -------------------------------------------------------------------------

    def create_conversation(self, model: str, title: str = "", instructions: str = "") -> Conversation:
        stamp = now_iso()
        conversation = Conversation(id=uuid.uuid4().hex[:12], title=title, model=model, instructions=instructions,
                                    created=stamp, updated=stamp)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO conversations (id, title, model, instructions, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation.id, title, model, instructions, stamp, stamp),
            )
        return conversation

    def conversation(self, conversation_id: str) -> Conversation:
        with self._lock:
            row = self._db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise ConversationNotFoundError(
                f"There is no conversation with the id {conversation_id!r}. "
                "`haven-cli history list` shows the ids you have."
            )
        return Conversation(**{k: row[k] for k in row.keys()})  # noqa: SIM118 (sqlite3.Row iterates values)

    def list_conversations(self) -> list[ConversationSummary]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS messages"
                " FROM conversations c ORDER BY c.updated DESC, c.id"
            ).fetchall()
        return [
            ConversationSummary(id=r["id"], title=r["title"], model=r["model"], created=r["created"],
                                updated=r["updated"], messages=r["messages"])
            for r in rows
        ]

    def update_conversation(
        self, conversation_id: str, *, title: str | None = None, model: str | None = None,
        instructions: str | None = None,
    ) -> None:
        self.conversation(conversation_id)
        changes = {"title": title, "model": model, "instructions": instructions}
        with self._transaction() as db:
            for column, value in changes.items():
                if value is not None:
                    db.execute(f"UPDATE conversations SET {column} = ? WHERE id = ?", (value, conversation_id))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now_iso(), conversation_id))

    def delete_messages_from(self, conversation_id: str, message_id: int) -> None:
        """Remove a message and everything after it (regenerate, edit and resend)."""
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conversation_id, message_id))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now_iso(), conversation_id))

    def search(self, text: str) -> list[str]:
        """Ids of conversations whose title or any message contains ``text`` (case-insensitive), newest first."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id FROM conversations c WHERE c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m"
                " WHERE m.conversation_id = c.id AND m.content LIKE ? ESCAPE '\\') ORDER BY c.updated DESC",
                (pattern, pattern),
            ).fetchall()
        return [r["id"] for r in rows]

    def delete_conversation(self, conversation_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- messages ------------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
            ).fetchall()
        return [_message_from_row(r) for r in rows]

    def add_user_message(self, conversation_id: str, content: str, *, model: str | None = None) -> int:
        """Store the user's message as soon as it is sent; the first one also names the conversation."""
        stamp = now_iso()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, created, model, complete)"
                " VALUES (?, 'user', ?, ?, ?, 1)",
                (conversation_id, content, stamp, model),
            )
            db.execute(
                "UPDATE conversations SET updated = ?,"
                " title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                (stamp, title_from(content), conversation_id),
            )
        return int(cursor.lastrowid or 0)

    def mark_user_message_blocked(self, message_id: int, stage: str, category: str | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET blocked = 1, stage = ?, category = ? WHERE id = ?",
                (stage, category, message_id),
            )

    def start_reply(self, conversation_id: str, model: str) -> int:
        """Create the reply row before the first token, marked incomplete until :meth:`finish_reply`."""
        stamp = now_iso()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, created, model, complete, stop_reason)"
                " VALUES (?, 'assistant', '', ?, ?, 0, ?)",
                (conversation_id, stamp, model, StopReason.INTERRUPTED.value),
            )
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (stamp, conversation_id))
        return int(cursor.lastrowid or 0)

    def save_partial_reply(self, message_id: int, content: str) -> None:
        """Persist the text shown so far, so a crash keeps it."""
        with self._transaction() as db:
            db.execute("UPDATE messages SET content = ? WHERE id = ? AND complete = 0", (content, message_id))

    def finish_reply(self, message_id: int, update: ReplyUpdate) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET content = ?, complete = ?, stop_reason = ?, prompt_tokens = ?,"
                " completion_tokens = ?, ttft_ms = ?, tokens_per_second = ?, blocked = ?, stage = ?,"
                " category = ? WHERE id = ?",
                (
                    update.content, int(update.complete), update.stop_reason.value, update.prompt_tokens,
                    update.completion_tokens, update.ttft_ms, update.tokens_per_second,
                    int(update.blocked), update.stage, update.category, message_id,
                ),
            )

    def add_notice(self, conversation_id: str, content: str, *, stage: str, category: str | None) -> int:
        """Store the safety notice that stands in for a reply that was never generated."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, created, complete, stop_reason,"
                " blocked, stage, category) VALUES (?, 'assistant', ?, ?, 1, ?, 1, ?, ?)",
                (conversation_id, content, now_iso(), StopReason.BLOCKED.value, stage, category),
            )
        return int(cursor.lastrowid or 0)

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


def _message_from_row(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"],
        created=row["created"], model=row["model"], complete=bool(row["complete"]),
        stop_reason=_stop_reason(row["stop_reason"]), prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"], blocked=bool(row["blocked"]), stage=row["stage"],
        category=row["category"],
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


def visible_history(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The messages a model may see again: blocked turns and empty replies never go back into a prompt."""
    return [m for m in messages if not m.blocked and m.content.strip()]
