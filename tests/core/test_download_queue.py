"""The download queue: one at a time, pause/resume/cancel, and downloads continuing while a chat runs."""

from __future__ import annotations

import time

import pytest

from assistant.chat import ChatMessage, Role
from assistant.engine import Engine, GenerationStats, SamplingParams
from assistant.models.download import Downloader, DownloadSpec, DownloadState
from assistant.models.queue import DownloadQueue
from assistant.models.registry import ModelRegistry
from assistant.paths import AppPaths
from tests.gguf_writer import gguf_bytes
from tests.hub_server import FakeHub


@pytest.fixture
def setup():
    server = FakeHub()
    for n in (1, 2):
        server.add("someone/models", f"m{n}.gguf", gguf_bytes({"general.architecture": "llama"}, 2 * 1024**2, n))
    url = server.start()
    paths = AppPaths.from_environment().ensure()
    events = []
    queue = DownloadQueue(Downloader(paths, ModelRegistry(paths), backoff_seconds=0.01), events.append)
    yield server, url, paths, queue, events
    queue.close()
    server.stop()


def spec(url: str, n: int) -> DownloadSpec:
    return DownloadSpec(f"m{n}", "someone/models", f"m{n}.gguf", endpoint=url)


def wait_for(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_jobs_run_in_order_and_install(setup) -> None:
    _, url, paths, queue, events = setup
    first, second = queue.submit(spec(url, 1)), queue.submit(spec(url, 2))
    assert queue.submit(spec(url, 1)) == first, "the same model is not queued twice"
    assert queue.wait(first, 20).state is DownloadState.COMPLETED
    assert queue.wait(second, 20).state is DownloadState.COMPLETED
    assert {m.id for m in ModelRegistry(paths).installed()} >= {"m1", "m2"}
    started = [e.id for e in events if e.state is DownloadState.DOWNLOADING]
    assert started.index(first) < started.index(second)


def test_pause_resume_and_cancel(setup) -> None:
    server, url, paths, queue, _ = setup
    server.switches.seconds_per_chunk = 0.2
    job = queue.submit(spec(url, 1))
    wait_for(lambda: queue.jobs()[0].downloaded > 100_000)
    queue.pause(job)
    paused = queue.wait(job, 5)
    assert paused.state is DownloadState.PAUSED
    part = paths.partial_downloads_dir / "m1.gguf.part"
    assert part.stat().st_size > 0
    server.switches.seconds_per_chunk = 0.0
    queue.resume(job)
    wait_for(lambda: queue.jobs()[0].state is DownloadState.COMPLETED)

    server.switches.seconds_per_chunk = 0.2
    other = queue.submit(spec(url, 2))
    wait_for(lambda: queue.jobs()[1].downloaded > 100_000)
    queue.cancel(other)
    assert queue.wait(other, 5).state is DownloadState.CANCELLED
    assert not (paths.partial_downloads_dir / "m2.gguf.part").exists()


def test_failures_are_reported_on_the_job_not_raised(setup) -> None:
    server, url, _, queue, _ = setup
    server.switches.corrupt = True
    job = queue.submit(spec(url, 1))
    done = queue.wait(job, 20)
    assert done.state is DownloadState.FAILED and "checksum" in (done.error or "")


def test_a_download_continues_while_the_model_answers(setup, engine: Engine) -> None:
    server, url, _, queue, _ = setup
    server.switches.seconds_per_chunk = 0.05
    job = queue.submit(spec(url, 1))
    messages = [ChatMessage(Role.SYSTEM, "Be brief."), ChatMessage(Role.USER, "Tell me about rivers.")]
    stats = [i for i in engine.generate(messages, SamplingParams(max_tokens=60, seed=1))
             if isinstance(i, GenerationStats)]
    during = queue.jobs()[0]
    assert stats and stats[0].completion_tokens > 0
    assert during.downloaded > 0, "the download made progress while the model was generating"
    assert queue.wait(job, 30).state is DownloadState.COMPLETED
