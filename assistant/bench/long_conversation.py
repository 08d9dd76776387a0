"""The long-conversation probe's material: a conversation of many exchanges, each reply with a code block
and a table, written into a probe's data folder through the ordinary :class:`~assistant.store.Store` API.

``haven-cli bench`` seeds it, then starts ``haven --bench-probe-long FILE`` (:mod:`ui.bench_probe`), which
opens it in the real window, streams one more reply of the same shape into it and reports how long the
opening took, the UI thread's longest stall while the reply streamed, and the process's memory.
"""

from __future__ import annotations

from pathlib import Path

from assistant.chat import StopReason
from assistant.store import ReplyUpdate, Store

__all__ = ["LONG_EXCHANGES", "STREAM_SECONDS", "long_reply", "seed_long_conversation", "user_message"]

LONG_EXCHANGES = 1000
STREAM_SECONDS = 4.0  # how long the probe's streamed reply takes to arrive, as a model at ~60 tokens/s would
TOPICS = ("caching", "logging", "retries", "parsing", "sorting", "testing", "profiling", "packaging")


def user_message(index: int) -> str:
    return f"Question {index}: what is a good way to handle {TOPICS[index % len(TOPICS)]} in a small tool?"


def long_reply(index: int) -> str:
    """A reply of the shape that cost the old transcript most: a paragraph, a code block, a table."""
    topic = TOPICS[index % len(TOPICS)]
    return (
        f"Here is answer {index} about **{topic}**. It explains the idea in a few sentences, so the paragraph "
        f"wraps over more than one line in the window, as real replies do, and it names `step_{index}`.\n\n"
        f"```python\ndef step_{index}(values: list[int]) -> int:\n    total = 0\n    for value in values:\n"
        f"        total += value * {index}  # {topic}\n    return total\n```\n\n"
        f"| option | time | memory |\n|---|---|---|\n| first | {index} ms | 12 MB |\n"
        f"| second | {index * 2} ms | 30 MB |\n\n"
        "In short: pick the first option unless memory is tight.\n"
    )


def seed_long_conversation(database: Path, exchanges: int = LONG_EXCHANGES, model: str = "bench-model") -> str:
    """Write a conversation of ``exchanges`` user messages and replies; return its id."""
    with Store(database) as store:
        conversation = store.create_conversation(model, title=f"A long conversation ({exchanges} exchanges)")
        for index in range(1, exchanges + 1):
            store.add_user_message(conversation.id, user_message(index), model=model)
            reply = store.start_reply(conversation.id, model)
            store.finish_reply(reply, ReplyUpdate(content=long_reply(index), complete=True,
                                                  stop_reason=StopReason.END))
        return conversation.id
