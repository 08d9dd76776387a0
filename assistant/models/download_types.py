"""What a download is and how it ends: the values the downloader, the queue, the CLI and the app share
(kept apart from :mod:`assistant.models.download` so that the transfer helpers can use them too)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from assistant.errors import HavenError
from assistant.models.catalog import CatalogEntry

__all__ = [
    "DiskFullError", "DownloadError", "DownloadProgress", "DownloadResult", "DownloadSpec", "DownloadState",
]


class DownloadError(HavenError):
    """A download failed; the message says why and what to do."""


class DiskFullError(DownloadError):
    pass


class DownloadState(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DownloadSpec:
    model_id: str
    repo: str
    file: str
    revision: str = "main"
    sha256: str | None = None        # from the catalog; else taken from the hub
    size_bytes: int | None = None
    name: str = ""
    license: str = ""
    tags: tuple[str, ...] = ("chat",)
    chat_format: str | None = None
    endpoint: str | None = None      # None: HF_ENDPOINT or the public hub

    @classmethod
    def from_catalog(cls, entry: CatalogEntry, *, revision: str | None = None,
                     endpoint: str | None = None) -> DownloadSpec:
        if entry.repo is None:
            raise DownloadError(f"{entry.name} has no download source in Haven's catalog.")
        return cls(
            model_id=entry.id, repo=entry.repo, file=entry.file, revision=revision or entry.revision or "main",
            sha256=entry.sha256, size_bytes=entry.size_bytes, name=entry.name, license=entry.license_name,
            tags=entry.tags, chat_format=entry.chat_format, endpoint=endpoint,
        )


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    state: DownloadState
    downloaded: int
    total: int | None
    bytes_per_second: float
    seconds_left: float | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class DownloadResult:
    state: DownloadState             # COMPLETED, PAUSED or CANCELLED
    path: Path | None
    sha256: str | None
    resumed_from: int = 0            # bytes that were already on disk when this run started
    already_installed: bool = False  # COMPLETED without fetching: an install verified earlier (or meanwhile)


@dataclass(frozen=True, slots=True)
class _Remote:
    url: str
    commit: str | None
    etag: str | None
    size: int | None
    sha256: str | None


class _Restart(Exception):
    """The partial file cannot be continued (the server ignored Range or the file changed)."""


class _Stopped(Exception):
    pass
