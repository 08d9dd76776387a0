"""Bringing conversations in: Haven's own JSON export and ChatGPT's ``conversations.json`` (the file in
the zip ChatGPT's "Export data" sends; the zip itself is read too).

Roles, order, timestamps and branches are kept: every version of an edited message and every
regenerated reply becomes a sibling, and the branch that was on screen (Haven's ``current``, ChatGPT's
``current_node``) is on screen again. From ChatGPT only what a person saw is kept: system and tool
messages, hidden context, tool calls and messages without text are left out (their replies attach to
the message before them, and an answer split around a tool call becomes one message).

All or nothing: the file is read and checked whole before anything is written, then written in one
transaction. A file that is not one of these formats, is damaged, or is larger than
:data:`MAX_IMPORT_BYTES` raises :class:`ImportFileError` with one sentence, and nothing is imported.
Imported conversations always get new ids; nothing already stored is changed.

The UI and the CLI call ``import_file(store, path) -> ImportResult``.
"""

from __future__ import annotations

import io
import json
import math
import sys
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from assistant.chat import StopReason
from assistant.errors import ImportFileError
from assistant.importing_chatgpt import Malformed, chatgpt_conversations
from assistant.records import NewConversation, NewMessage, now_iso, title_from
from assistant.store import Store

__all__ = ["MAX_IMPORT_BYTES", "ImportFileError", "ImportFormat", "ImportResult", "import_bytes", "import_file",
           "parse_export"]

MAX_IMPORT_BYTES = 256 * 1024 * 1024  # a heavy ChatGPT user's export is tens of MB; JSON this big takes GBs


class ImportFormat(StrEnum):
    HAVEN = "haven"
    CHATGPT = "chatgpt"


@dataclass(frozen=True, slots=True)
class ImportedConversation:
    id: str
    title: str
    messages: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    format: ImportFormat
    conversations: list[ImportedConversation]

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.conversations)


def import_file(store: Store, path: Path | str) -> ImportResult:
    """Import ``path`` (``"-"``: standard input) into ``store``."""
    name = str(path)
    if name == "-":
        data = sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1)
        return import_bytes(store, data, "The input")
    try:
        file = Path(path)
        if file.stat().st_size > MAX_IMPORT_BYTES:
            raise _too_big(name)
        data = file.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"Haven could not read {name} ({exc.strerror or exc}); nothing was imported.") from exc
    return import_bytes(store, data, name)


def import_bytes(store: Store, data: bytes, name: str = "The file") -> ImportResult:
    """Import an export held in memory; ``name`` is how sentences refer to it."""
    kind, conversations = parse_export(data, name)
    ids = store.import_conversations(conversations)
    return ImportResult(kind, [ImportedConversation(cid, c.title, len(c.messages))
                               for cid, c in zip(ids, conversations, strict=True)])


def parse_export(data: bytes, name: str = "The file") -> tuple[ImportFormat, list[NewConversation]]:
    """Read and check a whole export, writing nothing. Raises :class:`ImportFileError`."""
    if len(data) > MAX_IMPORT_BYTES:
        raise _too_big(name)
    if data[:4] == b"PK\x03\x04":
        data = _from_zip(data, name)
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{name} is not text (UTF-8), so it is not a Haven or ChatGPT export; "
                              "nothing was imported.") from exc
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                              "nothing was imported.") from exc
    except RecursionError as exc:
        raise ImportFileError(f"{name} nests its JSON too deeply to be an export; nothing was imported.") from exc
    try:
        if isinstance(document, dict) and isinstance(document.get("conversations"), list):
            return ImportFormat.HAVEN, [_haven_conversation(c, i) for i, c in enumerate(document["conversations"])]
        if isinstance(document, list) or (isinstance(document, dict) and "mapping" in document):
            return ImportFormat.CHATGPT, chatgpt_conversations(document)
    except Malformed as exc:
        raise ImportFileError(f"{name} cannot be imported: {exc}; nothing was imported.") from exc
    raise ImportFileError(f"{name} is neither a Haven JSON export (`haven-cli history export --format json`) nor "
                          "a ChatGPT conversations.json; nothing was imported.")


