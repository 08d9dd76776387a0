"""Turning messages into the model's prompt: its own chat template, rendered safely.

Output is a list of *fragments*: ``int`` for a control token the template itself placed (``<|im_start|>``,
BOS, ``[INST]`` where that is a control token), ``str`` for raw text to tokenize with special-token parsing
off. Message content only ever becomes raw text, so control strings a person types (``<|im_end|>``,
``<|eot_id|>``, ``<<SYS>>`` ...) reach the model as plain text, never as control tokens.

This mirrors how llama.cpp tokenizes a string with special tokens enabled (split on control-token text,
then tokenize each raw piece), except that the split is applied to the template's own text only.

Formats:
* ``jinja``: the GGUF's ``tokenizer.chat_template``, rendered in Jinja's immutable sandbox, bounded in time
  and size by :mod:`assistant.engine.template_limits`.
* ``llama-2``: Meta's reference Llama 2 chat format, written out exactly as Meta's ``generation.py``
  builds it (``[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} `` with BOS/EOS tokens).
* ``chatml``: the fallback for a model without a template.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import Template, TemplateError

from assistant.chat import ChatMessage, Role
from assistant.engine.template_limits import (
    MAX_RENDER_SECONDS,
    MAX_TEMPLATE_CHARS,
    LimitedEnvironment,
    TemplateLimitError,
)
from assistant.errors import ModelError

__all__ = ["ChatFormatter", "Fragment", "detect_format"]

log = logging.getLogger(__name__)

Fragment = int | str

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Meta's reference strings (llama/generation.py of the Llama 2 release).
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"

_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def detect_format(template: str | None, model_name: str = "", override: str | None = None) -> str:
    """Pick the format: an explicit override, Meta's reference for Llama 2 chat, else the GGUF template."""
    if override:
        return override
    if template and "<<SYS>>" in template and "[INST]" in template:
        return "llama-2"
    if not template:
        return "llama-2" if re.search(r"llama[-_ ]?2.*chat", model_name, re.IGNORECASE) else "chatml"
    return "jinja"


def _raise_exception(message: str) -> NoReturn:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    # strftime pads to any width a format asks for ("%0999999d"); Python gives up past 256 times the
    # format's length, so a short format keeps the result short. Real formats are a few characters.
    if len(fmt) > 100:
        raise TemplateError("strftime_now was given a format too long to be a date")
    return datetime.now().strftime(fmt)


def _brief(exc: BaseException) -> str:
    """An exception's text cut to a length a sentence can carry (a template writes its own messages)."""
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


@dataclass(frozen=True, slots=True)
class TokenNames:
    bos_id: int | None
    eos_id: int | None
    bos_text: str
    eos_text: str


