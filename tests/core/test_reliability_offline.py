"""The offline guarantee: a whole chat (load, generate, store) never tries the network; only a download does.

Each command runs in a subprocess whose ``sitecustomize`` (tests/offline_shim) records and refuses every
name lookup and connection. The counter-test shows the shim catches the app's real HTTP stack, so an
empty record means nothing was tried.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gguf_writer import write_gguf
from tests.hub_server import FakeHub

SHIM = Path(__file__).resolve().parent.parent / "offline_shim"


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SHIM), env.get("PYTHONPATH")]))
    env["HAVEN_TEST_NETWORK_LOG"] = str(tmp_path / "network.jsonl")
    env["HAVEN_TEST_PROCESS_STATE"] = str(tmp_path / "state.json")
    # The tests' own setting is removed: the app must switch the hub's telemetry off by itself.
    for name in ("HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_OFFLINE"):
        env.pop(name, None)
    return env


def attempts(env: dict[str, str]) -> list[dict[str, str]]:
    log = Path(env["HAVEN_TEST_NETWORK_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def process_state(env: dict[str, str]) -> dict[str, object]:
    return json.loads(Path(env["HAVEN_TEST_PROCESS_STATE"]).read_text())


def telemetry_off(state: dict[str, object]) -> bool:
    """The app switched the hub's telemetry off itself (the test removed the variable), before the hub could
    be imported; where the hub was imported, it agrees."""
    return state["environment"] == "1" and (not state["huggingface_hub_imported"]
                                            or state["hub_telemetry_disabled"] is True)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def test_a_whole_chat_never_tries_the_network(offline_env: dict[str, str]) -> None:
    chat = cli(offline_env, "chat", "--json", "--seed", "1", "--max-tokens", "24", "Name three colours.")
    assert chat.returncode == 0, chat.stderr
    reply = json.loads(chat.stdout)
    assert reply["reply"].strip() and reply["completion_tokens"] > 0
    state = process_state(offline_env)
    assert state["shim_loaded"] is True
    assert telemetry_off(state), state

    # The turn is stored, and listing history and models is offline too.
    exported = cli(offline_env, "history", "export", "--format", "json")
    [conversation] = json.loads(exported.stdout)["conversations"]
    assert [m["content"] for m in conversation["messages"]][1] == reply["reply"]
    assert cli(offline_env, "models", "list", "--json").returncode == 0
    assert attempts(offline_env) == [], "a network connection was attempted:\n" + "\n".join(
        a["call"] + " " + a["target"] + "\n" + a["stack"] for a in attempts(offline_env))


def test_an_explicit_download_is_what_tries_to_connect_and_the_shim_catches_it(
        offline_env: dict[str, str], tmp_path: Path) -> None:
    """Guards the test above against passing vacuously: the app's real HTTP stack is caught by the shim."""
    hub = FakeHub()
    hub.add("someone/tiny-GGUF", "tiny.gguf", write_gguf(tmp_path / "tiny.gguf").read_bytes())
    url = hub.start()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "models", "download", "--repo", "someone/tiny-GGUF", "--file",
             "tiny.gguf", "--endpoint", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=offline_env)
        deadline = time.monotonic() + 60
        while not attempts(offline_env) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.kill()  # it would retry for half a minute
        process.communicate(timeout=30)
    finally:
        hub.stop()
    tried = attempts(offline_env)
    assert tried and any("127.0.0.1" in a["target"] for a in tried), tried
    assert hub.requests == [], "the shim stopped the connection before it reached the server"
    state = process_state(offline_env)  # the process that does use the hub: its telemetry is off
    assert state["huggingface_hub_imported"] is True and state["hub_telemetry_disabled"] is True, state
