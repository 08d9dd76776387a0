"""Two downloads of one model at once (two processes, or the app's queue beside another download): the
second waits for the first, can be paused or cancelled while it waits, and the model ends installed and
verified once. The first download is held mid-file by the local hub, so the two provably overlap."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pytest
from filelock import FileLock

from assistant.models.download import (
    TAKEN_OVER_NOTE,
    WAITING_NOTE,
    Downloader,
    DownloadProgress,
    DownloadSpec,
    DownloadState,
)
from assistant.models.queue import DownloadQueue
from assistant.models.registry import ModelRecord, ModelRegistry
from assistant.paths import AppPaths
from tests.gguf_writer import write_gguf
from tests.hub_server import FakeHub

REPO, FILE = "someone/tiny-GGUF", "tiny-model.Q4_K_M.gguf"
MODEL_ID = "tiny-model.Q4_K_M"
HOLD_AT = 512 * 1024  # the hub stalls every download that starts from the beginning here, until released


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[FakeHub, str]]:
    server = FakeHub()
    server.add(REPO, FILE, write_gguf(tmp_path / "src.gguf", tensor_bytes=3 * 1024 * 1024).read_bytes())
    server.switches.hold_at_bytes = HOLD_AT
    url = server.start()
    yield server, url
    server.switches.release.set()
    server.stop()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def downloader(paths: AppPaths) -> Downloader:
    return Downloader(paths, ModelRegistry(paths), backoff_seconds=0.01)


def spec(url: str) -> DownloadSpec:
    return DownloadSpec(model_id=MODEL_ID, repo=REPO, file=FILE, endpoint=url)


def wait_for(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def file_gets(server: FakeHub) -> list[str | None]:
    """The Range header of every GET of the model file (None: from the beginning)."""
    return [r for method, path, r in server.requests if method == "GET" and "/resolve/" in path]


class CliRun:
    """``haven-cli models download`` in its own process; stderr is read as it comes."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "models", "download", "--repo", REPO, "--file", FILE,
             "--endpoint", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code, out, self.stderr


def test_two_cli_downloads_of_one_model_at_once_both_succeed_and_install_it_once(hub, paths) -> None:
    server, url = hub
    part = Downloader(paths, ModelRegistry(paths)).partial_path(spec(url))
    first = CliRun(url)
    second: CliRun | None = None
    try:
        wait_for(lambda: size(part) > 0 or first.process.poll() is not None)
        assert first.process.poll() is None, first.finish()
        second = CliRun(url)
        wait_for(lambda: WAITING_NOTE in second.stderr or second.process.poll() is not None)
        assert first.process.poll() is None, "the first download is still running: the two overlap"
        server.switches.release.set()
        code1, out1, err1 = first.finish()
        code2, out2, err2 = second.finish()
    finally:
        for run in (first, second):
            if run is not None and run.process.poll() is None:
                run.process.kill()
    data = server.files[(REPO, FILE)].data
    assert (code1, out1.strip()) == (0, MODEL_ID), err1
    assert (code2, out2.strip()) == (0, MODEL_ID), err2
    assert "Installed" in err1 and "verified" in err1 and WAITING_NOTE not in err1
    assert WAITING_NOTE in err2 and "another Haven download finished it" in err2 and "Traceback" not in err2
    assert file_gets(server) == [None], "the file was fetched (and verified) once, by the first download"
    # Every key as written, so a duplicate would show (a dict would keep only the last).
    manifest = json.loads((paths.models_dir / "installed.json").read_text(encoding="utf-8"), object_pairs_hook=list)
    assert [key for key, _ in dict(manifest)["models"]] == [MODEL_ID]
    model = ModelRegistry(paths).get(MODEL_ID)
    assert model.sha256 == hashlib.sha256(data).hexdigest() == hashlib.sha256(model.path.read_bytes()).hexdigest()
    assert list(paths.partial_downloads_dir.iterdir()) == []


@pytest.mark.parametrize("cancel", [True, False], ids=["cancel", "pause"])
def test_a_waiting_download_stops_within_a_second_and_leaves_the_other_one_alone(hub, paths, pool,
                                                                                   cancel: bool) -> None:
    server, url = hub
    part = downloader(paths).partial_path(spec(url))
    first = pool.submit(downloader(paths).download, spec(url))
    wait_for(lambda: size(part) > 0 or first.done())
    notes: list[DownloadProgress] = []
    stop = threading.Event()
    second = pool.submit(downloader(paths).download, spec(url), progress=notes.append, stop=stop,
                         discard_on_stop=cancel)
    wait_for(lambda: any(p.message == WAITING_NOTE for p in notes) or second.done())
    assert not first.done() and not second.done(), "the second download is waiting for the first"
    kept = size(part)
    started = time.monotonic()
    stop.set()
    result = second.result(5)
    assert time.monotonic() - started < 1.0, "stopped within a second"
    assert result.state is (DownloadState.CANCELLED if cancel else DownloadState.PAUSED)
    assert size(part) >= kept > 0, "the partial file belongs to the running download: not discarded"
    server.switches.release.set()
    done = first.result(30)
    assert done.state is DownloadState.COMPLETED and done.path is not None
    assert done.path.read_bytes() == server.files[(REPO, FILE)].data
    assert file_gets(server) == [None]


