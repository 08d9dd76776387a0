"""Export (the branch on screen, or every branch) and import (Haven's own JSON, ChatGPT's conversations.json)
into a real SQLite store: roles, order, times and branches survive; a bad or huge file is one sentence and
imports nothing. The ChatGPT file is written for these tests (tests/core/data/chatgpt_conversations.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assistant import importing
from assistant.chat import StopReason
from assistant.export import conversations_to_markdown, export_json
from assistant.importing import ImportFileError, import_bytes, import_file
from assistant.records import NewConversation, NewMessage
from assistant.store import ReplyUpdate, Store

CHATGPT = Path(__file__).parent / "data" / "chatgpt_conversations.json"


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "c.sqlite3") as s:
        yield s


def shape(store: Store, cid: str) -> list[tuple]:
    """A conversation's whole tree, independent of ids: (role, content, created, parent's content)."""
    messages = store.all_messages(cid)
    text = {m.id: m.content for m in messages}
    return [(m.role, m.content, m.created, text.get(m.parent_id), m.reasoning) for m in messages]


def test_a_chatgpt_export_keeps_roles_order_times_and_branches(store: Store) -> None:
    result = import_file(store, CHATGPT)
    assert result.format == "chatgpt"
    assert [(c.title, c.messages) for c in result.conversations] == [
        ("A day in Lisbon", 7), ("What is in this photo?", 2)]  # the system-only one is left out
    lisbon, photo = (c.id for c in result.conversations)

    answer = "Museums: the Gulbenkian first,\n\nthen the Tile Museum."  # one answer around the tool call
    assert shape(store, lisbon) == [
        ("user", "Plan a day in Lisbon.", iso(1700000000), None, ""),
        ("assistant", "Start at Belém, then Alfama at sunset.", iso(1700000010), "Plan a day in Lisbon.", ""),
        ("user", "Make it cheaper.", iso(1700000100), "Start at Belém, then Alfama at sunset.", ""),
        ("assistant", "Walk, and ride tram 28 once.", iso(1700000110), "Make it cheaper.", ""),
        ("user", "Make it a plan for a rainy day.", iso(1700000200), "Start at Belém, then Alfama at sunset.", ""),
        ("assistant", answer, iso(1700000210), "Make it a plan for a rainy day.", ""),
        ("assistant", "Try the Oceanarium.", iso(1700000300), "Make it a plan for a rainy day.", ""),
    ]
    # current_node is on screen: the edited question (2 of 2) and its first answer (1 of 2).
    on_screen = store.messages(lisbon)
    assert [m.content for m in on_screen] == [
        "Plan a day in Lisbon.", "Start at Belém, then Alfama at sunset.", "Make it a plan for a rainy day.", answer]
    assert [(m.sibling_index, m.sibling_count) for m in on_screen[2:]] == [(2, 2), (1, 2)]
    assert on_screen[1].model == "gpt-4o" and on_screen[0].model is None
    assert store.switch_branch(lisbon, on_screen[3].id, +1)[-1].content == "Try the Oceanarium."

    conversation = store.conversation(lisbon)
    assert (conversation.model, conversation.created, conversation.updated) == (
        "gpt-4o", iso(1700000000), iso(1700000400))
    # Only the text of a message with an image; a reply without a time takes its question's.
    assert shape(store, photo) == [
        ("user", "What is in this photo?", iso(1700100000.5), None, ""),
        ("assistant", "A cat on a windowsill.", iso(1700100000.5), "What is in this photo?", ""),
    ]
    assert store.conversation(photo).model == "gpt-4"


def test_the_export_zip_itself_imports(store: Store, tmp_path: Path) -> None:
    archive = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("chat.html", "<html></html>")
        z.write(CHATGPT, "conversations.json")
    assert len(import_file(store, archive).conversations) == 2


def branched_conversation(store: Store) -> str:
    cid = store.create_conversation("qwen3-0.6b", instructions="Be brief.").id
    question = store.add_user_message(cid, "2 + 2?")
    first = store.start_reply(cid, "qwen3-0.6b")
    store.finish_reply(first, ReplyUpdate(content="4", complete=True, stop_reason=StopReason.END,
                                          reasoning="Two and two make four.", reasoning_ms=950.0))
    second = store.start_reply(cid, "qwen3-0.6b", parent_id=question)
    store.finish_reply(second, ReplyUpdate(content="Four", complete=False, stop_reason=StopReason.CANCELLED))
    store.add_user_message(cid, "Times 3?")
    store.add_notice(cid, "Blocked: example (S1).", stage="output", category="S1")
    store.switch_branch(cid, second, -1)
    return cid


def test_json_export_writes_the_branch_on_screen_or_every_branch(store: Store) -> None:
    cid = branched_conversation(store)
    [on_screen] = export_json(store, [cid])["conversations"]
    assert [m["content"] for m in on_screen["messages"]] == ["2 + 2?", "4"]
    assert on_screen["branches"] == "current" and on_screen["current"] == on_screen["messages"][-1]["id"]
    reply = on_screen["messages"][1]
    assert {k: reply[k] for k in ("reasoning", "reasoning_ms", "sibling_index", "sibling_count", "stop_reason")} == {
        "reasoning": "Two and two make four.", "reasoning_ms": 950.0, "sibling_index": 1, "sibling_count": 2,
        "stop_reason": "end"}
    [everything] = export_json(store, [cid], all_branches=True)["conversations"]
    assert everything["branches"] == "all" and len(everything["messages"]) == 5
    assert everything["current"] == reply["id"]
    markdown = conversations_to_markdown(store, [cid])
    assert "> Two and two make four." in markdown and "version 1 of 2" in markdown and "Times 3?" not in markdown


def test_haven_json_round_trips_every_branch(store: Store) -> None:
    cid = branched_conversation(store)
    data = json.dumps(export_json(store, [cid], all_branches=True)).encode()
    result = import_bytes(store, data)
    assert result.format == "haven"
    [new] = result.conversations
    assert new.id != cid and shape(store, new.id) == shape(store, cid)
    assert [m.content for m in store.messages(new.id)] == [m.content for m in store.messages(cid)]
    original, copy = store.all_messages(cid), store.all_messages(new.id)
    keep = ("role", "complete", "stop_reason", "blocked", "stage", "category", "reasoning_ms", "model",
            "sibling_index", "sibling_count")
    assert [[getattr(m, k) for k in keep] for m in copy] == [[getattr(m, k) for k in keep] for m in original]
    assert store.conversation(new.id).instructions == "Be brief."
    # The branch on screen only, and round 1's export without ids: one chain each.
    chain = import_bytes(store, json.dumps(export_json(store, [cid])).encode()).conversations[0].id
    assert [m.content for m in store.all_messages(chain)] == ["2 + 2?", "4"]
    old = {"conversations": [{"id": "x", "title": "Old", "model": "m", "messages": [
        {"role": "user", "content": "a", "created": "2025-01-01", "complete": True, "blocked": False, "category": None},
        {"role": "assistant", "content": "b", "created": "2025-01-02", "complete": True, "blocked": False,
         "category": None}]}]}
    old_id = import_bytes(store, json.dumps(old).encode()).conversations[0].id
    assert [(m.content, m.created) for m in store.messages(old_id)] == [("a", "2025-01-01"), ("b", "2025-01-02")]


BAD_FILES = {
    "not JSON": b'[{"mapping": ',
    "not text": b"\xff\xfe\x00\x00\x81",
    "a number": b"42",
    "a wrong role": json.dumps({"conversations": [{"messages": [{"role": "system", "content": "x"}]}]}).encode(),
    "a parent after its child": json.dumps({"conversations": [{"messages": [
        {"id": 1, "parent": 2, "role": "user", "content": "x"}, {"id": 2, "parent": None, "role": "user",
                                                                  "content": "y"}]}]}).encode(),
    "a bad time": json.dumps([{"mapping": {"a": {"parent": None, "message": {
        "author": {"role": "user"}, "create_time": "yesterday", "content": {"content_type": "text",
                                                                           "parts": ["hi"]}}}}}]).encode(),
    "a mapping that is a list": json.dumps([{"mapping": []}]).encode(),
    "nesting": b"[" * 200_000 + b"]" * 200_000,
}


@pytest.mark.parametrize("problem", list(BAD_FILES))
def test_a_bad_file_is_one_sentence_and_imports_nothing(store: Store, problem: str) -> None:
    good = json.loads(CHATGPT.read_text())
    store.create_conversation("m")
    before = store.list_conversations()
    data = BAD_FILES[problem]
    if problem in ("a bad time", "a mapping that is a list"):
        data = json.dumps([*good, *json.loads(data)]).encode()  # good conversations first: still nothing
    with pytest.raises(ImportFileError) as caught:
        import_bytes(store, data, "export.json")
    sentence = str(caught.value)
    assert "\n" not in sentence and sentence.endswith("nothing was imported.") and "export.json" in sentence
    assert store.list_conversations() == before


def test_a_huge_file_is_refused_before_it_is_read(store: Store, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "MAX_IMPORT_BYTES", 1000)
    big = tmp_path / "conversations.json"
    big.write_text(json.dumps([{"mapping": {}, "title": "x" * 2000}]))
    with pytest.raises(ImportFileError, match="larger than"):
        import_file(store, big)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("conversations.json", " " * 50_000 + "[]")  # small packed, large unpacked
    with pytest.raises(ImportFileError, match="larger than"):
        import_file(store, archive)
    assert store.list_conversations() == []


def test_the_store_writes_an_import_in_one_transaction(store: Store) -> None:
    fine = NewConversation(title="a", model="m", created="t", updated="t",
                           messages=(NewMessage(parent=None, role="user", content="hi", created="t"),))
    broken = NewConversation(title="b", model="m", created="t", updated="t",
                             messages=(NewMessage(parent=3, role="user", content="hi", created="t"),))
    with pytest.raises(ValueError, match="not an earlier message"):
        store.import_conversations([fine, broken])
    assert store.list_conversations() == []


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def test_history_import_and_export_from_the_command_line(haven_home: Path, tmp_path: Path) -> None:
    imported = cli("history", "import", str(CHATGPT), "--json")
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["format"] == "chatgpt" and [c["messages"] for c in report["conversations"]] == [7, 2]
    assert imported.stderr.startswith("Imported 2 conversation(s), 9 message(s)")
    lisbon = report["conversations"][0]["id"]

    exported = cli("history", "export", lisbon, "--format", "json", "--all-branches")
    [conversation] = json.loads(exported.stdout)["conversations"]
    assert len(conversation["messages"]) == 7 and conversation["branches"] == "all"
    again = tmp_path / "again.json"
    again.write_text(exported.stdout)
    plain = cli("history", "import", "-", stdin=again.read_text())
    assert plain.returncode == 0 and len(plain.stdout.split()) == 1

    bad = tmp_path / "bad.json"
    bad.write_text("{")
    failed = cli("history", "import", str(bad))
    assert failed.returncode == 1 and failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1
    assert cli("history", "import", str(tmp_path / "missing.json")).returncode == 1
    assert cli("history", "export", "--format", "md", "--all-branches").returncode == 2
    listing = json.loads(cli("history", "list", "--json").stdout)
    assert sorted(c["messages"] for c in listing) == [2, 7, 7]
