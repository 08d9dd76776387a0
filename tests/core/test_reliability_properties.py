"""Property tests: the loaders never crash on arbitrary input, a blocked span is never shown or stored, and
control strings in arbitrary text never become control tokens.

(The output filter's own hold-back invariant, released + withheld == generated under arbitrary chunking:
tests/core/test_stream_filter.py::test_invariant_under_random_chunking.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant.chat import ChatMessage, Role
from assistant.engine import Engine
from assistant.engine.chat_format import ChatFormatter, TokenNames
from assistant.errors import ConfigError
from assistant.models.catalog import load_catalog, parse_catalog
from assistant.models.registry import ModelRegistry
from assistant.paths import AppPaths
from assistant.safety import OutputGuard, PassThroughPolicy, Stage, Verdict
from assistant.safety.stream import StreamFilter
from assistant.session import ChatSession, TextReleased, TurnResult
from assistant.settings import BOUNDS, Settings, load_settings
from assistant.store import Store
from tests.fakes import FakeEngine

FEW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

edge_numbers = st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0, 0.5, 2**63, -(2**63), 10**30, -1])
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | edge_numbers | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def shaped(keys: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that use the real keys with arbitrary values: they get past the first checks."""
    values = scalars | json_values
    return st.dictionaries(st.sampled_from(list(keys)), values, max_size=len(keys)) | st.dictionaries(
        st.sampled_from(list(keys)) | st.text(max_size=8), values, max_size=len(keys))


DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than Python's json module can recurse


def document(value: Any) -> bytes:
    return json.dumps(value).encode()  # floats may be Infinity or NaN, which Python's json reads back


# -- settings ------------------------------------------------------------------------------------

SETTING_KEYS = [f.name for f in dataclasses.fields(Settings)] + ["schema_version"]


@FEW
@given(st.one_of(shaped(SETTING_KEYS).map(document), json_values.map(document), st.binary(max_size=200)))
@example(DEEP)
def test_the_settings_loader_never_crashes_and_never_loses_the_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settings.json"
        path.write_bytes(raw)
        loaded = load_settings(path)
        s = loaded.settings
        for name, (low, high) in BOUNDS.items():
            value = getattr(s, name)
            assert type(value) is type(getattr(Settings(), name)) and low <= value <= high, (name, value)
            assert not (isinstance(value, float) and math.isnan(value))
        assert load_settings(path).settings == s, "loading is stable"
        if any("went back to the defaults" in w for w in loaded.warnings):
            [backup] = Path(folder).glob("settings.json.corrupt-*")
            assert backup.read_bytes() == raw, "the unusable file was kept"


# -- the catalog ---------------------------------------------------------------------------------

ENTRY_KEYS = ["id", "name", "description", "repo", "file", "revision", "sha256", "size_bytes", "approx_size_bytes",
              "parameters", "quant", "context_length", "license_name", "license_url", "chat_format", "tags",
              "gated", "shape", "rank"]
GOOD = {"id": "ok", "name": "OK", "file": "ok.gguf", "approx_size_bytes": 1, "parameters": "1B", "quant": "Q4",
        "context_length": 10, "license_name": "MIT", "repo": "a/b"}
entries = st.one_of(json_values, shaped(ENTRY_KEYS), shaped(ENTRY_KEYS).map(lambda extra: {**GOOD, **extra}))


@FEW
@given(st.one_of(json_values, st.lists(entries, max_size=4).map(lambda models: {"models": models})))
def test_the_catalog_parser_never_crashes_and_keeps_only_safe_entries(data: Any) -> None:
    catalog = parse_catalog(data)
    for entry in catalog.entries:
        for name in (entry.id, entry.file):
            assert "/" not in name and "\\" not in name and ".." not in name and not name.startswith(".")
        assert entry.repo is None or (entry.repo.count("/") == 1 and ".." not in entry.repo)
        assert entry.approx_size_bytes > 0 and entry.context_length > 0


@FEW
@given(st.binary(max_size=300))
@example(DEEP)
def test_a_catalog_file_of_any_bytes_is_read_or_refused_with_a_sentence(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalog.json"
        path.write_bytes(raw)
        try:
            load_catalog(path)
        except ConfigError as exc:
            assert "Reinstall Haven" in str(exc)


# -- the list of installed models ----------------------------------------------------------------

RECORD_KEYS = ["name", "file", "path", "sha256", "size_bytes", "license", "tags", "repo", "revision", "commit",
               "chat_format"]


@FEWER
@given(st.one_of(json_values, st.dictionaries(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True) | st.text(),
                                              shaped(RECORD_KEYS), max_size=3)
                 .map(lambda models: {"models": models})))