def test_a_waiting_download_continues_the_partial_file_when_the_other_one_pauses(hub, paths, pool) -> None:
    server, url = hub
    part = downloader(paths).partial_path(spec(url))
    pause_first = threading.Event()
    first = pool.submit(downloader(paths).download, spec(url), stop=pause_first)
    wait_for(lambda: size(part) > 0 or first.done())
    notes: list[DownloadProgress] = []
    second = pool.submit(downloader(paths).download, spec(url), progress=notes.append)
    wait_for(lambda: any(p.message == WAITING_NOTE for p in notes) or second.done())
    assert not second.done()
    pause_first.set()
    # Released after the pause, so the first download sees it on its next chunk (a pause on a connection
    # that sends nothing at all waits for the read timeout: the stop watcher's close does not wake the read).
    server.switches.release.set()
    assert first.result(5).state is DownloadState.PAUSED
    result = second.result(30)
    assert result.state is DownloadState.COMPLETED and not result.already_installed
    assert result.path is not None and result.path.read_bytes() == server.files[(REPO, FILE)].data
    assert any(p.message == TAKEN_OVER_NOTE for p in notes)
    assert result.resumed_from > 0 and file_gets(server) == [None, f"bytes={result.resumed_from}-"]
    assert list(paths.partial_downloads_dir.iterdir()) == []


def test_cancelling_a_queued_job_that_waits_keeps_the_other_download_s_file(hub, paths, pool) -> None:
    server, url = hub
    part = downloader(paths).partial_path(spec(url))
    first = pool.submit(downloader(paths).download, spec(url))
    wait_for(lambda: size(part) > 0 or first.done())
    queue = DownloadQueue(downloader(paths))
    try:
        job = queue.submit(spec(url))
        wait_for(lambda: queue.jobs()[0].message == WAITING_NOTE)
        queue.cancel(job)
        assert queue.wait(job, 2).state is DownloadState.CANCELLED
    finally:
        queue.close()
    assert size(part) > 0 and not first.done()
    server.switches.release.set()
    assert first.result(30).state is DownloadState.COMPLETED


def test_an_install_waits_while_another_process_rewrites_the_list_of_installed_models(hub, paths, pool) -> None:
    server, url = hub
    server.switches.hold_at_bytes = None
    registry_lock = FileLock(str(paths.models_dir / ".locks" / "installed.json.lock"))
    seen: list[DownloadProgress] = []
    with registry_lock:  # what another Haven process holds while it reads, changes and writes the list
        read_before = ModelRegistry(paths).records()
        download = pool.submit(downloader(paths).download, spec(url), progress=seen.append)
        wait_for(lambda: any(p.state is DownloadState.VERIFYING for p in seen) or download.done())
        time.sleep(0.5)
        assert not download.done(), "the install waits for the list"
        assert not (paths.models_dir / f"{MODEL_ID}.gguf").exists(), "no file is moved in before it can be listed"
        read_before["other"] = ModelRecord(name="other", file="other.gguf", sha256="0" * 64)
        (paths.models_dir / "installed.json").write_text(json.dumps(
            {"schema_version": 1, "models": {k: asdict(v) for k, v in read_before.items()}}), encoding="utf-8")
    assert download.result(30).state is DownloadState.COMPLETED
    assert set(ModelRegistry(paths).records()) == {"other", MODEL_ID}, "neither entry was lost"


def test_imports_and_removals_take_the_same_lock_as_installs(paths, pool, starter_path) -> None:
    """`haven-cli models import` / `remove` in one process while another holds the list: they wait, and
    neither the other process's entry nor theirs is lost."""
    registry_lock = FileLock(str(paths.models_dir / ".locks" / "installed.json.lock"))
    registry = ModelRegistry(paths)
    with registry_lock:
        read_before = registry.records()
        importing = pool.submit(registry.record, "mine", ModelRecord(name="mine", path=str(starter_path)))
        time.sleep(0.5)
        assert not importing.done(), "the import waits for the list"
        read_before["other"] = ModelRecord(name="other", file="other.gguf", sha256="0" * 64)
        (paths.models_dir / "installed.json").write_text(json.dumps(
            {"schema_version": 1, "models": {k: asdict(v) for k, v in read_before.items()}}), encoding="utf-8")
    importing.result(10)
    assert set(registry.records()) == {"other", "mine"}
    with registry_lock:
        removing = pool.submit(registry.remove, "mine")
        time.sleep(0.5)
        assert not removing.done(), "the removal waits for the list"
    removing.result(10)
    assert set(registry.records()) == {"other"}
    assert starter_path.exists(), "removing an import never deletes the user's file"
