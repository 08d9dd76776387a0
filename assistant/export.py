"""Conversations as JSON or Markdown, in the shapes ``haven-cli history export`` promises (docs/core.md).

Both write the branch on screen (first message to the current one). JSON can instead hold every branch
(``all_branches=True``): each message names its ``parent``, and ``current`` names the end of the branch
on screen, so :mod:`assistant.importing` reads either back as the same tree.
"""

from __future__ import annotations

from typing import Any

from assistant.store import Conversation, Store, StoredMessage

__all__ = ["conversation_to_json", "conversations_to_markdown", "export_json"]

FORMAT_VERSION = 2  # 1: round 1's export (no ids, the branch on screen); 2: ids, parents, reasoning


def _message_json(m: StoredMessage) -> dict[str, Any]:
    return {
        "id": m.id, "parent": m.parent_id, "role": m.role, "content": m.content, "created": m.created,
        "model": m.model, "complete": m.complete, "stop_reason": m.stop_reason.value if m.stop_reason else None,
        "blocked": m.blocked, "stage": m.stage, "category": m.category, "reasoning": m.reasoning,
        "reasoning_ms": m.reasoning_ms, "sibling_index": m.sibling_index, "sibling_count": m.sibling_count,
    }


def conversation_to_json(conversation: Conversation, messages: list[StoredMessage], *,
                         current: int | None = None, all_branches: bool = False) -> dict[str, Any]:
    """``messages``: the branch on screen, or with ``all_branches`` the whole tree (then ``current`` names
    the end of the branch on screen; without it, that is the last message)."""
    if current is None and not all_branches and messages:
        current = messages[-1].id
    return {
        "id": conversation.id, "title": conversation.title, "model": conversation.model,
        "instructions": conversation.instructions, "created": conversation.created,
        "updated": conversation.updated, "branches": "all" if all_branches else "current", "current": current,
        "messages": [_message_json(m) for m in messages],
    }


def export_json(store: Store, conversation_ids: list[str], *, all_branches: bool = False) -> dict[str, Any]:
    conversations = []
    for cid in conversation_ids:
        conversation = store.conversation(cid)
        if all_branches:
            conversations.append(conversation_to_json(conversation, store.all_messages(cid),
                                                      current=store.current_id(cid), all_branches=True))
        else:
            conversations.append(conversation_to_json(conversation, store.messages(cid)))
    return {"format": "haven", "version": FORMAT_VERSION, "conversations": conversations}


def _speaker(m: StoredMessage) -> str:
    return "You" if m.role == "user" else "Haven"


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _message_markdown(m: StoredMessage) -> str:
    notes = []
    if m.blocked:
        notes.append(f"blocked by the safety system at the {m.stage} stage"
                     + (f", category {m.category}" if m.category else ""))
    if not m.complete:
        notes.append("incomplete")
    if m.sibling_count > 1:
        notes.append(f"version {m.sibling_index} of {m.sibling_count}")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    thinking = ""
    if m.reasoning:
        took = f" for {m.reasoning_ms / 1000:.1f} s" if m.reasoning_ms is not None else ""
        thinking = f"> _Thought{took}:_\n>\n{_quoted(m.reasoning)}\n\n"
    return f"**{_speaker(m)}**{suffix} · {m.created}\n\n{thinking}{m.content}\n"


def conversations_to_markdown(store: Store, conversation_ids: list[str]) -> str:
    """The branch on screen of each conversation; a reasoning model's thinking as a quote before its answer."""
    parts: list[str] = []
    for cid in conversation_ids:
        conversation = store.conversation(cid)
        parts.append(f"# {conversation.title or 'Untitled conversation'}\n")
        parts.append(f"_Model: {conversation.model} · started {conversation.created} · id {conversation.id}_\n")
        parts.extend(_message_markdown(m) for m in store.messages(cid))
    return "\n".join(parts)