@example(DEEP)
def test_an_installed_models_file_with_anything_in_it_never_breaks_the_listing(data: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = AppPaths(Path(folder, "c"), Path(folder, "d"), Path(folder, "k"), Path(folder, "l")).ensure()
        (paths.models_dir / "victim.gguf").write_bytes(b"GGUF")
        registry = ModelRegistry(paths)
        registry.manifest_file.write_bytes(data if isinstance(data, bytes) else document(data))
        for model in registry.installed():
            assert isinstance(model.name, str) and all(isinstance(t, str) for t in model.tags)
            if not model.imported and model.id != "smollm2-135m-instruct":
                assert model.path.parent == paths.models_dir


# -- the output filter inside a real chat turn ---------------------------------------------------

BAD = "FORBIDDEN"


def span_check(text: str) -> Verdict:
    return Verdict(False, Stage.OUTPUT, "S1", "Blocked (S1).") if BAD in text else Verdict.allow(Stage.OUTPUT)


class FilterPolicy(PassThroughPolicy):
    """The real stream filter with a word check standing in for the classifier; input passes."""

    name = "filter"

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        return StreamFilter(span_check, span_check, max_hold=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb ", ". ", "!\n", "é", BAD, "FORB", "IDDEN", "FORBIDDE", "N"]), max_size=40))
def test_a_blocked_span_is_never_shown_or_stored(pieces: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "c.sqlite3") as store:
        session = ChatSession(FakeEngine(pieces), store, FilterPolicy(), model_id="fake")
        events = list(session.send("hi"))
        shown = "".join(e.text for e in events if isinstance(e, TextReleased))
        result = events[-1]
        assert isinstance(result, TurnResult)
        stored = store.messages(result.conversation_id)[-1]
        assert BAD not in shown and BAD not in stored.content
        if BAD in "".join(pieces):
            assert result.blocked and stored.blocked and stored.content == result.reply
        else:
            assert shown == stored.content == "".join(pieces) and stored.complete


# -- control tokens ------------------------------------------------------------------------------

CONTROL_TEXTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<file_sep>", "<jupyter_code>",
                 "[INST]", "<|eot_id|>", "<s>", "</s>"]
typed = st.lists(st.sampled_from(CONTROL_TEXTS) | st.text(max_size=6) | st.sampled_from(["<", "|", ">", "im_"]),
                 max_size=12).map("".join)


def control_ids(engine: Engine, tokens: list[int]) -> list[int]:
    return [t for t in tokens if engine.is_control_token(t)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed, typed)
def test_control_strings_in_any_text_stay_text_for_the_real_model(engine: Engine, user: str, earlier: str) -> None:
    def prompt(user_text: str, reply_text: str) -> list[ChatMessage]:
        return [ChatMessage(Role.SYSTEM, "S"), ChatMessage(Role.USER, "U"),
                ChatMessage(Role.ASSISTANT, reply_text or "ok"), ChatMessage(Role.USER, user_text or "hi")]

    clean = control_ids(engine, engine.tokenize_chat(prompt("hi", "ok")))
    assert control_ids(engine, engine.tokenize_chat(prompt(user, earlier))) == clean


# Any vocabulary of control strings, overlapping ones included: a hostile GGUF can declare whatever control
# tokens it likes. Message text mixes those strings, pieces of them and other text.
TEMPLATE_CONTROLS = ["<|s|>", "<|e|>"]


@st.composite
def vocabulary_and_text(draw: st.DrawFn, token: st.SearchStrategy[str], filler: str) -> tuple[list[str], str]:
    vocabulary = draw(st.lists(token, min_size=1, max_size=5, unique=True))
    known = [*TEMPLATE_CONTROLS, *vocabulary]
    pieces = st.sampled_from(known) | st.sampled_from(known).map(lambda t: t[1:]) | st.text(alphabet=filler, max_size=3)
    return vocabulary, "".join(draw(st.lists(pieces, max_size=10)))


def control_fragments(template: str, vocabulary: list[str], content: str) -> list[int]:
    controls = {text: 100 + i for i, text in enumerate([*TEMPLATE_CONTROLS, *vocabulary])}
    formatter = ChatFormatter("jinja", template, controls, TokenNames(None, None, "", ""), add_bos=False)
    return [f for f in formatter.render([ChatMessage(Role.USER, content)]) if isinstance(f, int)]


# A template that places the message text as it is: the text is its own piece of the prompt.
PLACING = "{% for m in messages %}<|s|>{{ m['role'] }}:{{ m['content'] }}<|e|>{% endfor %}"


@settings(max_examples=150, deadline=None)
@given(vocabulary_and_text(st.text(alphabet="<|>abser:~", min_size=2, max_size=5), "<|>abser:~ x"))
def test_control_strings_in_any_text_stay_text_whatever_the_vocabulary(case: tuple[list[str], str]) -> None:
    vocabulary, content = case
    assert control_fragments(PLACING, vocabulary, content) == control_fragments(PLACING, vocabulary, "x")


# A template that rewrites the text (here: drops its first character), so Haven cannot place it as its own
# piece and defuses the control strings in it instead; control tokens shaped like real ones (<...>, [...]).
REWRITING = "{% for m in messages %}<|s|>{{ m['role'] }}:{{ m['content'][1:] }}<|e|>{% endfor %}"
shaped_like_real = st.builds(lambda o, body, c: o + body + c, st.sampled_from(["<", "<|", "["]),
                             st.text(alphabet="abse_|/", min_size=1, max_size=4), st.sampled_from([">", "|>", "]"]))


@settings(max_examples=150, deadline=None)
@given(vocabulary_and_text(shaped_like_real, "<|>[]abse_/ x"))
def test_control_strings_stay_text_when_the_template_rewrites_the_message(case: tuple[list[str], str]) -> None:
    vocabulary, content = case
    assert control_fragments(REWRITING, vocabulary, content) == control_fragments(REWRITING, vocabulary, "xx")
