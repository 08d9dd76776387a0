"""The moving parts of one transfer: which connection errors are worth a retry, a watcher that closes a
response when the user pauses, the progress meter (speed and time left), and the partial file's helpers."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.models.download_types import DownloadProgress, DownloadState

if TYPE_CHECKING:
    import httpx2


def _cannot_connect(exc: Exception) -> bool:
    """No connection could be opened at all (no network, DNS failure, nothing listening), as opposed to one
    that was open and dropped."""
    import httpx2

    return isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout)


def _transient(exc: Exception) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        return True  # may be a blip; retried a few times before "offline" is the answer
    if isinstance(exc, httpx2.TransportError):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, HfHubHTTPError) and status is not None and (status >= 500 or status == 429)


class _StopWatcher:
    """Closes the response when ``stop`` is set, so a stalled read returns within a fraction of a second."""

    def __init__(self, stop: threading.Event, response: httpx2.Response) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(stop, response), daemon=True,
                                        name="haven-download-stop")
        self._thread.start()

    def _watch(self, stop: threading.Event, response: httpx2.Response) -> None:
        while not self._done.is_set():
            if stop.wait(0.1):
                with contextlib.suppress(Exception):
                    response.close()
                return

    def finish(self) -> None:
        self._done.set()
        self._thread.join(1.0)


class _Meter:
    """Progress with speed over a sliding window and time left; at most ~10 reports a second."""

    def __init__(self, total: int | None, report: Callable[[DownloadProgress], None]) -> None:
        self.total = total
        self.report = report
        self.downloaded = 0
        self.samples: list[tuple[float, int]] = []
        self.last_report = 0.0
        self.message = ""

    def start_at(self, offset: int) -> None:
        self.downloaded = offset

    def note(self, message: str) -> None:
        self.message = message
        self._emit(force=True)

    def add(self, count: int) -> None:
        self.downloaded += count
        self._emit()

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        self.samples.append((now, self.downloaded))
        self.samples = [s for s in self.samples if now - s[0] <= 5.0]
        if not force and now - self.last_report < 0.1:
            return
        self.last_report = now
        first_t, first_n = self.samples[0]
        speed = (self.downloaded - first_n) / (now - first_t) if now > first_t else 0.0
        left = (self.total - self.downloaded) / speed if self.total and speed > 0 else None
        self.report(DownloadProgress(DownloadState.DOWNLOADING, self.downloaded, self.total, speed, left,
                                     self.message))


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _hash_file(path: Path) -> Any:
    hasher = hashlib.sha256()
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            hasher.update(block)
    return hasher


def _human(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{count} B"
