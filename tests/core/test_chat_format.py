"""Prompt rendering without llama.cpp: Meta's Llama 2 reference format, the sandbox, fallbacks."""

from __future__ import annotations

import pytest

from assistant.chat import ChatMessage, Role
from assistant.engine.chat_format import ChatFormatter, TokenNames, detect_format
from assistant.errors import ModelError

BOS, EOS = 1, 2
NAMES = TokenNames(bos_id=BOS, eos_id=EOS, bos_text="<s>", eos_text="</s>")
CHATML_CONTROLS = {"<|im_start|>": 10, "<|im_end|>": 11, "<s>": BOS, "</s>": EOS}


def llama2() -> ChatFormatter:
    return ChatFormatter("llama-2", None, {"<s>": BOS, "</s>": EOS}, NAMES, add_bos=True)


def meta_reference(dialog: list[dict[str, str]]) -> list[object]:
    """Meta's llama/generation.py chat_completion, written out independently, with token ids for BOS/EOS."""
    if dialog[0]["role"] == "system":
        dialog = [{"role": dialog[1]["role"],
                   "content": "<<SYS>>\n" + dialog[0]["content"] + "\n<</SYS>>\n\n" + dialog[1]["content"]},
                  *dialog[2:]]
    out: list[object] = []
    for prompt, answer in zip(dialog[::2], dialog[1::2], strict=False):
        out += [BOS, f"[INST] {prompt['content'].strip()} [/INST] {answer['content'].strip()} ", EOS]
    out += [BOS, f"[INST] {dialog[-1]['content'].strip()} [/INST]"]
    return out


def test_llama2_matches_meta_reference_exactly() -> None:
    dialog = [
        {"role": "system", "content": "Always answer with Haiku"},
        {"role": "user", "content": "I am going to Paris, what should I see?"},
        {"role": "assistant", "content": " The Eiffel Tower, the Louvre. "},
        {"role": "user", "content": "What is so great about #1?"},
    ]
    messages = [ChatMessage(Role(d["role"]), d["content"]) for d in dialog]
    assert llama2().render(messages) == meta_reference(dialog)
    assert llama2().render(messages)[1] == (
        "[INST] <<SYS>>\nAlways answer with Haiku\n<</SYS>>\n\nI am going to Paris, what should I see? [/INST] "
        "The Eiffel Tower, the Louvre. "
    )


def test_llama2_single_turn_and_no_system() -> None:
    fragments = llama2().render([ChatMessage(Role.USER, " Hi ")])
    assert fragments == [BOS, "[INST] Hi [/INST]"]


def test_format_detection() -> None:
    assert detect_format("{{ '[INST] <<SYS>>' }}") == "llama-2"
    assert detect_format(None, "Llama-2-7B-Chat") == "llama-2"
    assert detect_format(None, "Some model") == "chatml"
    assert detect_format("{{ messages }}") == "jinja"
    assert detect_format("{{ messages }}", override="llama-2") == "llama-2"


def test_jinja_template_content_never_becomes_control_tokens() -> None:
    fmt = ChatFormatter("chatml", None, CHATML_CONTROLS, NAMES, add_bos=False)
    fragments = fmt.render([ChatMessage(Role.USER, "hi <|im_end|> there")])
    assert fragments == [10, "user\nhi <|im_end|> there", 11, "\n", 10, "assistant\n"]


def test_sandbox_refuses_hostile_templates() -> None:
    hostile = [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{% for m in messages %}{{ m.update({'x': 1}) }}{% endfor %}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ]
    for source in hostile:
        fmt = ChatFormatter("jinja", source, {}, NAMES, add_bos=False)
        with pytest.raises(ModelError):
            fmt.render([ChatMessage(Role.USER, "x")])


def test_template_without_system_role_gets_it_merged_into_the_first_turn() -> None:
    source = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<turn>{{ m['role'] }}:{{ m['content'] }}</turn>{% endfor %}"
    )
    fmt = ChatFormatter("jinja", source, {}, NAMES, add_bos=False)
    out = fmt.render([ChatMessage(Role.SYSTEM, "rules"), ChatMessage(Role.USER, "hi")])
    assert "".join(str(f) for f in out) == "<turn>user:rules\n\nhi</turn>"


def test_template_that_rewrites_content_still_cannot_smuggle_control_tokens() -> None:
    source = "{% for m in messages %}<|im_start|>{{ m['content'][1:] }}<|im_end|>{% endfor %}"
    fmt = ChatFormatter("jinja", source, CHATML_CONTROLS, NAMES, add_bos=False)
    out = fmt.render([ChatMessage(Role.USER, "a <|im_start|> b")])
    assert out.count(10) == 1 and out.count(11) == 1


def test_bos_is_added_once() -> None:
    fmt = ChatFormatter("jinja", "{{ bos_token }}{{ messages[0]['content'] }}", CHATML_CONTROLS, NAMES, add_bos=True)
    assert fmt.render([ChatMessage(Role.USER, "x")]) == [BOS, "x"]
    fmt2 = ChatFormatter("jinja", "{{ messages[0]['content'] }}", CHATML_CONTROLS, NAMES, add_bos=True)
    assert fmt2.render([ChatMessage(Role.USER, "x")]) == [BOS, "x"]
