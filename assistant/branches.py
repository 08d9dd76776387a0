"""A conversation's message tree in memory: the branch from the first message to a leaf, siblings, and
the most recently active leaf below a message. Pure functions over :class:`~assistant.records.StoredMessage`
values; :class:`~assistant.store.Store` reads the rows and writes the choices.

Walking is iterative (no recursion), so a conversation thousands of messages deep costs a dictionary
lookup per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from assistant.records import StoredMessage

__all__ = ["MessageTree"]


@dataclass(slots=True)
class MessageTree:
    """All messages of one conversation, with ``active``: per message, when it was last on the branch on
    screen (a larger number is more recent)."""

    messages: list[StoredMessage]
    active: Mapping[int, int]
    by_id: dict[int, StoredMessage] = field(init=False)
    children: dict[int | None, list[StoredMessage]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {m.id: m for m in self.messages}
        self.children = {}
        for m in sorted(self.messages, key=lambda m: m.id):
            parent = m.parent_id if m.parent_id in self.by_id else None  # an orphan reads as a first message
            self.children.setdefault(parent, []).append(m)

    def path_to(self, message_id: int | None) -> list[StoredMessage]:
        """The branch from the first message down to ``message_id`` (empty for None)."""
        path: list[StoredMessage] = []
        seen: set[int] = set()
        current = self.by_id.get(message_id) if message_id is not None else None
        while current is not None and current.id not in seen:  # `seen` guards against a damaged cycle
            seen.add(current.id)
            path.append(current)
            current = self.by_id.get(current.parent_id) if current.parent_id is not None else None
        path.reverse()
        return path

    def latest_leaf(self, start: int | None) -> int | None:
        """The leaf reached from ``start`` by always taking the most recently active child (from the first
        messages when ``start`` is None); ``start`` itself when it has no children."""
        node = start
        seen: set[int] = set()
        while True:
            kids = self.children.get(node, [])
            if not kids or (node is not None and node in seen):
                return node
            if node is not None:
                seen.add(node)
            node = max(kids, key=lambda m: (self.active.get(m.id, 0), m.id)).id

    def siblings(self, message_id: int) -> list[StoredMessage]:
        message = self.by_id[message_id]
        parent = message.parent_id if message.parent_id in self.by_id else None
        return self.children.get(parent, [])

    def subtree(self, message_id: int) -> list[int]:
        """``message_id`` and every message below it."""
        found: list[int] = []
        seen: set[int] = set()
        stack = [message_id]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            found.append(node)
            stack.extend(m.id for m in self.children.get(node, []))
        return found
