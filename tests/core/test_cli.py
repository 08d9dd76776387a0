"""``haven-cli`` as a user runs it: a real subprocess, the real model, HAVEN_HOME isolated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHAT_KEYS = {"reply", "blocked", "stage", "category", "model", "conversation", "prompt_tokens",
             "completion_tokens", "ttft_ms", "tokens_per_second", "reasoning"}
MESSAGE_KEYS = {"id", "parent", "role", "content", "created", "model", "complete", "stop_reason", "blocked", "stage",
                "category", "reasoning", "reasoning_ms", "sibling_index", "sibling_count"}


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == "haven 0.1.0"


def test_chat_json_continue_and_export(haven_home: Path) -> None:
    first = cli("chat", "--json", "--seed", "1", "--max-tokens", "40", "Name three colours.")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert set(data) == CHAT_KEYS
    assert data["reply"].strip() and data["blocked"] is False and data["stage"] is None
    assert data["model"] == "smollm2-135m-instruct" and data["completion_tokens"] > 0
    assert data["reasoning"] == "", "the starter model does not think"
    assert first.stderr == "", "nothing from llama.cpp leaks onto stderr"

    second = cli("chat", "--conversation", data["conversation"], "--max-tokens", "30", "Which is the warmest?")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip()

    exported = json.loads(cli("history", "export", "--format", "json").stdout)
    [conversation] = exported["conversations"]
    assert conversation["id"] == data["conversation"]
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant", "user", "assistant"]
    assert conversation["messages"][1]["content"] == data["reply"]
    assert conversation["messages"][3]["content"] == second.stdout.strip()
    assert all(set(m) == MESSAGE_KEYS for m in conversation["messages"])
    messages = conversation["messages"]
    assert [m["parent"] for m in messages] == [None] + [m["id"] for m in messages[:-1]]
    assert conversation["current"] == messages[-1]["id"] and conversation["branches"] == "current"

    listing = json.loads(cli("history", "list", "--json").stdout)
    assert [(c["id"], c["messages"]) for c in listing] == [(data["conversation"], 4)]
    markdown = cli("history", "export", data["conversation"], "--format", "md").stdout
    assert "**You**" in markdown and "Name three colours." in markdown


def test_prompt_from_stdin_streams_text(haven_home: Path) -> None:
    result = cli("chat", "--max-tokens", "20", "-", stdin="Say hello.")
    assert result.returncode == 0 and result.stdout.strip()


def test_errors_are_one_sentence_with_the_documented_exit_codes(haven_home: Path) -> None:
    missing = cli("chat", "--conversation", "nope", "hi")
    assert missing.returncode == 1 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    wrong_model = cli("chat", "--model", "nope", "hi")
    assert wrong_model.returncode == 1 and "models list" in wrong_model.stderr
    assert cli("chat", "--temperature", "9", "hi").returncode == 2
    assert cli("frobnicate").returncode == 2
    assert cli("chat", "--conversation", "a", "--new", "hi").returncode == 2
    too_long = cli("chat", "--max-tokens", "64", "word " * 9000)
    assert too_long.returncode == 1 and "too long" in too_long.stderr


def test_corrupt_settings_warn_and_continue(haven_home: Path) -> None:
    settings = haven_home / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{ not json")
    result = cli("history", "list")
    assert result.returncode == 0 and "went back to the defaults" in result.stderr
    assert list(settings.parent.glob("settings.json.corrupt-*"))
