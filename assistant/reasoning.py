"""Reasoning models: telling their thinking text from their answer, as the reply streams.

Models such as the DeepSeek-R1 distills and Qwen3 write ``<think>...</think>`` (some ``<thinking>``)
before the answer; gpt-oss writes OpenAI's harmony channels,
``<|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>...``.
:class:`ReasoningSplitter` takes the raw pieces in order and returns :class:`Segment` values: reasoning,
answer, and one empty segment with ``ends_reasoning`` when the thinking is over. It works piece by piece:
a marker split across pieces (``"<thi"`` + ``"nk>"``) is held back until it can be told from text, and
nothing else is held.

Rules, chosen so that an ordinary reply is never mistaken for thinking:

* An opening tag counts only before the answer has begun (only whitespace so far); later it is text,
  as it is in a reply that explains the tags. A closing tag counts only inside thinking.
* ``opened=True`` starts inside the thinking, for a chat template that already wrote ``<think>`` into
  the prompt (DeepSeek-R1's does): the model then writes only the closing tag.
  :func:`prompt_opens_reasoning` tells it from the prompt's last tokens.
* Harmony channel ``final`` is the answer; every other channel (``analysis``, ``commentary``) is
  reasoning. Its control markers are never shown.
* Whitespace around the thinking is trimmed, so ``<think>\\n...\\n</think>\\n\\nAnswer`` gives the
  reasoning without its blank lines and an answer starting at ``Answer``. A reply without thinking is
  given out exactly as written.

The splitter only sorts text. Both kinds still go through the safety filter before anything is shown
(:mod:`assistant.generation`), and reasoning is never sent back to a model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Protocol, runtime_checkable

from assistant.chat import ChatMessage, Role

__all__ = ["Channel", "PromptTokens", "ReasoningSplitter", "Segment", "prompt_opens_reasoning", "template_opens"]

log = logging.getLogger(__name__)

OPEN_TAGS = ("<think>", "<thinking>")
CLOSE_TAGS = ("</think>", "</thinking>")
HARMONY_HEADER = ("<|channel|>", "<|start|>")
HARMONY_MESSAGE = "<|message|>"
HARMONY_END = "<|end|>"
HARMONY_DROP = ("<|return|>", "<|call|>")
MARKERS = (*OPEN_TAGS, *CLOSE_TAGS, *HARMONY_HEADER, HARMONY_MESSAGE, HARMONY_END, *HARMONY_DROP)
_PATTERN = re.compile("|".join(re.escape(m) for m in sorted(MARKERS, key=len, reverse=True)))
_LONGEST = max(map(len, MARKERS))


class Channel(StrEnum):
    REASONING = "reasoning"
    ANSWER = "answer"


@dataclass(frozen=True, slots=True)
class Segment:
    channel: Channel
    text: str = ""
    ends_reasoning: bool = False  # the thinking is over (text is empty)


class _Mode(Enum):
    ANSWER = "answer"
    REASONING = "reasoning"
    HEADER = "header"    # inside a harmony header, up to <|message|>
    BETWEEN = "between"  # after a harmony <|end|>, before the next header


class ReasoningSplitter:
    """Sorts one reply's raw pieces into reasoning and answer. One instance per reply."""

    def __init__(self, *, opened: bool = False) -> None:
        self._mode = _Mode.REASONING if opened else _Mode.ANSWER
        self._pending = ""             # the start of what may be a marker
        self._header = ""
        self._answer_started = False
        self._reasoning_open = opened
        self._reasoning_seen = opened
        self._reasoning_started = False  # any reasoning text given out yet
        self._held_space = ""            # whitespace at the end of the reasoning so far
        self._held_answer_space = ""     # whitespace before the answer's first text
        self._harmony = False

    @property
    def reasoning_open(self) -> bool:
        return self._reasoning_open

    def feed(self, text: str) -> list[Segment]:
        return self._process(self._pending + text, final=False)

    def finish(self) -> list[Segment]:
        """The reply ended: give out what was held, and end the thinking if it never closed."""
        out = self._process(self._pending, final=True)
        self._close_reasoning(out)
        if self._held_answer_space and not self._reasoning_seen:
            out.append(Segment(Channel.ANSWER, self._held_answer_space))  # a reply of only whitespace
        return _merged(out)

    # -- scanning ------------------------------------------------------------------------------

    def _process(self, buffer: str, *, final: bool) -> list[Segment]:
        out: list[Segment] = []
        position = 0
        for match in _PATTERN.finditer(buffer):
            self._text(buffer[position:match.start()], out)
            self._marker(match.group(), out)
            position = match.end()
        rest = buffer[position:]
        hold = len(rest) if final else _partial_marker_at(rest)
        self._pending = rest[hold:]
        self._text(rest[:hold], out)
        return _merged(out)

    def _text(self, text: str, out: list[Segment]) -> None:
        if not text:
            return
        if self._mode is _Mode.ANSWER:
            self._answer(text, out)
        elif self._mode is _Mode.REASONING:
            self._reasoning(text, out)
        elif self._mode is _Mode.HEADER:
            self._header += text
        # BETWEEN: harmony's role names and the like, never shown

    def _marker(self, marker: str, out: list[Segment]) -> None:
        mode = self._mode
        if marker in OPEN_TAGS:
            if mode is _Mode.ANSWER and not self._answer_started:
                self._mode, self._reasoning_open, self._reasoning_seen = _Mode.REASONING, True, True
            elif mode is not _Mode.REASONING:
                self._text(marker, out)  # an answer that mentions the tag
        elif marker in CLOSE_TAGS:
            if mode is _Mode.REASONING:
                self._close_reasoning(out)
                self._mode = _Mode.ANSWER
            elif self._answer_started:
                self._text(marker, out)
        elif marker in HARMONY_HEADER:
            self._harmony, self._mode, self._header, self._reasoning_seen = True, _Mode.HEADER, "", True
        elif marker == HARMONY_MESSAGE and mode is _Mode.HEADER:
            channel, self._header = self._header.strip().lower(), ""
            if self._answer_started or channel.startswith("final"):
                self._close_reasoning(out)
                self._mode = _Mode.ANSWER
            else:
                if self._reasoning_started:
                    self._held_space = "\n\n"  # a second thinking message: a paragraph between them
                self._mode, self._reasoning_open, self._reasoning_seen = _Mode.REASONING, True, True
        elif marker == HARMONY_END and self._harmony:
            self._mode = _Mode.BETWEEN
        # Anything else (<|return|>, <|call|>, a stray <|message|> or <|end|>) is a control marker: dropped.

    # -- giving out ----------------------------------------------------------------------------

    def _answer(self, text: str, out: list[Segment]) -> None:
        if not self._answer_started:
            # Whitespace before the answer is held: after thinking it is dropped (the blank lines after
            # </think>); in a reply without thinking it is given out with the first text after it.
            text = self._held_answer_space + text
            body = text.lstrip()
            if not body:
                self._held_answer_space = text
                return
            self._answer_started, self._held_answer_space = True, ""
            if self._reasoning_seen:
                text = body
        out.append(Segment(Channel.ANSWER, text))

    def _reasoning(self, text: str, out: list[Segment]) -> None:
        text = self._held_space + text
        if not self._reasoning_started:
            text = text.lstrip()
        body = text.rstrip()
        self._held_space = text[len(body):]
        if body:
            self._reasoning_started = True
            out.append(Segment(Channel.REASONING, body))

    def _close_reasoning(self, out: list[Segment]) -> None:
        if self._reasoning_open:
            self._reasoning_open, self._held_space = False, ""
            out.append(Segment(Channel.REASONING, "", ends_reasoning=True))


