"""Hostile or odd input through ``haven-cli``: a 1 MB paste, text that is not UTF-8, path traversal in names,
settings with impossible values, folders Haven cannot write. Each is a sentence, never a traceback, and
nothing already saved is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from assistant.models.registry import ModelRegistry
from assistant.paths import AppPaths
from assistant.store import Store
from tests.gguf_writer import gguf_bytes, write_gguf

ONE_MB = ("The quick brown fox jumps over the lazy dog. " * 25_000)[:1_000_000]


def cli(*args: str | bytes, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, capture_output=True,
                            timeout=300)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"),
                                       result.stderr.decode(errors="replace"))


def one_sentence_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "unexpected problem" not in result.stderr, result.stderr
    return result.stderr


def test_a_1_mb_paste_is_refused_with_a_sentence_and_leaves_no_trace() -> None:
    result = cli("chat", "--json", "-", stdin=ONE_MB.encode())  # returns: the 300 s limit is a hang detector
    assert "too long for this model" in one_sentence_error(result)
    assert json.loads(cli("history", "list", "--json").stdout) == []


def test_files_that_are_not_utf8_are_read_or_refused_with_a_sentence(tmp_path: Path) -> None:
    # A model whose name and licence are not UTF-8, in a file whose name is not UTF-8 either.
    data = gguf_bytes({"general.architecture": "llama", "general.name": "tiny XXXX model",
                       "general.license": "YYYY", "llama.block_count": 2}, 4096)
    # Only Linux allows a file name that is not UTF-8 (macOS refuses one; Windows names are UTF-16).
    model = os.fsencode(tmp_path) + (b"/mod\xffel.gguf" if sys.platform.startswith("linux") else b"/mod-el.gguf")
    Path(os.fsdecode(model)).write_bytes(data.replace(b"XXXX", b"\xff\xfe\xc3\x28").replace(b"YYYY", b"\xed\xa0\x80!"))
    imported = cli("models", "import", os.fsdecode(model))
    assert imported.returncode == 0 and imported.stdout.strip() == "mod-el", imported.stderr
    [row] = [r for r in json.loads(cli("models", "list", "--json").stdout) if r["id"] == "mod-el"]
    assert row["installed"] and row["name"].startswith("tiny ") and "\ufffd" in row["name"]

    # A JSON Lines file for `safety check` with a byte that is not UTF-8; a file that is not there.
    lines = tmp_path / "prompts.jsonl"
    lines.write_bytes(b'{"id": 1, "prompt": "hello"}\n{"id": 2, "prompt": "caf\xe9"}\n')
    assert "is not UTF-8 text" in one_sentence_error(cli("safety", "check", "--jsonl", str(lines)), 2)
    missing = cli("safety", "check", "--jsonl", str(tmp_path / "nothing.jsonl"))
    assert "cannot read" in one_sentence_error(missing, 2)


def test_path_traversal_in_names_reaches_nothing(tmp_path: Path) -> None:
    for args in (["--repo", "a/../../b", "--file", "x.gguf"], ["--repo", "a/b", "--file", "../x.gguf"]):
        one_sentence_error(cli("models", "download", *args, "--endpoint", "http://127.0.0.1:9"), 2)

    # installed.json edited to point outside the models folder: those entries are not listed, so
    # `models remove` cannot delete what they point at.
    paths = AppPaths.from_environment().ensure()
    victim = paths.data_dir / "victim.gguf"
    victim.write_bytes(b"GGUF precious")
    paths.models_dir.joinpath("installed.json").write_text(json.dumps({"schema_version": 1, "models": {
        "outside": {"name": "x", "file": "../victim.gguf"},
        "../victim": {"name": "y", "file": "victim.gguf"},
        "sub": {"name": "z", "file": "sub/../../victim.gguf"},
    }}))
    ids = [r["id"] for r in json.loads(cli("models", "list", "--json").stdout)]
    assert not {"outside", "../victim", "victim", "sub"} & set(ids)
    assert "No installed model" in one_sentence_error(cli("models", "remove", "outside", "--yes"))
    assert victim.read_bytes() == b"GGUF precious"


def test_settings_with_impossible_values_fall_back_with_a_warning(haven_home: Path) -> None:
    settings = haven_home / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    for text in ('{"max_tokens": Infinity}', '{"temperature": 1e999, "top_k": NaN}', "[" * 100_000):
        settings.write_text(text)
        result = cli("history", "list")
        assert result.returncode == 0 and result.stderr.startswith("warning: "), result.stderr
        assert "Traceback" not in result.stderr


def test_a_folder_haven_cannot_write_is_a_sentence_and_loses_nothing(haven_home: Path) -> None:
    paths = AppPaths.from_environment().ensure()
    with Store(paths.database_file) as store:
        conversation = store.create_conversation("m")
        store.add_user_message(conversation.id, "keep me")

    # The config folder cannot be created (a file is in the way; chmod would not stop root).
    config = paths.config_dir
    config.rmdir()
    config.write_text("not a folder")
    assert "cannot create its folder" in one_sentence_error(cli("history", "list"))
    config.unlink()

    # The database cannot be opened.
    moved = paths.database_file.rename(paths.data_dir / "saved.sqlite3")
    paths.database_file.mkdir()
    assert "cannot open its conversation database" in one_sentence_error(cli("history", "list"))
    paths.database_file.rmdir()
    moved.rename(paths.database_file)

    # The settings cannot be saved.
    paths.settings_file.mkdir(parents=True)
    assert "could not save your settings" in one_sentence_error(cli("models", "default", "smollm2-135m-instruct"))
    paths.settings_file.rmdir()

    listing = json.loads(cli("history", "list", "--json").stdout)
    assert [(c["id"], c["messages"]) for c in listing] == [(conversation.id, 1)], "nothing was lost"


def test_an_unreadable_list_of_installed_models_is_kept_before_it_is_rewritten(tmp_path: Path) -> None:
    paths = AppPaths.from_environment().ensure()
    registry = ModelRegistry(paths)
    broken = b'{"models": {"mine": {"name": "caf\xe9", "path": "/somewhere/mine.gguf"}}}'  # not UTF-8
    registry.manifest_file.write_bytes(broken)
    assert [m.id for m in registry.installed()] == ["smollm2-135m-instruct"], "the listing still works"
    registry.import_file(write_gguf(tmp_path / "new.gguf"), "new")
    [backup] = paths.models_dir.glob("installed.json.corrupt-*")
    assert backup.read_bytes() == broken, "what Haven could not read is kept, not overwritten"
    assert "new" in [m.id for m in registry.installed()]
