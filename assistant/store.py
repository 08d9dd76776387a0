"""Conversation storage: one SQLite file in WAL mode, migrated by an append-only list of named steps.

Every message is written the moment it is final. A reply is created as soon as generation starts
(``complete = 0``), its text is saved as it grows, and it is marked complete only when the turn ends
normally, so a reply cut short by Stop or by a crash is kept and shows as incomplete. The
``stop_reason`` column holds :class:`~assistant.chat.StopReason` values; a reply still being written (or
left so by a crash) reads ``interrupted``.

**Branches.** A conversation's messages form a tree: each message names its parent (``parent_id``), and
an edited message or a regenerated reply is a new sibling, so nothing is ever overwritten. The
conversation remembers the end of the branch on screen (its *current* message). The API the UI uses:

* ``Store.messages(conversation_id) -> list[StoredMessage]``: the branch on screen, first message to the
  current one (what every caller always got). Each message carries ``parent_id``, ``sibling_index``
  (1-based) and ``sibling_count`` for a "2 / 3" switch.
* ``Store.all_messages(conversation_id) -> list[StoredMessage]``: every message of the tree, oldest first.
* ``Store.switch_branch(conversation_id, message_id, step) -> list[StoredMessage]``: show the previous
  (``step=-1``) or next (``+1``) sibling of ``message_id``, continuing down to the leaf under it that was
  on screen most recently; returns the new branch on screen (unchanged when there is no such sibling).
* ``Store.set_current(conversation_id, message_id | None)``, ``Store.current_id(conversation_id)``.
* ``Store.delete_message(conversation_id, message_id)``: a message and everything below it.

New messages are added below the current message unless a ``parent_id`` is given
(:class:`~assistant.session.ChatSession` gives one for edit and regenerate), and become current.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Final, Literal

from assistant.branches import MessageTree
from assistant.chat import StopReason
from assistant.errors import ConversationNotFoundError, MessageNotFoundError, StoreError
from assistant.records import (
    Conversation,
    ConversationSummary,
    NewConversation,
    ReplyUpdate,
    StoredMessage,
    now_iso,
    title_from,
    visible_history,
)
from assistant.schema import MIGRATIONS, message_from_row

__all__ = [
    "CURRENT",
    "MIGRATIONS",
    "Conversation",
    "ConversationSummary",
    "MessageNotFoundError",
    "ReplyUpdate",
    "Store",
    "StoredMessage",
    "now_iso",
    "title_from",
    "visible_history",
]

log = logging.getLogger(__name__)


class _Place(Enum):
    CURRENT = "current"


# ``parent_id=CURRENT`` (the default): below the end of the branch on screen.
CURRENT: Final = _Place.CURRENT
Parent = int | None | Literal[_Place.CURRENT]

# conversations.current_id: NULL means "the most recently active leaf" (a conversation written by an
# earlier Haven, or one without messages); EMPTY_BRANCH means the branch on screen ends before the first
# message (everything was rewound).
EMPTY_BRANCH = 0

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
        return Conversation(id=row["id"], title=row["title"], model=row["model"], instructions=row["instructions"],
                            created=row["created"], updated=row["updated"])

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

    # -- the tree ------------------------------------------------------------------------------

    @staticmethod
    def _tree(db: sqlite3.Connection, conversation_id: str) -> MessageTree:
        rows = db.execute("SELECT id, parent_id, active FROM messages WHERE conversation_id = ?", (conversation_id,))
        return MessageTree((r[0], r[1], r[2]) for r in rows)

    @staticmethod
    def _read(db: sqlite3.Connection, tree: MessageTree, ids: Sequence[int]) -> list[StoredMessage]:
        """The messages ``ids``, in that order, with their places among their siblings."""
        if not ids:
            return []
        rows = db.execute("SELECT * FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                          (json.dumps(list(ids)),)).fetchall()
        by_id = {r["id"]: r for r in rows}
        return [message_from_row(by_id[i], *tree.position(i)) for i in ids if i in by_id]

    def _current(self, db: sqlite3.Connection, conversation_id: str, tree: MessageTree | None = None) -> int | None:
        """The end of the branch on screen, resolved: a message id, or None for an empty branch."""
        row = db.execute("SELECT current_id FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        stored = row["current_id"] if row is not None else None
        if stored == EMPTY_BRANCH:
            return None
        if stored is not None:
            if tree is not None and stored in tree:
                return int(stored)
            if tree is None and db.execute("SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                                           (stored, conversation_id)).fetchone():
                return int(stored)
        return (tree or self._tree(db, conversation_id)).latest_leaf(None)

    def _set_current(self, db: sqlite3.Connection, conversation_id: str, message_id: int | None,
                     path: Sequence[int]) -> None:
        """Make ``message_id`` current and mark ``path`` (its branch) as the most recently active one."""
        stamp = self._next_stamp(db, conversation_id)
        db.executemany("UPDATE messages SET active = ? WHERE id = ?", [(stamp, i) for i in path])
        db.execute("UPDATE conversations SET current_id = ? WHERE id = ?",
                   (EMPTY_BRANCH if message_id is None else message_id, conversation_id))

    @staticmethod
    def _next_stamp(db: sqlite3.Connection, conversation_id: str) -> int:
        row = db.execute("SELECT COALESCE(MAX(active), 0) + 1 FROM messages WHERE conversation_id = ?",
                         (conversation_id,)).fetchone()
        return int(row[0])

    def _resolve_parent(self, db: sqlite3.Connection, conversation_id: str, parent: Parent) -> int | None:
        if parent is CURRENT:
            return self._current(db, conversation_id)
        if parent is not None and not db.execute("SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                                                 (parent, conversation_id)).fetchone():
            raise _missing(conversation_id, parent)
        return parent

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        """The branch on screen: from the first message down to the current one."""
        with self._lock:
            tree = self._tree(self._db, conversation_id)
            return self._read(self._db, tree, tree.path_to(self._current(self._db, conversation_id, tree)))

    def all_messages(self, conversation_id: str) -> list[StoredMessage]:
        """Every message of the conversation, all branches, in the order they were written (a parent always
        comes before its children)."""
        with self._lock:
            tree = self._tree(self._db, conversation_id)
            rows = self._db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                                    (conversation_id,)).fetchall()
        return [message_from_row(r, *tree.position(r["id"])) for r in rows]

    def message(self, conversation_id: str, message_id: int) -> StoredMessage:
        with self._lock:
            tree = self._tree(self._db, conversation_id)
            if message_id not in tree:
                raise _missing(conversation_id, message_id)
            return self._read(self._db, tree, [message_id])[0]

    def path_to(self, conversation_id: str, message_id: int | None) -> list[StoredMessage]:
        """The branch from the first message down to ``message_id`` (empty for None)."""
        with self._lock:
            tree = self._tree(self._db, conversation_id)
            if message_id is not None and message_id not in tree:
                raise _missing(conversation_id, message_id)
            return self._read(self._db, tree, tree.path_to(message_id))

    def current_id(self, conversation_id: str) -> int | None:
        """The id of the last message of the branch on screen; None when that branch is empty."""
        with self._lock:
            return self._current(self._db, conversation_id)

    def set_current(self, conversation_id: str, message_id: int | None) -> None:
        """Show the branch ending at ``message_id`` (None: an empty branch, before the first message)."""
        with self._transaction() as db:
            tree = self._tree(db, conversation_id)
            if message_id is not None and message_id not in tree:
                raise _missing(conversation_id, message_id)
            self._set_current(db, conversation_id, message_id, tree.path_to(message_id))

    def switch_branch(self, conversation_id: str, message_id: int, step: int) -> list[StoredMessage]:
        """Show the sibling ``step`` places from ``message_id`` (-1: previous, +1: next), down to the leaf
        under it that was on screen most recently. Returns the branch on screen, unchanged when there is no
        sibling that far."""
        with self._transaction() as db:
            tree = self._tree(db, conversation_id)
            if message_id not in tree:
                raise _missing(conversation_id, message_id)
            siblings = tree.siblings(message_id)
            index = siblings.index(message_id) + step
            if step == 0 or not 0 <= index < len(siblings):
                return self._read(db, tree, tree.path_to(self._current(db, conversation_id, tree)))
            leaf = tree.latest_leaf(siblings[index])
            path = tree.path_to(leaf)
            self._set_current(db, conversation_id, leaf, path)
            return self._read(db, tree, path)

    def delete_message(self, conversation_id: str, message_id: int) -> None:
        """Remove a message and every message below it (its replies, their follow-ups). When the branch on
        screen went through it, a sibling's branch is shown instead (the previous one, else the next), or
        the branch ends at its parent."""
        with self._transaction() as db:
            tree = self._tree(db, conversation_id)
            if message_id not in tree:
                return
            current = self._current(db, conversation_id, tree)
            doomed = tree.subtree(message_id)
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in doomed])
            if current in doomed:
                siblings = tree.siblings(message_id)
                at = siblings.index(message_id)
                others = siblings[:at][-1:] + siblings[at + 1:][:1]
                leaf = tree.latest_leaf(others[0]) if others else tree.parent[message_id]
                self._set_current(db, conversation_id, leaf, tree.path_to(leaf))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now_iso(), conversation_id))

    def delete_messages_from(self, conversation_id: str, message_id: int) -> None:
        """The name earlier versions used for :meth:`delete_message` (on a chain: a message and all after it)."""
        self.delete_message(conversation_id, message_id)

    # -- writing messages ----------------------------------------------------------------------

    def _insert_message(self, db: sqlite3.Connection, conversation_id: str, parent: Parent,
                        values: dict[str, object]) -> int:
        """Insert one message below ``parent`` and make it current (the newest message is always shown)."""
        parent_id = self._resolve_parent(db, conversation_id, parent)
        row = {**values, "conversation_id": conversation_id, "parent_id": parent_id,
               "active": self._next_stamp(db, conversation_id)}
        columns = ", ".join(row)
        cursor = db.execute(f"INSERT INTO messages ({columns}) VALUES ({', '.join('?' * len(row))})",
                            tuple(row.values()))
        message_id = int(cursor.lastrowid or 0)
        db.execute("UPDATE conversations SET current_id = ? WHERE id = ?", (message_id, conversation_id))
        return message_id

    def add_user_message(self, conversation_id: str, content: str, *, model: str | None = None,
                         parent_id: Parent = CURRENT) -> int:
        """Store the user's message as soon as it is sent; the first one also names the conversation.
        ``parent_id``: the message it follows (default: the end of the branch on screen)."""
        stamp = now_iso()
        with self._transaction() as db:
            message_id = self._insert_message(db, conversation_id, parent_id, {
                "role": "user", "content": content, "created": stamp, "model": model, "complete": 1})
            db.execute(
                "UPDATE conversations SET updated = ?,"
                " title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                (stamp, title_from(content), conversation_id),
            )
        return message_id

    def mark_user_message_blocked(self, message_id: int, stage: str, category: str | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET blocked = 1, stage = ?, category = ? WHERE id = ?",
                (stage, category, message_id),
            )

    def mark_user_message_allowed(self, message_id: int) -> None:
        """Clear a block (a regenerated turn whose message the input check now lets through)."""
        with self._transaction() as db:
            db.execute("UPDATE messages SET blocked = 0, stage = NULL, category = NULL WHERE id = ? AND role = 'user'",
                       (message_id,))

    def start_reply(self, conversation_id: str, model: str, *, parent_id: Parent = CURRENT) -> int:
        """Create the reply row before the first token, marked incomplete until :meth:`finish_reply`.
        ``parent_id``: the user message it answers (default: the end of the branch on screen)."""
        stamp = now_iso()
        with self._transaction() as db:
            message_id = self._insert_message(db, conversation_id, parent_id, {
                "role": "assistant", "content": "", "created": stamp, "model": model, "complete": 0,
                "stop_reason": StopReason.INTERRUPTED.value})
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (stamp, conversation_id))
        return message_id

    def save_partial_reply(self, message_id: int, content: str, reasoning: str | None = None) -> None:
        """Persist the text shown so far (and the reasoning, when given), so a crash keeps it."""
        with self._transaction() as db:
            db.execute("UPDATE messages SET content = ?, reasoning = COALESCE(?, reasoning)"
                       " WHERE id = ? AND complete = 0", (content, reasoning, message_id))

    def finish_reply(self, message_id: int, update: ReplyUpdate) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET content = ?, complete = ?, stop_reason = ?, prompt_tokens = ?,"
                " completion_tokens = ?, ttft_ms = ?, tokens_per_second = ?, blocked = ?, stage = ?,"
                " category = ?, reasoning = ?, reasoning_ms = ? WHERE id = ?",
                (
                    update.content, int(update.complete), update.stop_reason.value, update.prompt_tokens,
                    update.completion_tokens, update.ttft_ms, update.tokens_per_second,
                    int(update.blocked), update.stage, update.category, update.reasoning, update.reasoning_ms,
                    message_id,
                ),
            )

    def add_notice(self, conversation_id: str, content: str, *, stage: str, category: str | None,
                   parent_id: Parent = CURRENT) -> int:
        """Store the safety notice that stands in for a reply that was never generated."""
        with self._transaction() as db:
            return self._insert_message(db, conversation_id, parent_id, {
                "role": "assistant", "content": content, "created": now_iso(), "complete": 1,
                "stop_reason": StopReason.BLOCKED.value, "blocked": 1, "stage": stage, "category": category})

    # -- importing -----------------------------------------------------------------------------

    def import_conversations(self, conversations: Sequence[NewConversation]) -> list[str]:
        """Write whole conversations, trees and all, in one transaction: all of them or none. Returns the
        new conversations' ids (always new ids: an import never overwrites anything)."""
        created: list[str] = []
        with self._transaction() as db:
            for conversation in conversations:
                created.append(self._write_conversation(db, conversation))
        return created

    def _write_conversation(self, db: sqlite3.Connection, conversation: NewConversation) -> str:
        conversation_id = uuid.uuid4().hex[:12]
        db.execute(
            "INSERT INTO conversations (id, title, model, instructions, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
            (conversation_id, conversation.title, conversation.model, conversation.instructions,
             conversation.created, conversation.updated),
        )
        ids: list[int] = []
        for index, m in enumerate(conversation.messages):
            if m.parent is not None and not 0 <= m.parent < index:
                raise ValueError(f"message {index} names parent {m.parent}, which is not an earlier message")
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, created, model, complete,"
                " stop_reason, blocked, stage, category, reasoning, reasoning_ms, active)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, None if m.parent is None else ids[m.parent], m.role, m.content, m.created,
                 m.model, int(m.complete), m.stop_reason.value if m.stop_reason else None, int(m.blocked),
                 m.stage, m.category, m.reasoning, m.reasoning_ms, index + 1),
            )
            ids.append(int(cursor.lastrowid or 0))
        current = conversation.current if conversation.current is not None else len(ids) - 1
        if ids:
            path: list[int] = []
            node: int | None = current
            while node is not None:
                path.append(ids[node])
                node = conversation.messages[node].parent
            self._set_current(db, conversation_id, ids[current], path)
        return conversation_id

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


def _missing(conversation_id: str, message_id: int) -> MessageNotFoundError:
    return MessageNotFoundError(
        f"Conversation {conversation_id!r} has no message with the id {message_id}; it may have been deleted. "
        "Open the conversation again to see what it holds."
    )