def _partial_marker_at(text: str) -> int:
    """Where the unfinished marker at the end of ``text`` starts (``len(text)`` when there is none)."""
    for start in range(max(0, len(text) - _LONGEST + 1), len(text)):
        if text[start] == "<" and any(m.startswith(text[start:]) for m in MARKERS):
            return start
    return len(text)


def _merged(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for segment in segments:
        last = merged[-1] if merged else None
        if (last is not None and last.channel is segment.channel and not last.ends_reasoning
                and not segment.ends_reasoning):
            merged[-1] = Segment(last.channel, last.text + segment.text)
        else:
            merged.append(segment)
    return merged


def prompt_opens_reasoning(prompt_tail: str) -> bool:
    """Whether a prompt ending in ``prompt_tail`` leaves the model inside its thinking: an opening tag
    after the last closing one (DeepSeek-R1's template ends its prompt with ``<think>\\n``)."""
    opened = max(prompt_tail.rfind(tag) for tag in OPEN_TAGS)
    closed = max(prompt_tail.rfind(tag) for tag in CLOSE_TAGS)
    return opened > closed


@runtime_checkable
class PromptTokens(Protocol):
    """The members of :class:`assistant.engine.Engine` that show the rendered prompt's tokens."""

    def tokenize_chat(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]: ...

    def token_text(self, token: int) -> str: ...


_PROBE = (ChatMessage(Role.SYSTEM, "."), ChatMessage(Role.USER, "Hello"))
_TAIL_TOKENS = 12


def template_opens(engine: object) -> bool:
    """Whether the loaded model's chat template opens the thinking in the prompt itself: its generation
    prompt, rendered for a probe conversation, ends inside ``<think>``. False for an engine that cannot
    show its prompt's tokens, or when asking fails (then the reply is read as starting outside)."""
    if not isinstance(engine, PromptTokens):
        return False
    try:
        tokens = engine.tokenize_chat(list(_PROBE), True)
        return prompt_opens_reasoning("".join(engine.token_text(t) for t in tokens[-_TAIL_TOKENS:]))
    except Exception:
        log.warning("could not read the chat template's generation prompt; reading replies as not opened",
                    exc_info=True)
        return False
