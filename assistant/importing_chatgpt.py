"""ChatGPT's ``conversations.json`` read into :class:`~assistant.records.NewConversation` values.

The file is a list of conversations, each ``{"title", "create_time", "update_time", "mapping",
"current_node", "default_model_slug"?}``. ``mapping`` holds the tree: node id to ``{"id", "parent",
"children", "message"}``, where ``message`` is None (the root) or ``{"author": {"role"}, "content":
{"content_type", "parts"}, "create_time", "recipient", "metadata"}``; times are seconds since 1970.

Kept: user and assistant messages with text (``text`` and the text parts of ``multimodal_text``), in tree
order, siblings by time. Left out: system and tool messages, hidden context
(``metadata.is_visually_hidden_from_conversation``), tool calls (a ``recipient`` other than ``all``),
other content (code run, browsing displays, images) and empty messages; a kept message follows its nearest
kept ancestor. A message followed by a single message of the same role (an answer split by a tool call)
becomes one message, so a continued conversation alternates as chat templates expect. ``current_node`` (or
its nearest kept ancestor) becomes the end of the branch on screen.

Walking is iterative, so a conversation thousands of messages deep is no problem, and a damaged tree (a
cycle) cannot loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from assistant.records import NewConversation, NewMessage, now_iso, title_from

__all__ = ["Malformed", "chatgpt_conversations"]

_LATEST_TIME = 4_102_444_800  # 2100-01-01: anything later is not a ChatGPT timestamp


class Malformed(ValueError):
    """What is wrong with an export, written to end a sentence ("... cannot be imported: <this>")."""


@dataclass(slots=True)
class _Node:
    role: str
    content: str
    created: str
    model: str | None
    parent: int | None
    children: list[int] = field(default_factory=list)


def chatgpt_conversations(document: Any) -> list[NewConversation]:
    """Every conversation of the export that holds at least one kept message."""
    items = document if isinstance(document, list) else [document]
    conversations = [_conversation(raw, f"conversation {i + 1}") for i, raw in enumerate(items)]
    return [c for c in conversations if c.messages]


def _time(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value < _LATEST_TIME:
        raise Malformed(f"{where} has a time that is not a number of seconds since 1970")
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="microseconds")


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if not isinstance(content, dict):
        raise Malformed(f"{where} has content that is not an object")
    if content.get("content_type") not in ("text", "multimodal_text"):
        return ""  # code run by a tool, browsing results, images...: not a message a person wrote or read
    parts = content.get("parts", [])
    if not isinstance(parts, list):
        raise Malformed(f"{where} has 'parts' that are not a list")
    return "\n\n".join(p for p in parts if isinstance(p, str) and p.strip())


def _kept(message: Any, where: str) -> tuple[str, str, str | None, str | None] | None:
    """(role, text, time, model) of a message a person saw, or None for one to leave out."""
    if message is None:
        return None
    if not isinstance(message, dict):
        raise Malformed(f"{where} has a message that is not an object")
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    raw_metadata = message.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    text = _text(message.get("content"), where)
    created = _time(message.get("create_time"), where)
    if (role not in ("user", "assistant") or metadata.get("is_visually_hidden_from_conversation")
            or message.get("recipient") not in (None, "all") or not text.strip()):
        return None
    model = metadata.get("model_slug")
    return str(role), text, created, model if isinstance(model, str) else None


def _children(mapping: dict[Any, Any], where: str) -> dict[str | None, list[str]]:
    """Each node's children (from the ``parent`` fields), siblings in time order."""
    children: dict[str | None, list[str]] = {}
    times: dict[str, float] = {}
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise Malformed(f"{where} has a node {key!r} that is not an object")
        parent = node.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise Malformed(f"{where} has a node {key!r} whose parent is not an id")
        message = node.get("message")
        stamp = message.get("create_time") if isinstance(message, dict) else None
        times[key] = stamp if isinstance(stamp, int | float) and not isinstance(stamp, bool) else math.inf
        children.setdefault(parent if parent in mapping and parent != key else None, []).append(key)
    for siblings in children.values():
        siblings.sort(key=lambda k: times[k])  # stable: mapping order among equal or missing times
    return children


def _walk(mapping: dict[Any, Any], where: str, created: str) -> tuple[list[_Node], dict[str, int | None]]:
    """Kept messages in tree order (a parent before its children), and for every node the index of the
    nearest kept message at or above it."""
    children = _children(mapping, where)
    nodes: list[_Node] = []
    kept_at: dict[str, int | None] = {}
    stack: list[tuple[str, int | None]] = [(k, None) for k in reversed(children.get(None, []))]
    while stack:
        key, above = stack.pop()
        if key in kept_at:
            continue
        found = _kept(mapping[key].get("message"), f"{where}, message {key!r}")
        here = above
        if found is not None:
            role, text, stamp, model = found
            when = stamp or (nodes[above].created if above is not None else created)
            here = len(nodes)
            nodes.append(_Node(role, text, when, model, above))
            if above is not None:
                nodes[above].children.append(here)
        kept_at[key] = here
        stack.extend((child, here) for child in reversed(children.get(key, [])))
    return nodes, kept_at


def _merge_runs(nodes: list[_Node]) -> dict[int, int]:
    """Join a message with its only child when both have the same role; returns absorbed -> absorber."""
    absorbed: dict[int, int] = {}
    for index, node in enumerate(nodes):
        if index in absorbed:
            continue
        while len(node.children) == 1 and nodes[node.children[0]].role == node.role:
            child_index = node.children[0]
            child = nodes[child_index]
            node.content = f"{node.content}\n\n{child.content}"
            node.children = child.children
            for grandchild in child.children:
                nodes[grandchild].parent = index
            absorbed[child_index] = index
    return absorbed


def _new_message(node: _Node, new_index: dict[int, int]) -> NewMessage:
    parent = None if node.parent is None else new_index[node.parent]
    return NewMessage(parent=parent, role=node.role, content=node.content, created=node.created, model=node.model)


def _conversation(raw: Any, where: str) -> NewConversation:
    if not isinstance(raw, dict):
        raise Malformed(f"{where} is not an object")
    mapping = raw.get("mapping")
    if not isinstance(mapping, dict):
        raise Malformed(f"{where} has no 'mapping' of messages")
    created = _time(raw.get("create_time"), where) or now_iso()
    nodes, kept_at = _walk(mapping, where, created)
    absorbed = _merge_runs(nodes)
    order = [i for i in range(len(nodes)) if i not in absorbed]
    new_index = {old: new for new, old in enumerate(order)}
    messages = tuple(_new_message(nodes[i], new_index) for i in order)
    current_node = raw.get("current_node")
    current = kept_at.get(current_node) if isinstance(current_node, str) else None
    while current is not None and current in absorbed:
        current = absorbed[current]
    title = raw.get("title") if isinstance(raw.get("title"), str) else ""
    slug = raw.get("default_model_slug")
    last_model = next((m.model for m in reversed(messages) if m.model), None)
    return NewConversation(
        title=title or title_from(next((m.content for m in messages if m.role == "user"), "")),
        model=slug if isinstance(slug, str) and slug else last_model or "chatgpt",
        created=created, updated=_time(raw.get("update_time"), where) or created, messages=messages,
        current=None if current is None else new_index[current],
    )
