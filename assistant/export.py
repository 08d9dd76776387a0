"""Conversations as JSON or Markdown, in the shapes ``haven-cli history export`` promises."""

from __future__ import annotations

from typing import Any

from assistant.store import Conversation, Store, StoredMessage

__all__ = ["conversation_to_json", "conversations_to_markdown", "export_json"]


def _message_json(m: StoredMessage) -> dict[str, Any]:
    return {
        "role": m.role, "content": m.content, "created": m.created, "complete": m.complete,
        "blocked": m.blocked, "category": m.category,
    }


def conversation_to_json(conversation: Conversation, messages: list[StoredMessage]) -> dict[str, Any]:
    return {
        "id": conversation.id, "title": conversation.title, "model": conversation.model,
        "created": conversation.created, "updated": conversation.updated,
        "messages": [_message_json(m) for m in messages],
    }


def export_json(store: Store, conversation_ids: list[str]) -> dict[str, Any]:
    return {"conversations": [
        conversation_to_json(store.conversation(cid), store.messages(cid)) for cid in conversation_ids
    ]}


def _speaker(m: StoredMessage) -> str:
    return "You" if m.role == "user" else "Haven"


def conversations_to_markdown(store: Store, conversation_ids: list[str]) -> str:
    parts: list[str] = []
    for cid in conversation_ids:
        conversation = store.conversation(cid)
        parts.append(f"# {conversation.title or 'Untitled conversation'}\n")
        parts.append(f"_Model: {conversation.model} · started {conversation.created} · id {conversation.id}_\n")
        for m in store.messages(cid):
            notes = []
            if m.blocked:
                notes.append(f"blocked by the safety system at the {m.stage} stage"
                             + (f", category {m.category}" if m.category else ""))
            if not m.complete:
                notes.append("incomplete")
            suffix = f" ({'; '.join(notes)})" if notes else ""
            parts.append(f"**{_speaker(m)}**{suffix} · {m.created}\n\n{m.content}\n")
    return "\n".join(parts)