class ChatFormatter:
    """Renders messages for one model. ``control_tokens`` maps each control token's text to its id."""

    def __init__(
        self,
        format_name: str,
        template: str | None,
        control_tokens: Mapping[str, int],
        tokens: TokenNames,
        *,
        add_bos: bool,
    ) -> None:
        self.format_name = format_name
        self._control = dict(control_tokens)
        self._tokens = tokens
        self._add_bos = add_bos
        # Longest first so that e.g. "<|im_end|>" wins over a shorter control token it contains.
        names = sorted((t for t in self._control if t), key=len, reverse=True)
        self._control_pattern = re.compile("|".join(map(re.escape, names))) if names else None
        self._template: Template | None = None
        self._env = LimitedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        if format_name in ("jinja", "chatml"):
            source = template if format_name == "jinja" and template else CHATML_TEMPLATE
            self._env.globals["raise_exception"] = _raise_exception
            self._env.globals["strftime_now"] = _strftime_now
            try:
                self._template = self._env.from_string(source)
            except TemplateError as exc:
                raise ModelError(
                    f"This model's chat template cannot be read ({_brief(exc)}). Choose another model, or "
                    "set its chat format explicitly."
                ) from exc

    def render(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> list[Fragment]:
        if self.format_name == "llama-2":
            return self._render_llama2(messages)
        return self._render_jinja(messages, add_generation_prompt)

    # -- Meta's reference format ---------------------------------------------------------------

    def _render_llama2(self, messages: Sequence[ChatMessage]) -> list[Fragment]:
        bos, eos = self._tokens.bos_id, self._tokens.eos_id
        if bos is None or eos is None:
            raise ModelError("This model has no BOS/EOS tokens, so the Llama 2 chat format cannot be used.")
        dialog = [m for m in messages]
        if dialog and dialog[0].role is Role.SYSTEM:
            system, rest = dialog[0], dialog[1:]
            if rest:
                rest[0] = ChatMessage(rest[0].role, B_SYS + system.content + E_SYS + rest[0].content)
            dialog = rest
        if not dialog or dialog[-1].role is not Role.USER:
            raise ModelError("The Llama 2 chat format needs the conversation to end with a user message.")
        fragments: list[Fragment] = []
        turns = dialog[:-1]
        for prompt, answer in zip(turns[::2], turns[1::2], strict=False):
            text = f"{B_INST} {prompt.content.strip()} {E_INST} {answer.content.strip()} "
            fragments += [bos, text, eos]
        fragments += [bos, f"{B_INST} {dialog[-1].content.strip()} {E_INST}"]
        return fragments

    # -- the GGUF's own template ---------------------------------------------------------------

    def _render_jinja(self, messages: Sequence[ChatMessage], add_generation_prompt: bool) -> list[Fragment]:
        # One deadline for every attempt below, so a hostile template costs MAX_RENDER_SECONDS once, not four times.
        deadline = time.monotonic() + MAX_RENDER_SECONDS
        contents = [m.content.strip() for m in messages]
        placeholders = [{"role": m.role.value, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]
        rendered = self._render_template(placeholders, add_generation_prompt, deadline)
        found = [int(i) for i in _SENTINEL.findall(rendered)]
        if sorted(found) != list(range(len(messages))):
            # The template transforms message text (it is not only placed): render the real text, with
            # control strings in it defused, so they still cannot become control tokens.
            log.warning("chat template rewrites message content; defusing control strings instead")
            real = [{"role": m.role.value, "content": self._defuse(c)} for m, c in zip(messages, contents, strict=True)]
            return self._with_bos(self._split_controls(self._render_template(real, add_generation_prompt, deadline)))
        fragments: list[Fragment] = []
        position = 0
        for match in _SENTINEL.finditer(rendered):
            fragments += self._split_controls(rendered[position : match.start()])
            fragments.append(contents[int(match.group(1))])
            position = match.end()
        fragments += self._split_controls(rendered[position:])
        return self._with_bos(_merge_text(fragments))

    def _render_template(self, messages: list[dict[str, str]], add_generation_prompt: bool, deadline: float) -> str:
        variables: dict[str, Any] = {
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self._tokens.bos_text,
            "eos_token": self._tokens.eos_text,
        }
        try:
            return self._render_once(variables, deadline)
        except TemplateError as exc:
            if messages and messages[0]["role"] == "system" and len(messages) > 1:
                # Some templates (Gemma's, for one) refuse a system role: put it before the first user turn.
                merged = [{"role": messages[1]["role"],
                           "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
                try:
                    return self._render_once({**variables, "messages": merged + messages[2:]}, deadline)
                except TemplateError:
                    pass
            raise ModelError(
                f"This model's chat template failed ({_brief(exc)}). Choose another model or set its chat format."
            ) from exc

    def _render_once(self, variables: dict[str, Any], deadline: float) -> str:
        """One render; a ``TemplateError`` passes through (the caller may retry), anything else is a sentence."""
        assert self._template is not None
        # The template's own text gets MAX_TEMPLATE_CHARS; the messages it places get room for twice their size,
        # so a long paste is refused by the context check, with its numbers, not here.
        given = sum(len(m["content"]) for m in variables["messages"])
        try:
            return self._env.render_limited(
                self._template, variables, deadline=deadline, max_chars=MAX_TEMPLATE_CHARS + 2 * given
            )
        except TemplateError:
            raise
        except TemplateLimitError as exc:
            raise ModelError(
                f"This model's chat template {exc}, so Haven stopped it. Choose another model, or set its chat "
                "format explicitly."
            ) from exc
        except Exception as exc:  # the sandbox's refusals and anything a hostile template raises
            raise ModelError(
                f"This model's chat template tried something Haven does not allow ({type(exc).__name__}); "
                "it was not run. Choose another model."
            ) from exc

    def _split_controls(self, text: str) -> list[Fragment]:
        if not text:
            return []
        if self._control_pattern is None:
            return [text]
        fragments: list[Fragment] = []
        position = 0
        for match in self._control_pattern.finditer(text):
            if match.start() > position:
                fragments.append(text[position : match.start()])
            fragments.append(self._control[match.group(0)])
            position = match.end()
        if position < len(text):
            fragments.append(text[position:])
        return fragments

    def _defuse(self, text: str) -> str:
        if self._control_pattern is None:
            return text
        return self._control_pattern.sub(lambda m: m.group(0)[0] + "\u2060" + m.group(0)[1:], text)

    def _with_bos(self, fragments: list[Fragment]) -> list[Fragment]:
        bos = self._tokens.bos_id
        if self._add_bos and bos is not None and (not fragments or fragments[0] != bos):
            return [bos, *fragments]
        return fragments


def _merge_text(fragments: list[Fragment]) -> list[Fragment]:
    """Join neighbouring raw-text pieces so they tokenize as one string, as llama.cpp would."""
    merged: list[Fragment] = []
    for fragment in fragments:
        if isinstance(fragment, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + fragment
        elif fragment != "":
            merged.append(fragment)
    return merged
