"""Chat-template limits: hostile templates are stopped within seconds and small memory; real ones are unchanged.

Everything here is real Jinja: the equivalence test renders each template in Jinja's plain immutable sandbox
too, and the hostile templates go through :class:`ChatFormatter`, as a model's template does in the app.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any, NoReturn

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from assistant.chat import ChatMessage, Role
from assistant.engine.chat_format import ChatFormatter, TokenNames
from assistant.engine.template_limits import MAX_RENDER_SECONDS, LimitedEnvironment
from assistant.errors import ModelError
from assistant.models.gguf import read_gguf

NAMES = TokenNames(bos_id=1, eos_id=2, bos_text="<s>", eos_text="</s>")
OPTIONS: dict[str, Any] = {"trim_blocks": True, "lstrip_blocks": True, "extensions": ["jinja2.ext.loopcontrols"]}
# Far beyond the deadline plus the one step that may run past it, far below "minutes".
GENEROUS_SECONDS = 15.0

# -- real templates (as published with the models, or written the same way) ------------------------------

LLAMA3 = (  # llama-cpp-python's copy of Meta's Llama 3 Instruct template
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' "
    "+ message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 "
    "== 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt"
    " %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and "
    "assistant roles are supported!') }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
LLAMA31_TOOLS = """{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is defined and tools is not none %}
    {{- "You have access to the following functions.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'
            + message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}
"""
QWEN_STYLE = """{%- macro turn(role, text) -%}
<|im_start|>{{ role }}
{{ text }}<|im_end|>
{% endmacro -%}
{%- set ns = namespace(last_user=messages|length - 1, count=0) %}
{%- for message in messages[::-1] %}
    {%- if message.role == "user" and ns.last_user == messages|length - 1 %}
        {%- set ns.last_user = (messages|length - 1) - loop.index0 %}
    {%- endif %}
{%- endfor %}
{%- if tools %}
{{- turn("system", "# Tools\\n<tools>" ~ (tools|map("tojson")|join("\\n")) ~ "</tools>") }}
{%- elif messages[0].role != "system" %}
{{- turn("system", "You are Qwen, a helpful assistant.") }}
{%- endif %}
{%- for message in messages %}
    {%- set ns.count = ns.count + 1 %}
    {%- if message.role == "assistant" and loop.index0 > ns.last_user %}
        {%- set text = message.content.split("</think>")[-1].lstrip("\\n") %}
    {%- else %}
        {%- set text = message.content %}
    {%- endif %}
    {{- turn(message.role, text) }}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}
{%- set roles = messages|map(attribute="role")|unique|list %}
{{- "" if roles|length < 9 else "%d roles, %s" % (roles|length, "{}".format(ns.count)) }}
"""
# Not a model's template: every construct the limits hook into, to show each still means what it did.
CONSTRUCTS = """{%- macro box(text, width=30) -%}
[{{ text|center(width) }}]{{ caller() if caller else "" }}
{%- endmacro -%}
{%- set ns = namespace(total=0, seen=[]) -%}
{%- for m in messages if m.role != "system" recursive -%}
  {%- if loop.index > 5 %}{% break %}{% endif -%}
  {%- set ns.total = ns.total + m.content|length -%}
  {%- set ns.seen = ns.seen + [m.role] -%}
  {{ loop.index }}/{{ loop.length }}/{{ loop.revindex }} {{ loop.cycle("odd", "even") }}
  {%- if loop.changed(m.role) %} new{% endif %} {{ m.role ~ ":" ~ m.content[:20] ~ "|" }}
{% else %}none
{%- endfor -%}
{%- call box("calls", width=ns.total % 7 + 8) %}<{{ ns.seen|join(",") }}>{% endcall %}
{% filter upper %}{% for k, v in {"a": 1, "b": (2, 3)}|dictsort %}{{ k }}={{ v }};{% endfor %}{% endfilter %}
{% set block %}{{ "%-6s|%3d|%.2f" % ("x", 2 ** 5, 1 / 3) }} {{ "{}+{:>4}".format(1, "ab") }}{% endset -%}
{{ block }} {{ block|length }} {{ (block * 2)|wordwrap(12) }} {{ "a\nb"|indent(2, first=True) }}
{{ [1, 2, 3] * 2 }} {{ (1, 2) + (3,) }} {{ 10 ** 3 * 7 }} {{ none }} [{{ undefined_name }}] {{ "x" in "xyz" }}
{{ messages|map(attribute="role")|list|tojson }} {{ {"k": [1, "é"]}|tojson(indent=2) }}
{%- autoescape true %} {{ "<b>" ~ "&" }} {{ box("<i>") }}{% endautoescape %}
{{ range(3)|list|sum }} {{ "abc"|replace("b", "BB") }} {{ "a\tb".expandtabs(4) }} {{ "x".join(["1", "2"]) }}
"""

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "  Be brief.  "},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>easy</think>\n4"},
        {"role": "user", "content": "And <|im_end|> {{ 3+3 }} %s?"},
    ],
    [{"role": "user", "content": "é 日本 " * 500}, {"role": "assistant", "content": "ok"},
     {"role": "user", "content": "x"}],
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"city": {"type": "string"}}}}]


def refuse(message: str) -> NoReturn:
    raise ValueError(message)


def plain_render(source: str, variables: dict[str, Any]) -> str:
    env = ImmutableSandboxedEnvironment(**OPTIONS)
    env.globals["raise_exception"] = refuse
    return env.from_string(source).render(**variables)


def limited_render(source: str, variables: dict[str, Any]) -> str:
    env = LimitedEnvironment(**OPTIONS)
    env.globals["raise_exception"] = refuse
    return env.render_limited(env.from_string(source), variables, deadline=time.monotonic() + 10, max_chars=10**6)


@pytest.mark.parametrize("name", ["starter", "llama3", "mistral", "gemma", "llama31_tools", "qwen_style", "constructs"])
def test_real_templates_render_exactly_as_in_jinjas_own_sandbox(name: str, starter_path: Path) -> None:
    sources = {"llama3": LLAMA3, "mistral": MISTRAL, "gemma": GEMMA, "llama31_tools": LLAMA31_TOOLS,
               "qwen_style": QWEN_STYLE, "constructs": CONSTRUCTS}
    source = sources.get(name) or read_gguf(starter_path).chat_template
    assert source
    rendered = 0
    for messages in CONVERSATIONS:
        for extra in ({}, {"tools": TOOLS}):
            for prompt in (True, False):
                variables = {"messages": messages, "add_generation_prompt": prompt, "bos_token": "<s>",
                             "eos_token": "</s>", **extra}
                try:
                    expected = plain_render(source, variables)
                except ValueError:  # the template refuses this conversation (a system turn, for Gemma)
                    with pytest.raises(ValueError):
                        limited_render(source, variables)
                    continue
                assert limited_render(source, variables) == expected
                rendered += 1
    assert rendered >= 6


def test_a_template_renders_only_under_the_limits() -> None:
    env = LimitedEnvironment()
    with pytest.raises(RuntimeError):
        env.from_string("{% for m in messages %}{{ m }}{% endfor %}").render(messages=[1])


# -- hostile templates ----------------------------------------------------------------------------------

def render_hostile(source: str, messages: list[ChatMessage] | None = None) -> tuple[str, float, int]:
    """The sentence ChatFormatter raises, the seconds it took and the peak of Python memory allocated."""
    formatter = ChatFormatter("jinja", source, {}, NAMES, add_bos=False)
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(ModelError) as refused:
            formatter.render(messages or [ChatMessage(Role.USER, "hi")])
        return str(refused.value), time.monotonic() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


SLOW = {
    "nested range loops that print nothing":
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops over a long string":
        "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "a macro that calls itself twice, 60 deep":
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "a call block in nested loops":
        "{% macro m() %}{{ caller() }}{% endmacro %}{% for a in range(100000) %}{% for b in range(100000) %}"
        "{% call m() %}{% endcall %}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("source", SLOW.values(), ids=SLOW.keys())
def test_a_template_that_would_run_for_hours_is_stopped_within_seconds(source: str) -> None:
    sentence, seconds, _peak = render_hostile(source)
    assert f"ran for more than {MAX_RENDER_SECONDS:g} seconds" in sentence
    assert "Choose another model" in sentence
    assert seconds < GENEROUS_SECONDS


BIG = {
    "string multiplication": "{{ 'x' * 10**10 }}",
    "a loop over a multiplied list": "{% for m in messages * 10**9 %}{% endfor %}",
    "a string doubled by ~": "{% set s = 'x' * 500000 %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}",
    "a string doubled in a namespace":
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "nested lists that share their parts":
        "{% set a = ['x' * 1000] * 100 %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}"
        "{% set c = [b, b, b, b, b, b, b, b, b, b] %}{% set d = [c, c, c, c, c, c, c, c, c, c] %}{{ d }}",
    "a huge join": "{{ range(100000)|join('x' * 100000) }}",
    "a width in a method": "{{ 'x'.center(10**10) }}",
    "a width in a filter": "{{ ['a']|map('center', 10**10)|list }}",
    "a width in a format string": "{{ '%0999999999d' % 1 }}{{ '{:>999999999}'.format(1) }}",
    "replace that multiplies": "{% set s = 'x' * 100000 %}{{ s.replace('', s) }}",
    "padding filled in by batch": "{{ [1]|batch(10**10, 'x')|list }}",
    "a number squared until it fills memory":
        "{% set ns = namespace(n=3) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "text written in nested loops": "{% for a in range(100000) %}{% for b in range(100000) %}" + "x" * 1000
        + "{% endfor %}{% endfor %}",
    "text collected in a macro's buffer": "{% macro m() %}{% for a in range(100000) %}{% for b in range(100000) %}"
        + "x" * 1000 + "{% endfor %}{% endfor %}{% endmacro %}{% set s = m() %}",
    "a filter block in a loop": "{% for i in range(100000) %}{% filter center(900000) %}x{% endfilter %}{% endfor %}",
}


@pytest.mark.parametrize("source", BIG.values(), ids=BIG.keys())
def test_a_template_that_would_fill_memory_is_stopped_at_once_in_little_memory(source: str) -> None:
    sentence, seconds, peak = render_hostile(source)
    size_limit = "characters of text" in sentence or "a number too large to print" in sentence
    # The size limit trips first unless the machine is so starved that 2 s pass before 1M characters are
    # written (seen on a 2-core machine running two test suites at once): then the deadline stops it.
    assert size_limit or ("ran for more than" in sentence and seconds >= MAX_RENDER_SECONDS), sentence
    assert "Haven stopped it. Choose another model" in sentence
    assert seconds < GENEROUS_SECONDS
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_a_template_retried_without_a_system_turn_shares_one_deadline() -> None:
    # Refuses the system turn (so Haven retries with it merged), then loops on the retry.
    source = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
              "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
    sentence, seconds, _peak = render_hostile(source, [ChatMessage(Role.SYSTEM, "s"), ChatMessage(Role.USER, "u")])
    assert "ran for more than" in sentence
    assert seconds < GENEROUS_SECONDS


def test_a_template_message_is_cut_to_a_sentence() -> None:
    sentence, _seconds, _peak = render_hostile("{{ raise_exception('x' * 100000) }}")
    assert len(sentence) < 400


def test_a_long_message_gets_room_beyond_the_templates_own_allowance() -> None:
    # This template rewrites the text, so the real 3 MB message is rendered, three times the template's allowance.
    source = "{% for m in messages %}<|im_start|>{{ m['content'][1:] }}<|im_end|>{% endfor %}"
    formatter = ChatFormatter("jinja", source, {"<|im_start|>": 10, "<|im_end|>": 11}, NAMES, add_bos=False)
    text = "y" + "x" * 3_000_000
    assert formatter.render([ChatMessage(Role.USER, text)]) == [10, text[1:], 11]
