"""A conversation's message tree in memory, as ids only: the branch from the first message to a leaf,
siblings and their numbering, and the most recently active leaf below a message.
:class:`~assistant.store.Store` reads the skeleton (id, parent, when last on screen) for a conversation,
asks the tree, and then reads the text of only the messages it returns.

Walking is iterative (no recursion), so a conversation thousands of messages deep costs a dictionary
lookup per message, and a damaged tree (a cycle) cannot loop.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MessageTree"]


class MessageTree:
    """``nodes``: (id, parent id, active) for every message of one conversation, where ``active`` is when
    the message was last on the branch on screen (a larger number is more recent)."""

    def __init__(self, nodes: Iterable[tuple[int, int | None, int]]) -> None:
        rows = sorted(nodes)
        self.ids = [i for i, _, _ in rows]
        self.active = {i: a for i, _, a in rows}
        known = set(self.active)
        # A parent that is not there (damage) reads as no parent: the message is a first message.
        self.parent = {i: p if p in known and p != i else None for i, p, _ in rows}
        self.children: dict[int | None, list[int]] = {}
        for i in self.ids:
            self.children.setdefault(self.parent[i], []).append(i)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.active

    def path_to(self, message_id: int | None) -> list[int]:
        """The ids from the first message down to ``message_id`` (empty for None)."""
        path: list[int] = []
        seen: set[int] = set()
        node = message_id if message_id in self.active else None
        while node is not None and node not in seen:
            seen.add(node)
            path.append(node)
            node = self.parent[node]
        path.reverse()
        return path

    def latest_leaf(self, start: int | None) -> int | None:
        """The leaf reached from ``start`` by always taking the most recently active child (from the first
        messages when ``start`` is None); ``start`` itself when it has no children."""
        node = start
        seen: set[int] = set()
        while node not in seen:
            kids = self.children.get(node, [])
            if not kids:
                return node
            if node is not None:
                seen.add(node)
            node = max(kids, key=lambda k: (self.active[k], k))
        return node

    def siblings(self, message_id: int) -> list[int]:
        """``message_id`` and the other messages with its parent, in the order they were written."""
        return self.children[self.parent[message_id]]

    def position(self, message_id: int) -> tuple[int, int]:
        """(1-based index among its siblings, how many siblings), for a "2 / 3" switch."""
        siblings = self.siblings(message_id)
        return siblings.index(message_id) + 1, len(siblings)

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
            stack.extend(self.children.get(node, []))
        return found
