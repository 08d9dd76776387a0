"""Downloading GGUF files from the Hugging Face hub: resumable, verified, cancellable, explained.

huggingface_hub provides the URLs, the file metadata (HEAD: commit, ETag/X-Linked-Etag = the LFS sha256,
X-Linked-Size), the authentication headers, its HTTP client and its error types. The transfer itself is
Haven's: huggingface_hub 2.x deletes partial files when a download fails, so a dropped connection or a
restart would start a multi-gigabyte file from zero.

How a download goes:
0. The model's lock (``models/.locks/<id>.lock``, a real OS lock through filelock) is taken for the
   whole transfer and install, so two Haven processes (the desktop app and ``haven-cli``, or two
   ``haven-cli`` runs) never write the same partial file. While another process holds it, the download
   waits, says so in its progress note, and still honours pause and cancel. Once it has the lock, an
   install of the same file that the other process finished (recorded only after its checksum matched)
   is the result; otherwise the download continues whatever partial file is there.
1. Metadata: size, sha256 and commit. The expected sha256 is the catalog's when it has one, else the
   hub's (the LFS ETag, or the file listing of ``/api/models/...``); without one nothing is installed.
2. Free disk space is checked for what is left to fetch plus a margin.
3. Bytes go to ``models/.partial/<id>.gguf.part``; a sidecar ``.json`` records the URL, commit, ETag
   and size. If any of them changed since, the partial file is discarded and the download restarts.
4. A partial file is resumed with ``Range: bytes=N-``; a ``206`` with the matching ``Content-Range`` is
   appended, a ``200`` means the server ignored the range, so the file restarts from the beginning.
5. Transient errors (connection dropped, timeouts, 5xx, 429) are retried with exponential backoff,
   always from the bytes already on disk. When the first request cannot connect at all, the computer is
   most likely offline: two quick retries, then the sentence (seconds, not a minute of backoff).
6. The sha256 is computed while writing; only a match (and a readable GGUF header) is moved into the
   models folder, atomically, and recorded as installed. A mismatch deletes the partial file.
Pause keeps the partial file; cancel deletes it, unless another download (in any Haven process) is
using it. Both are outcomes, not errors, and take effect within a second, also while waiting for another
download; on a connection that has stopped sending entirely, only at the read timeout (closing the
response from the stop watcher does not wake a read blocked in the socket).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from filelock import BaseFileLock, FileLock, Timeout

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # before huggingface_hub reads its settings


# huggingface_hub and its HTTP client are imported where a download needs them, not with this module:
# they cost the desktop app ~20 MB and a few hundred milliseconds of start-up it has no use for until
# the user asks for a download.

from assistant.errors import HavenError
from assistant.models.download_types import (
    DiskFullError,
    DownloadError,
    DownloadProgress,
    DownloadResult,
    DownloadSpec,
    DownloadState,
    _Remote,
    _Restart,
    _Stopped,
)
from assistant.models.gguf import read_gguf
from assistant.models.hub_logging import route_hub_logging
from assistant.models.registry import ModelRecord, ModelRegistry, sanitize_id
from assistant.models.split_download import discard_set, download_split, installed_name, set_of
from assistant.models.splits import split_parts
from assistant.models.transfer import (
    _cannot_connect,
    _hash_file,
    _human,
    _Meter,
    _sidecar,
    _size,
    _StopWatcher,
    _transient,
)
from assistant.paths import AppPaths

__all__ = [
    "DiskFullError", "DownloadError", "DownloadProgress", "DownloadResult", "DownloadSpec", "DownloadState",
    "Downloader",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
DISK_MARGIN_BYTES = 200 * 1024**2
OFFLINE_RETRIES = 2              # when no connection opens at all: two quick retries (1 s, 2 s), then the sentence
LOCK_POLL_SECONDS = 0.2          # a download waiting for another one checks pause/cancel this often
WAITING_NOTE = "Waiting for another Haven download of this model to finish."
TAKEN_OVER_NOTE = "The other download stopped before finishing; Haven continues its partial file here."


def _is_sha256(value: str | None) -> bool:
    return bool(value) and len(value or "") == 64 and all(c in "0123456789abcdef" for c in (value or "").lower())


class Downloader:
    """Fetches one file at a time into the models folder. Thread-safe per call; no state between calls."""

    def __init__(
        self, paths: AppPaths, registry: ModelRegistry, *, token: str | None = None,
        token_source: Callable[[], str | None] | None = None, retries: int = 6,
        backoff_seconds: float = 1.0, timeout_seconds: float = 30.0,
        disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free,
    ) -> None:
        """``token_source`` is asked for the Hugging Face token when a request needs it, so a token saved
        while the app runs is used at once, and the keyring is not opened at start-up."""
        self._paths = paths
        self._registry = registry
        self._token_source = token_source if token_source is not None else (lambda: token)
        self._retries = retries
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._disk_free = disk_free

    @property
    def _token(self) -> str | None:
        return self._token_source()

    # -- public --------------------------------------------------------------------------------

    def partial_path(self, spec: DownloadSpec) -> Path:
        return self._paths.partial_downloads_dir / f"{sanitize_id(spec.model_id)}.gguf.part"

    def lock_path(self, spec: DownloadSpec) -> Path:
        """The lock every Haven process takes before touching ``spec``'s partial file.

        Not beside the partial file: filelock leaves a lock file in place on release (deleting one another
        process has open would let two processes each hold "the" lock), and ``.partial/`` is kept empty
        when nothing is being downloaded."""
        return self._locks_dir / f"{sanitize_id(spec.model_id)}.lock"

    def download(
        self, spec: DownloadSpec, *, progress: Callable[[DownloadProgress], None] | None = None,
        stop: threading.Event | None = None, discard_on_stop: bool = False,
    ) -> DownloadResult:
        """Download, verify and install ``spec``. ``stop`` pauses (or cancels, with ``discard_on_stop``)."""
        stop = stop or threading.Event()
        report = progress or (lambda _p: None)
        part = self.partial_path(spec)
        part.parent.mkdir(parents=True, exist_ok=True)
        held = self._acquire(spec, part, stop, report)
        if held is None:  # stopped while another process had the file: its partial file is left to it
            if discard_on_stop:
                self.discard(spec)
            return self._stopped(part, discard_on_stop, report)
        lock, waited = held
        try:
            if set_of(spec) is not None and self._installed_copy(spec) is None:
                return download_split(self, spec, stop, report, discard_on_stop)  # split_download.py
            return self._download_locked(spec, part, stop, report, discard_on_stop, waited)
        finally:
            lock.release()

    def discard(self, spec: DownloadSpec) -> bool:
        """Delete ``spec``'s partial file unless a download (in any Haven process) is using it, in which case
        it is left to that download. True when nothing of it is left."""
        lock = self._lock(self.lock_path(spec))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("partial download of %s is in use by another download; left in place", spec.model_id)
            return False
        try:
            self._discard_files(spec)
        finally:
            lock.release()
        return True

    # -- the cross-process lock ----------------------------------------------------------------

    @property
    def _locks_dir(self) -> Path:
        return self._paths.models_dir / ".locks"

    def _lock(self, path: Path) -> BaseFileLock:
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path))

    def _acquire(self, spec: DownloadSpec, part: Path, stop: threading.Event,
                 report: Callable[[DownloadProgress], None]) -> tuple[BaseFileLock, bool] | None:
        """Take ``spec``'s lock; returns it and whether another download held it first, or None if ``stop``
        was set while waiting. The wait polls, so pause and cancel act within a second."""
        lock = self._lock(self.lock_path(spec))
        waited = False
        while not stop.is_set():
            try:
                lock.acquire(timeout=LOCK_POLL_SECONDS if waited else 0)
            except Timeout:
                if not waited:
                    log.info("%s is being downloaded by another Haven process; waiting", spec.model_id)
                waited = True
                # What the other download has written so far, so a progress bar still moves.
                report(DownloadProgress(DownloadState.DOWNLOADING, _size(part), spec.size_bytes, 0.0, None,
                                        WAITING_NOTE))
                continue
            return lock, waited
        return None

    # -- one download, under its lock ----------------------------------------------------------

    def _download_locked(self, spec: DownloadSpec, part: Path, stop: threading.Event,
                         report: Callable[[DownloadProgress], None], discard_on_stop: bool,
                         waited: bool) -> DownloadResult:
        done = self._installed_copy(spec)
        if done is not None:
            log.info("%s is already installed and verified; nothing to download", spec.model_id)
            path, sha256 = done
            size = _size(path)
            report(DownloadProgress(DownloadState.COMPLETED, size, size, 0.0, 0.0))
            return DownloadResult(DownloadState.COMPLETED, path, sha256, already_installed=True)
        if waited:
            report(DownloadProgress(DownloadState.DOWNLOADING, _size(part), spec.size_bytes, 0.0, None,
                                    TAKEN_OVER_NOTE))
        try:
            remote = self._metadata(spec)
            expected = self._expected_sha256(spec, remote)
            total = remote.size or spec.size_bytes
            resumed_from = self._prepare_partial(part, spec, remote)
            self._check_space(part, total)
            digest = self._transfer(part, spec, remote, total, stop, report)
        except _Stopped:
            if discard_on_stop:
                self._discard_files(spec)
            return self._stopped(part, discard_on_stop, report)
        report(DownloadProgress(DownloadState.VERIFYING, _size(part), total, 0.0, None))
        installed = self._install(part, spec, remote, expected, digest)
        report(DownloadProgress(DownloadState.COMPLETED, installed.stat().st_size, total, 0.0, 0.0))
        return DownloadResult(DownloadState.COMPLETED, installed, expected, resumed_from)

    def _stopped(self, part: Path, discarded: bool, report: Callable[[DownloadProgress], None]) -> DownloadResult:
        state = DownloadState.CANCELLED if discarded else DownloadState.PAUSED
        report(DownloadProgress(state, _size(part), None, 0.0, None))
        return DownloadResult(state, None, None)

    def _installed_copy(self, spec: DownloadSpec) -> tuple[Path, str] | None:
        """The installed file of this very download, if there is one: same repository and revision (and the
        catalog's checksum, when it gives one). A record is written only after the checksum matched."""
        model_id = sanitize_id(spec.model_id)
        record = self._registry.records().get(model_id)
        if record is None or record.file != installed_name(spec) or record.sha256 is None:
            return None
        if record.repo != spec.repo or record.revision != spec.revision:
            return None
        if spec.sha256 and record.sha256 != spec.sha256.lower():
            return None
        path = self._paths.models_dir / record.file
        size = sum(_size(p) for p in split_parts(path))
        return (path, record.sha256) if path.is_file() and size == record.size_bytes else None

    def _discard_files(self, spec: DownloadSpec) -> None:
        """Only with the model's lock held (or from :meth:`discard`, which takes it)."""
        if set_of(spec) is not None:
            discard_set(self, spec)
        part = self.partial_path(spec)
        for path in (part, _sidecar(part)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- metadata ------------------------------------------------------------------------------

    def _endpoint(self, spec: DownloadSpec) -> str:
        return (spec.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")

    def _metadata(self, spec: DownloadSpec) -> _Remote:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        route_hub_logging()

        endpoint = self._endpoint(spec)
        url = hf_hub_url(spec.repo, spec.file, revision=spec.revision, endpoint=endpoint)
        meta = self._with_retries(lambda: get_hf_file_metadata(
            url, token=self._token or False, timeout=self._timeout, endpoint=endpoint), spec, threading.Event())
        etag = meta.etag
        return _Remote(url, meta.commit_hash, etag, meta.size, etag.lower() if _is_sha256(etag) else None)

    def _expected_sha256(self, spec: DownloadSpec, remote: _Remote) -> str:
        from huggingface_hub import HfApi
        route_hub_logging()

        if spec.sha256:
            if remote.sha256 and remote.sha256 != spec.sha256.lower():
                raise DownloadError(
                    f"The hub's copy of {spec.file} is not the file Haven's catalog vouches for (its checksum "
                    "changed). Nothing was downloaded; update Haven to get the current catalog.")
            return spec.sha256.lower()
        if remote.sha256:
            return remote.sha256
        # Not an LFS ETag: ask the file listing, which carries the LFS sha256 of every file.
        try:
            info = HfApi(endpoint=self._endpoint(spec)).model_info(
                spec.repo, revision=remote.commit or spec.revision, files_metadata=True, token=self._token or False)
        except Exception as exc:
            raise self._explain(exc, spec) from exc
        for sibling in info.siblings or []:
            if sibling.rfilename == spec.file and sibling.lfs is not None and _is_sha256(sibling.lfs.sha256):
                return str(sibling.lfs.sha256).lower()
        raise DownloadError(
            f"The hub publishes no checksum for {spec.repo}/{spec.file}, so Haven cannot verify it and will not "
            "install it. Download it yourself and use `haven-cli models import` if you trust it.")

    # -- partial file --------------------------------------------------------------------------

    def _prepare_partial(self, part: Path, spec: DownloadSpec, remote: _Remote) -> int:
        """Keep the partial file only if it belongs to the very same remote file; returns its size."""
        wanted = {"url": remote.url, "commit": remote.commit, "etag": remote.etag, "size": remote.size,
                  "repo": spec.repo, "file": spec.file}
        try:
            recorded = json.loads(_sidecar(part).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        size = _size(part)
        if size and (recorded != wanted or (remote.size is not None and size > remote.size)):
            log.info("partial download of %s does not match the remote file any more; restarting", spec.file)
            self._discard_files(spec)
            size = 0
        _sidecar(part).write_text(json.dumps(wanted), encoding="utf-8")
        return size

    def _check_space(self, part: Path, total: int | None) -> None:
        if total is None:
            return
        needed = max(total - _size(part), 0) + DISK_MARGIN_BYTES
        free = self._disk_free(part.parent)
        if free < needed:
            raise DiskFullError(
                f"Not enough disk space: this download needs {_human(needed)} (with a safety margin) but only "
                f"{_human(free)} is free in {part.parent}. Free some space and try again; what was already "
                "downloaded is kept.")

    # -- transfer ------------------------------------------------------------------------------

    def _transfer(self, part: Path, spec: DownloadSpec, remote: _Remote, total: int | None,
                  stop: threading.Event, report: Callable[[DownloadProgress], None]) -> str:
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        hasher = _hash_file(part)
        meter = _Meter(total, report)
        attempt = 0
        while True:
            if stop.is_set():
                raise _Stopped
            offset = _size(part)
            if total is not None and offset >= total:
                return str(hasher.hexdigest())
            meter.start_at(offset)
            try:
                self._fetch_from(part, offset, remote, spec, hasher, meter, stop)
                attempt = 0
                if total is None:
                    return str(hasher.hexdigest())
            except _Restart as restart:
                meter.note(str(restart))
                with part.open("wb"):
                    pass
                hasher = hashlib.sha256()
            except _Stopped:
                raise
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise DiskFullError(
                        f"The disk filled up while downloading {spec.file}. Free some space and run the "
                        "download again; it continues where it stopped.") from exc
                if not isinstance(exc, httpx2.TransportError | HfHubHTTPError):
                    raise DownloadError(f"Haven could not write {part} ({exc.strerror or exc}).") from exc
                attempt = self._retry_or_raise(exc, attempt, spec, stop, meter)
            except httpx2.TransportError as exc:
                attempt = self._retry_or_raise(exc, attempt, spec, stop, meter)

    def _fetch_from(self, part: Path, offset: int, remote: _Remote, spec: DownloadSpec, hasher: Any,
                    meter: _Meter, stop: threading.Event) -> None:
        import httpx2
        from huggingface_hub import get_session, hf_raise_for_status
        route_hub_logging()
        from huggingface_hub.utils._headers import build_hf_headers

        headers = build_hf_headers(token=self._token or False)
        headers["Accept-Encoding"] = "identity"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with get_session().stream("GET", remote.url, headers=headers, timeout=self._timeout,
                                  follow_redirects=True) as response:
            if response.status_code == 416 and offset:
                raise _Restart("The server refused to continue the partial file; starting again.")
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            if offset and response.status_code != 206:
                raise _Restart("The server does not support resuming, so the download restarted from the beginning.")
            if offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                raise _Restart("The server answered a different part of the file; starting again.")
            watcher = _StopWatcher(stop, response)
            try:
                with part.open("ab") as handle:
                    for chunk in response.iter_bytes():  # as the bytes arrive, so a pause keeps them
                        if stop.is_set():
                            raise _Stopped
                        self._write(handle, chunk)
                        hasher.update(chunk)
                        meter.add(len(chunk))
                    handle.flush()
                    os.fsync(handle.fileno())
            except (httpx2.StreamClosed, httpx2.ReadError):
                if stop.is_set():
                    raise _Stopped from None
                raise
            finally:
                watcher.finish()

    def _write(self, handle: BinaryIO, chunk: bytes) -> None:
        """The one place bytes reach the disk (tests inject a full disk here)."""
        handle.write(chunk)

    def _retry_or_raise(self, exc: Exception, attempt: int, spec: DownloadSpec, stop: threading.Event,
                        meter: _Meter) -> int:
        if not _transient(exc) or attempt >= self._retries:
            raise self._explain(exc, spec) from exc
        delay = self._backoff * (2**attempt)
        meter.note(f"Connection problem ({type(exc).__name__}); retrying in {delay:.0f} s.")
        log.info("download of %s: %s; retry %d in %.1f s", spec.file, exc, attempt + 1, delay)
        if stop.wait(delay):
            raise _Stopped
        return attempt + 1

    def _with_retries(self, call: Callable[[], Any], spec: DownloadSpec, stop: threading.Event) -> Any:
        """The first request of a download. A computer that cannot connect at all is told so within seconds
        (two quick retries), not after the minute of backoff a connection that drops mid-transfer gets."""
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                if isinstance(exc, HavenError):
                    raise
                limit = min(self._retries, OFFLINE_RETRIES) if _cannot_connect(exc) else self._retries
                if not _transient(exc) or attempt >= limit:
                    raise self._explain(exc, spec) from exc
                log.info("download of %s: first request failed (%s); retry %d of %d", spec.file, exc, attempt + 1,
                         limit)
                if stop.wait(self._backoff * (2**attempt)):
                    raise _Stopped from exc
                attempt += 1

    # -- finishing -----------------------------------------------------------------------------

    def _install(self, part: Path, spec: DownloadSpec, remote: _Remote, expected: str, digest: str) -> Path:
        if digest != expected:
            self._discard_files(spec)
            raise DownloadError(
                f"The downloaded {spec.file} did not match its published checksum, so it was deleted and nothing "
                "was installed. Try again; if it keeps happening the server or a proxy is altering the file.")
        try:
            read_gguf(part)
        except HavenError as exc:
            self._discard_files(spec)
            raise DownloadError(f"The downloaded file is not a usable model: {exc}") from exc
        target = self._paths.models_dir / f"{sanitize_id(spec.model_id)}.gguf"
        with self._registry.locked():  # the file moves only once its record can be written
            os.replace(part, target)
            with contextlib.suppress(FileNotFoundError):
                _sidecar(part).unlink()
            self._registry.record(sanitize_id(spec.model_id), ModelRecord(
                name=spec.name or spec.file.removesuffix(".gguf"), file=target.name, sha256=expected,
                size_bytes=target.stat().st_size, license=spec.license, tags=list(spec.tags), repo=spec.repo,
                revision=spec.revision, commit=remote.commit, chat_format=spec.chat_format,
            ))
        return target

    def _explain(self, exc: Exception, spec: DownloadSpec) -> DownloadError:
        import httpx2
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        where = f"{spec.repo}/{spec.file}"
        if isinstance(exc, DownloadError):
            return exc
        if isinstance(exc, GatedRepoError):
            return DownloadError(
                f"{spec.repo} is a gated model: open {self._endpoint(spec)}/{spec.repo}, accept its licence there "
                "with your Hugging Face account, then save your access token (`haven-cli hf-token set`, or the "
                "model manager) and try again.")
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401 or (status == 403 and self._token):
            return DownloadError(
                "Hugging Face refused the access token. Check that it is valid and has read access, then save it "
                "again with `haven-cli hf-token set`.")
        if isinstance(exc, RevisionNotFoundError):
            return DownloadError(f"The revision {spec.revision!r} of {spec.repo} does not exist on the hub.")
        if isinstance(exc, EntryNotFoundError):
            return DownloadError(f"{where} was not found on the hub: check the file name.")
        if isinstance(exc, RepositoryNotFoundError):
            return DownloadError(
                f"The repository {spec.repo} was not found on the hub (or it is private). Check the name; for a "
                "private or gated model, save your access token with `haven-cli hf-token set`.")
        if isinstance(exc, OfflineModeIsEnabled):
            return DownloadError("Downloads are switched off (HF_HUB_OFFLINE is set). Unset it to download models.")
        if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
            return DownloadError(
                f"Haven cannot reach {self._endpoint(spec)}: you seem to be offline. Check the connection and run "
                "the download again; it continues where it stopped.")
        if isinstance(exc, httpx2.TransportError):
            return DownloadError(
                f"The connection kept failing while downloading {where} ({type(exc).__name__}). Run the download "
                "again later; it continues where it stopped.")
        if isinstance(exc, HfHubHTTPError):
            return DownloadError(f"The hub answered with an error for {where} (HTTP {status}). Try again later.")
        return DownloadError(f"Downloading {where} failed ({type(exc).__name__}: {exc}).")