def _too_big(name: str) -> ImportFileError:
    return ImportFileError(f"{name} is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB, more than Haven imports "
                           "at once (split the export into smaller files); nothing was imported.")


def _from_zip(data: bytes, name: str) -> bytes:
    """ChatGPT's export zip: its conversations.json, size-checked before it is unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entry = next((i for i in archive.infolist() if i.filename.rsplit("/", 1)[-1] == "conversations.json"),
                         None)
            if entry is None:
                raise ImportFileError(f"{name} is a zip without a conversations.json; nothing was imported.")
            if entry.file_size > MAX_IMPORT_BYTES:
                raise _too_big(f"The conversations.json in {name}")
            with archive.open(entry) as member:
                inner = member.read(MAX_IMPORT_BYTES + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
        raise ImportFileError(f"{name} is a damaged zip ({exc}); nothing was imported.") from exc
    if len(inner) > MAX_IMPORT_BYTES:
        raise _too_big(f"The conversations.json in {name}")
    return inner


# -- Haven's own export -----------------------------------------------------------------------------


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = obj.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise Malformed(f"{where} has a {key!r} that is not {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", bool: "true or false", int: "a number", float: "a number", list: "a list", dict: "an object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _haven_conversation(raw: Any, index: int) -> NewConversation:
    where = f"conversation {index + 1}"
    if not isinstance(raw, dict):
        raise Malformed(f"{where} is not an object")
    created = _field(raw, "created", str, now_iso(), where)
    messages_raw = _field(raw, "messages", list, [], where)
    keys: dict[Any, int] = {}
    messages: list[NewMessage] = []
    for position, item in enumerate(messages_raw):
        at = f"{where}, message {position + 1}"
        if not isinstance(item, dict):
            raise Malformed(f"{at} is not an object")
        messages.append(_haven_message(item, at, position, keys, created))
        key = item.get("id", position)
        if not isinstance(key, int | str) or key in keys:
            raise Malformed(f"{at} has a missing or repeated id")
        keys[key] = position
    current_key = raw.get("current")
    if current_key is not None and current_key not in keys:
        raise Malformed(f"{where} names a current message it does not hold")
    title = _field(raw, "title", str, "", where)
    first_user = next((m.content for m in messages if m.role == "user"), "")
    return NewConversation(
        title=title or title_from(first_user), model=_field(raw, "model", str, "imported", where) or "imported",
        instructions=_field(raw, "instructions", str, "", where), created=created,
        updated=_field(raw, "updated", str, created, where), messages=tuple(messages),
        current=keys[current_key] if current_key is not None else None,
    )


def _haven_message(item: dict[str, Any], at: str, position: int, keys: dict[Any, int], created: str) -> NewMessage:
    role = item.get("role")
    if role not in ("user", "assistant"):
        raise Malformed(f"{at} has the role {role!r}, but Haven stores only 'user' and 'assistant' messages")
    if "parent" in item:  # an export with ids: the tree as written
        parent_key = item["parent"]
        if parent_key is not None and parent_key not in keys:
            raise Malformed(f"{at} follows a message that does not come before it")
        parent = keys[parent_key] if parent_key is not None else None
    else:  # round 1's export: the branch on screen, one message after another
        parent = position - 1 if position > 0 else None
    if not isinstance(item.get("content"), str):
        raise Malformed(f"{at} has no text")
    stop = item.get("stop_reason")
    reasoning_ms = _field(item, "reasoning_ms", (int, float), None, at)
    return NewMessage(
        parent=parent, role=role, content=item["content"],
        created=_field(item, "created", str, created, at), model=_field(item, "model", str, None, at),
        complete=_field(item, "complete", bool, True, at),
        stop_reason=StopReason(stop) if stop in {s.value for s in StopReason} else None,
        blocked=_field(item, "blocked", bool, False, at), stage=_field(item, "stage", str, None, at),
        category=_field(item, "category", str, None, at), reasoning=_field(item, "reasoning", str, "", at),
        reasoning_ms=float(reasoning_ms) if reasoning_ms is not None and math.isfinite(reasoning_ms) else None,
    )
