"""The values the conversation store reads and writes: conversations, stored messages (a tree: each message
names its parent), the final state of a reply, and the records an import hands to the store.

They carry no behaviour beyond small derived facts, so the store, the session, export, import and the UI
can share them without importing each other. :mod:`assistant.store` re-exports the ones it always had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from assistant.chat import StopReason

__all__ = [
    "Conversation",
    "ConversationSummary",
    "NewConversation",
    "NewMessage",
    "ReplyUpdate",
    "StoredMessage",
    "now_iso",
    "title_from",
    "visible_history",
]

TITLE_LENGTH = 60


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


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
    messages: int  # every stored message, all branches


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """One message of a conversation's tree.

    ``parent_id`` is the message it answers or follows (None for a first message). Messages with the same
    parent are siblings: the versions of an edited message, or the regenerated replies to one message.
    ``sibling_index`` (1-based, in the order they were written) and ``sibling_count`` are what a "2 / 3"
    switch shows; both are 1 where there are no alternatives. ``reasoning`` is a reasoning model's thinking
    text ("" when none) and ``reasoning_ms`` how long it took; neither ever goes back into a prompt.
    """

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
    parent_id: int | None = None
    sibling_index: int = 1
    sibling_count: int = 1
    reasoning: str = ""
    reasoning_ms: float | None = None


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
    reasoning: str = ""
    reasoning_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMessage:
    """A message to write as it is (an import). ``parent`` is the index, in the same conversation's
    ``messages``, of the message it follows, always an earlier one; None for a first message."""

    parent: int | None
    role: str  # "user" or "assistant"
    content: str
    created: str
    model: str | None = None
    complete: bool = True
    stop_reason: StopReason | None = None
    blocked: bool = False
    stage: str | None = None
    category: str | None = None
    reasoning: str = ""
    reasoning_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewConversation:
    """A whole conversation to write at once. ``current`` indexes ``messages``: the end of the branch on
    screen (None: the last message)."""

    title: str
    model: str
    created: str
    updated: str
    messages: tuple[NewMessage, ...]
    instructions: str = ""
    current: int | None = None


def visible_history(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The messages a model may see again: blocked turns and empty replies never go back into a prompt
    (and a reply's reasoning never does: only ``content`` is sent)."""
    return [m for m in messages if not m.blocked and m.content.strip()]
