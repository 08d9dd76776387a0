"""The store's message tree on a real SQLite file: a round-1 database migrates to one chain, siblings are
numbered for "2 / 3" switches, switching returns to the branch last on screen, and deep trees are cheap."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from assistant.branches import MessageTree
from assistant.chat import StopReason
from assistant.schema import MIGRATIONS
from assistant.store import MessageNotFoundError, ReplyUpdate, Store

ROUND_ONE_SCHEMA = MIGRATIONS[0][1]


def reply(store: Store, conversation: str, text: str, **kw: object) -> int:
    message = store.start_reply(conversation, "m", **kw)  # type: ignore[arg-type]
    store.finish_reply(message, ReplyUpdate(content=text, complete=True, stop_reason=StopReason.END))
    return message


def contents(messages: list) -> list[str]:
    return [m.content for m in messages]


def test_a_round_one_database_migrates_to_one_chain_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(ROUND_ONE_SCHEMA)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    db.execute("INSERT INTO migrations VALUES ('0001_conversations_and_messages', '2025-01-01')")
    for cid in ("a", "b"):
        db.execute("INSERT INTO conversations VALUES (?, 'T', 'm', '', '2025-01-01', '2025-01-01')", (cid,))
    rows = [("a", "user", "one"), ("b", "user", "other"), ("a", "assistant", "two"), ("a", "user", "three"),
            ("a", "assistant", "four")]
    for cid, role, text in rows:
        db.execute("INSERT INTO messages (conversation_id, role, content, created) VALUES (?, ?, ?, '2025-01-01')",
                   (cid, role, text))
    db.commit()
    db.close()

    with Store(path) as store:
        assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
        chain = store.messages("a")
        assert contents(chain) == ["one", "two", "three", "four"]
        assert [m.parent_id for m in chain] == [None, chain[0].id, chain[1].id, chain[2].id]
        assert all((m.sibling_index, m.sibling_count, m.reasoning, m.reasoning_ms) == (1, 1, "", None)
                   for m in chain)
        assert contents(store.messages("b")) == ["other"]
        assert store.current_id("a") == chain[-1].id
        # The conversation carries on from the end of the chain.
        new = store.add_user_message("a", "five")
        assert store.message("a", new).parent_id == chain[-1].id
        assert store.integrity_ok()


def test_siblings_are_numbered_and_messages_is_the_branch_on_screen(tmp_path: Path) -> None:
    with Store(tmp_path / "c.sqlite3") as store:
        cid = store.create_conversation("m").id
        question = store.add_user_message(cid, "Capital of France?")
        first = reply(store, cid, "Paris.")
        second = reply(store, cid, "It is Paris.", parent_id=question)
        third = reply(store, cid, "Paris, on the Seine.", parent_id=question)

        on_screen = store.messages(cid)
        assert contents(on_screen) == ["Capital of France?", "Paris, on the Seine."]
        assert [(m.sibling_index, m.sibling_count) for m in on_screen] == [(1, 1), (3, 3)]
        assert [m.id for m in store.all_messages(cid)] == [question, first, second, third]
        assert store.list_conversations()[0].messages == 4, "the listing counts every branch"

        assert contents(store.switch_branch(cid, third, -1)) == ["Capital of France?", "It is Paris."]
        assert store.messages(cid)[-1].id == second
        assert store.switch_branch(cid, second, -1)[-1].id == first
        # No sibling before the first one: nothing changes.
        assert store.switch_branch(cid, first, -1)[-1].id == first
        assert store.current_id(cid) == first
        with pytest.raises(MessageNotFoundError, match="no message"):
            store.switch_branch(cid, 99_999, 1)


def test_switching_back_returns_to_the_leaf_last_on_screen_under_that_sibling(tmp_path: Path) -> None:
    with Store(tmp_path / "c.sqlite3") as store:
        cid = store.create_conversation("m").id
        q1 = store.add_user_message(cid, "q1")
        a1 = reply(store, cid, "a1")
        store.add_user_message(cid, "q2")
        a2 = reply(store, cid, "a2")
        a2b = reply(store, cid, "a2b", parent_id=store.message(cid, a2).parent_id)
        # A second version of q1, with its own answer.
        q1b = store.add_user_message(cid, "q1b", parent_id=None)
        reply(store, cid, "a1b")
        assert contents(store.messages(cid)) == ["q1b", "a1b"]
        assert store.message(cid, q1b).sibling_index == 2 and store.message(cid, q1).sibling_count == 2

        # Back to the first version: its branch as last seen, down to a2b (the newer of the two replies).
        assert contents(store.switch_branch(cid, q1b, -1)) == ["q1", "a1", "q2", "a2b"]
        # Look at a2, go to the other version of q1 and back: a2 is what comes back, not the newest reply.
        store.switch_branch(cid, a2b, -1)
        store.switch_branch(cid, q1, +1)
        assert contents(store.switch_branch(cid, q1b, -1)) == ["q1", "a1", "q2", "a2"]
        assert a1 in {m.id for m in store.messages(cid)} and a2b not in {m.id for m in store.messages(cid)}


def test_set_current_and_an_empty_branch(tmp_path: Path) -> None:
    with Store(tmp_path / "c.sqlite3") as store:
        cid = store.create_conversation("m").id
        assert store.messages(cid) == [] and store.current_id(cid) is None
        q = store.add_user_message(cid, "hello")
        reply(store, cid, "hi")
        store.set_current(cid, None)
        assert store.messages(cid) == [] and len(store.all_messages(cid)) == 2
        # A message sent now starts a second version of the first message.
        again = store.add_user_message(cid, "hello again")
        assert store.message(cid, again).parent_id is None
        assert [(m.sibling_index, m.sibling_count) for m in store.messages(cid)] == [(2, 2)]
        store.set_current(cid, q)
        assert contents(store.messages(cid)) == ["hello"]
        with pytest.raises(MessageNotFoundError):
            store.set_current(cid, 12345)


def test_deleting_a_message_takes_its_subtree_and_shows_a_sibling(tmp_path: Path) -> None:
    with Store(tmp_path / "c.sqlite3") as store:
        cid = store.create_conversation("m").id
        q = store.add_user_message(cid, "q")
        reply(store, cid, "old answer")
        new = reply(store, cid, "new answer", parent_id=q)
        store.add_user_message(cid, "follow-up")
        reply(store, cid, "follow-up answer")
        store.delete_message(cid, new)
        assert contents(store.messages(cid)) == ["q", "old answer"]
        assert contents(store.all_messages(cid)) == ["q", "old answer"]
        store.delete_messages_from(cid, q)  # the old name still works
        assert store.all_messages(cid) == [] and store.messages(cid) == []
        store.delete_message(cid, 424242)  # gone already: nothing to do


def test_a_deep_conversation_reads_and_deletes_without_recursion(tmp_path: Path) -> None:
    """SQLite's foreign-key cascades and Python recursion both stop at about a thousand levels; the tree
    uses neither, so a 3,000-message chain reads, switches and deletes."""
    with Store(tmp_path / "c.sqlite3") as store:
        cid = store.create_conversation("m").id
        with store._transaction() as db:  # a fast bulk write: one transaction instead of 3,000 fsyncs
            parent = None
            for i in range(3000):
                cursor = db.execute(
                    "INSERT INTO messages (conversation_id, role, content, created, parent_id, active)"
                    " VALUES (?, ?, ?, 'x', ?, ?)", (cid, "user" if i % 2 == 0 else "assistant", f"m{i}", parent, i))
                parent = cursor.lastrowid
        chain = store.messages(cid)
        assert len(chain) == 3000 and chain[-1].content == "m2999"
        assert [m.content for m in store.switch_branch(cid, chain[1500].id, 1)] == [m.content for m in chain]
        store.delete_message(cid, chain[1].id)
        assert [m.content for m in store.messages(cid)] == ["m0"]
        store.delete_conversation(cid)
        assert store.all_messages(cid) == []


def test_replies_keep_their_reasoning(tmp_path: Path) -> None:
    with Store(tmp_path / "c.sqlite3") as store:
        cid = store.create_conversation("m").id
        store.add_user_message(cid, "2+2?")
        message = store.start_reply(cid, "m")
        store.save_partial_reply(message, "", "Adding two and")
        assert store.messages(cid)[-1].reasoning == "Adding two and"
        store.finish_reply(message, ReplyUpdate(content="4", complete=True, stop_reason=StopReason.END,
                                                reasoning="Adding two and two.", reasoning_ms=812.5))
        stored = store.messages(cid)[-1]
        assert (stored.content, stored.reasoning, stored.reasoning_ms) == ("4", "Adding two and two.", 812.5)


def test_a_damaged_tree_cannot_loop() -> None:
    """Rows edited by hand (or by a bug) into a cycle, or naming a missing parent, still read."""
    tree = MessageTree([(1, 3, 1), (2, 1, 2), (3, 2, 3), (4, 99, 4), (5, 4, 5)])
    assert tree.path_to(5) == [4, 5]  # the missing parent reads as none
    assert tree.path_to(3) == [1, 2, 3]
    assert tree.latest_leaf(None) == 5 and tree.latest_leaf(1) == 1
    assert sorted(tree.subtree(1)) == [1, 2, 3]
    assert tree.position(5) == (1, 1) and tree.position(4) == (1, 1)
