"""One download queue for the whole app: downloads run one at a time on their own thread, so they
continue while the user chats, and each can be paused, resumed or cancelled.

Listeners receive a :class:`JobSnapshot` on every change (from the queue's thread); ``ui/workers.py``
turns that into Qt signals.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from assistant.errors import HavenError
from assistant.models.download import Downloader, DownloadProgress, DownloadSpec, DownloadState

__all__ = ["DownloadQueue", "JobSnapshot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    id: int
    spec: DownloadSpec
    state: DownloadState
    downloaded: int = 0
    total: int | None = None
    bytes_per_second: float = 0.0
    seconds_left: float | None = None
    message: str = ""
    error: str | None = None
    path: Path | None = None

    @property
    def finished(self) -> bool:
        return self.state in (DownloadState.COMPLETED, DownloadState.CANCELLED, DownloadState.FAILED)


class DownloadQueue:
    def __init__(self, downloader: Downloader, listener: Callable[[JobSnapshot], None] | None = None) -> None:
        self._downloader = downloader
        self._listeners = [listener] if listener else []
        self._lock = threading.Condition()
        self._jobs: dict[int, JobSnapshot] = {}
        self._order: list[int] = []
        self._stops: dict[int, threading.Event] = {}
        self._discard: set[int] = set()
        self._ids = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="haven-downloads", daemon=True)
        self._thread.start()

    def subscribe(self, listener: Callable[[JobSnapshot], None]) -> None:
        self._listeners.append(listener)

    def jobs(self) -> list[JobSnapshot]:
        with self._lock:
            return [self._jobs[i] for i in self._order]

    def submit(self, spec: DownloadSpec) -> int:
        with self._lock:
            for job in self._jobs.values():
                if job.spec.model_id == spec.model_id and not job.finished:
                    return job.id  # already queued or running
            job_id = next(self._ids)
            self._order.append(job_id)
            self._set(JobSnapshot(job_id, spec, DownloadState.QUEUED))
            self._lock.notify_all()
            return job_id

    def pause(self, job_id: int) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state is DownloadState.QUEUED:
                self._set(replace(job, state=DownloadState.PAUSED))
            elif job_id in self._stops:
                self._stops[job_id].set()

    def resume(self, job_id: int) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state in (DownloadState.PAUSED, DownloadState.FAILED):
                self._set(replace(job, state=DownloadState.QUEUED, error=None, message=""))
                self._lock.notify_all()

    def cancel(self, job_id: int) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job_id in self._stops:
                self._discard.add(job_id)
                self._stops[job_id].set()
                return
            if not job.finished:
                self._downloader.discard(job.spec)
                self._set(replace(job, state=DownloadState.CANCELLED))

    def wait(self, job_id: int, timeout: float | None = None) -> JobSnapshot:
        """Block until the job is finished or paused (or the timeout passes); return its state."""
        with self._lock:
            self._lock.wait_for(
                lambda: self._jobs[job_id].finished or self._jobs[job_id].state is DownloadState.PAUSED, timeout)
            return self._jobs[job_id]

    def close(self, timeout: float = 5.0) -> None:
        """Pause whatever runs (its partial file is kept for next time) and stop the queue's thread."""
        with self._lock:
            self._closed = True
            for stop in self._stops.values():
                stop.set()
            self._lock.notify_all()
        self._thread.join(timeout)

    # -- the queue's thread --------------------------------------------------------------------

    def _set(self, job: JobSnapshot) -> None:
        self._jobs[job.id] = job
        self._lock.notify_all()
        for listener in list(self._listeners):
            try:
                listener(job)
            except Exception:  # a broken listener must not stop downloads
                log.exception("download listener failed")

    def _next(self) -> JobSnapshot | None:
        with self._lock:
            while not self._closed:
                for job_id in self._order:
                    if self._jobs[job_id].state is DownloadState.QUEUED:
                        self._stops[job_id] = threading.Event()
                        job = replace(self._jobs[job_id], state=DownloadState.DOWNLOADING)
                        self._set(job)
                        return job
                self._lock.wait()
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            stop = self._stops[job.id]

            def progress(p: DownloadProgress, job_id: int = job.id) -> None:
                with self._lock:
                    current = self._jobs[job_id]
                    # Progress moves the counters; the job's final state (paused, cancelled, done) is set only
                    # below, once download() has returned and released the file. Published earlier, a waiter
                    # could act on it too soon: Resume re-queued a job that this thread then marked paused
                    # again, and a cancelled job showed as paused while its file was being discarded.
                    final = p.state in (DownloadState.PAUSED, DownloadState.CANCELLED, DownloadState.COMPLETED)
                    state = current.state if final else p.state
                    self._set(replace(current, state=state, downloaded=p.downloaded, total=p.total,
                                      bytes_per_second=p.bytes_per_second, seconds_left=p.seconds_left,
                                      message=p.message or current.message))

            state, path, error = DownloadState.FAILED, None, None
            try:
                result = self._downloader.download(job.spec, progress=progress, stop=stop)
                state, path = result.state, result.path
            except HavenError as exc:
                error = str(exc)
            except Exception as exc:  # never let one download kill the queue
                log.exception("download failed unexpectedly")
                error = f"The download failed unexpectedly ({exc})."
            with self._lock:
                self._stops.pop(job.id, None)
                if job.id in self._discard and state is DownloadState.PAUSED:
                    self._downloader.discard(job.spec)  # Cancel, not Pause: the partial file goes too
                    state = DownloadState.CANCELLED
                self._discard.discard(job.id)
                self._set(replace(self._jobs[job.id], state=state, path=path, error=error))
