"""``haven-cli models ...`` as a user runs it, against a real local hub server."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gguf_writer import write_gguf
from tests.hub_server import FakeHub

REPO, FILE = "someone/tiny-GGUF", "tiny-model.Q4_K_M.gguf"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def hub(tmp_path: Path):
    server = FakeHub()
    server.add(REPO, FILE, write_gguf(tmp_path / "src.gguf", tensor_bytes=3 * 1024 * 1024).read_bytes())
    url = server.start()
    yield server, url
    server.stop()


def listed(model_id: str) -> dict | None:
    return next((m for m in json.loads(cli("models", "list", "--json").stdout) if m["id"] == model_id), None)


def test_list_shows_the_catalog_with_fit_labels() -> None:
    rows = json.loads(cli("models", "list", "--json").stdout)
    keys = {"id", "name", "installed", "default", "path", "size_bytes", "sha256", "ram_required_bytes", "fits",
            "license", "tags"}
    assert all(keys <= set(r) for r in rows)
    ids = {r["id"] for r in rows}
    assert {"llama-2-7b-chat", "llama-2-13b-chat", "llama-3.2-1b-instruct", "llama-3.2-3b-instruct",
            "llama-3.1-8b-instruct", "llama-guard-3-1b", "llama-guard-3-8b", "smollm2-135m-instruct"} <= ids
    assert all(r["fits"] in ("yes", "tight", "no") for r in rows)
    starter = next(r for r in rows if r["id"] == "smollm2-135m-instruct")
    assert starter["installed"] and starter["default"] and starter["fits"] == "yes"
    assert sum(r.get("recommended", False) for r in rows) <= 1
    assert all("safety-guard" in r["tags"] for r in rows if r["id"].startswith("llama-guard"))


def test_download_killed_half_way_resumes_in_a_second_run(hub, haven_home: Path) -> None:
    server, url = hub
    server.switches.seconds_per_chunk = 0.15
    part = haven_home / "data" / "models" / ".partial" / "tiny-model.Q4_K_M.gguf.part"
    process = subprocess.Popen([sys.executable, "-m", "assistant", "models", "download", "--repo", REPO, "--file",
                                FILE, "--endpoint", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 256 * 1024):
        assert process.poll() is None, process.communicate()[1].decode()
        time.sleep(0.05)
    process.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
    process.wait(10)
    kept = part.stat().st_size
    assert 0 < kept < len(server.files[(REPO, FILE)].data)
    assert listed("tiny-model.Q4_K_M") is None

    server.switches.seconds_per_chunk = 0.0
    second = cli("models", "download", "--repo", REPO, "--file", FILE, "--endpoint", url)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "tiny-model.Q4_K_M" and "verified" in second.stderr
    assert f"bytes={kept}-" in server.ranges()
    row = listed("tiny-model.Q4_K_M")
    assert row and row["installed"] and row["sha256"] == server.files[(REPO, FILE)].sha256


def test_wrong_bytes_exit_non_zero_and_leave_nothing(hub) -> None:
    server, url = hub
    server.switches.corrupt = True
    result = cli("models", "download", "--repo", REPO, "--file", FILE, "--endpoint", url)
    assert result.returncode == 1 and "did not match its published checksum" in result.stderr
    assert "Traceback" not in result.stderr
    assert listed("tiny-model.Q4_K_M") is None


def test_hf_endpoint_variable_is_honoured(hub, monkeypatch) -> None:
    _, url = hub
    monkeypatch.setenv("HF_ENDPOINT", url)
    assert cli("models", "download", "--repo", REPO, "--file", FILE).returncode == 0


def test_import_validates_sanitizes_and_can_be_removed(tmp_path: Path) -> None:
    good = write_gguf(tmp_path / "my model.gguf")
    result = cli("models", "import", str(good), "--name", "../../evil/name")
    assert result.returncode == 0, result.stderr
    model_id = result.stdout.strip()
    assert model_id == "evil-name"
    row = listed(model_id)
    assert row and row["installed"] and row["path"] == str(good.resolve())

    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("just text")
    bad = cli("models", "import", str(not_gguf))
    assert bad.returncode == 1 and "not a GGUF model file" in bad.stderr
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(good.read_bytes()[:40])
    cut = cli("models", "import", str(truncated))
    assert cut.returncode == 1 and "incomplete" in cut.stderr
    assert listed("notes") is None and listed("cut") is None

    assert cli("models", "remove", model_id).returncode == 2  # no --yes without a terminal
    assert cli("models", "remove", model_id, "--yes").returncode == 0
    assert good.exists(), "removing an import forgets it; the user's file stays"
    assert listed(model_id) is None


def test_default_model_is_chosen_and_used(tmp_path: Path, starter_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(starter_path.read_bytes())
    assert cli("models", "import", str(copy), "--name", "my-copy").returncode == 0
    assert cli("models", "default", "my-copy").returncode == 0
    assert listed("my-copy")["default"] is True
    chat = cli("chat", "--json", "--max-tokens", "8", "Hi")
    assert json.loads(chat.stdout)["model"] == "my-copy"
    assert cli("models", "default", "nothing").returncode == 1


def test_token_is_stored_privately(haven_home: Path) -> None:
    assert "No Hugging Face token" in cli("hf-token", "status").stdout
    assert cli("hf-token", "set", stdin="hf_example_token\n").returncode == 0
    token_file = haven_home / "config" / "hf-token"
    assert token_file.read_text().strip() == "hf_example_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "is saved" in cli("hf-token", "status").stdout
    assert cli("hf-token", "clear").returncode == 0 and not token_file.exists()


def test_the_saved_token_is_sent_to_the_hub(hub) -> None:
    server, url = hub
    server.switches.required_token = "hf_secret"
    refused = cli("models", "download", "--repo", REPO, "--file", FILE, "--endpoint", url)
    assert refused.returncode == 1 and "refused the access token" in refused.stderr
    cli("hf-token", "set", stdin="hf_secret\n")
    assert cli("models", "download", "--repo", REPO, "--file", FILE, "--endpoint", url).returncode == 0
