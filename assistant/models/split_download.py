"""Downloading a split GGUF model (``NAME-00001-of-00003.gguf`` ...) as one set, under the model's one lock.

Each part goes through the same steps as a single file (:mod:`assistant.models.download`: metadata, the
hub's LFS sha256, a resumable partial file, retries, pause and cancel). A part whose checksum matched is
kept as ``.partial/ID-0000i-of-0000n.gguf.verified`` with a sidecar naming its remote file, so a paused or
interrupted set resumes at the part it stopped in. Only when every part is verified, and the first part's
header says it is the first of exactly that many, are all parts moved into the models folder side by side
(``models/ID-00001-of-00003.gguf`` ...), which is where llama.cpp looks for them, and recorded as one model
whose path is the first part. A checksum mismatch deletes that part and installs nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import HavenError
from assistant.models.download_types import (
    DownloadError,
    DownloadProgress,
    DownloadResult,
    DownloadSpec,
    DownloadState,
    _Remote,
    _Stopped,
)
from assistant.models.gguf import read_gguf
from assistant.models.registry import ModelRecord, sanitize_id
from assistant.models.splits import SplitName, part_name, split_name

if TYPE_CHECKING:
    from assistant.models.download import Downloader  # which imports this module

__all__ = ["download_split", "installed_name", "part_specs", "set_of"]


def set_of(spec: DownloadSpec) -> SplitName | None:
    """The split set ``spec`` names by its first part, or None for a single file."""
    split = split_name(spec.file.rsplit("/", 1)[-1])
    return split if split is not None and split.index == 1 else None


def installed_name(spec: DownloadSpec) -> str:
    """The file name in the models folder: ``ID.gguf``, or ``ID-00001-of-0000N.gguf`` for a split model."""
    split = set_of(spec)
    model_id = sanitize_id(spec.model_id)
    return part_name(model_id, 1, split.count) if split else f"{model_id}.gguf"


def part_specs(spec: DownloadSpec) -> list[DownloadSpec]:
    split = set_of(spec)
    assert split is not None
    folder = spec.file.rsplit("/", 1)[0] + "/" if "/" in spec.file else ""
    model_id = sanitize_id(spec.model_id)
    return [replace(spec, file=folder + part_name(split.prefix, i, split.count),
                    model_id=f"{model_id}-{i:05d}-of-{split.count:05d}",
                    sha256=spec.sha256 if i == 1 else None, size_bytes=None)
            for i in range(1, split.count + 1)]


def _verified_path(dl: Downloader, part: DownloadSpec) -> Path:
    return dl.partial_path(part).with_suffix(".verified")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def discard_set(dl: Downloader, spec: DownloadSpec) -> None:
    """Every partial and verified part of ``spec``'s set (the caller holds the model's lock)."""
    for part in part_specs(spec):
        for path in (dl.partial_path(part), _sidecar(dl.partial_path(part)), _verified_path(dl, part),
                     _sidecar(_verified_path(dl, part))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _already_verified(dl: Downloader, part: DownloadSpec, remote: _Remote) -> str | None:
    path = _verified_path(dl, part)
    try:
        recorded = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    wanted = {"url": remote.url, "commit": remote.commit, "size": remote.size}
    if {k: recorded.get(k) for k in wanted} != wanted or remote.size not in (None, size):
        return None
    sha = recorded.get("sha256")
    return sha if isinstance(sha, str) else None


def download_split(dl: Downloader, spec: DownloadSpec, stop: threading.Event,
                   report: Callable[[DownloadProgress], None], discard_on_stop: bool) -> DownloadResult:
    parts = part_specs(spec)
    try:
        remotes = [dl._metadata(p) for p in parts]
        total = sum(r.size or 0 for r in remotes) or None
        dl._check_space(dl.partial_path(parts[0]), total)
        offset, resumed, digests = 0, 0, []
        for index, (part, remote) in enumerate(zip(parts, remotes, strict=True), start=1):
            done = _already_verified(dl, part, remote)
            if done is not None:
                digests.append(done)
                offset += remote.size or 0
                resumed = offset
                continue
            expected = dl._expected_sha256(part, remote)
            partial = dl.partial_path(part)
            resumed += dl._prepare_partial(partial, part, remote)
            base = offset

            def shifted(p: DownloadProgress, base: int = base) -> None:
                report(replace(p, downloaded=base + p.downloaded, total=total))

            digest = dl._transfer(partial, part, remote, remote.size, stop, shifted)
            if digest != expected:
                dl._discard_files(part)
                raise DownloadError(
                    f"Part {index} of {len(parts)} of {spec.file} did not match its published checksum, so it was "
                    "deleted and nothing was installed. Try again; if it keeps happening the server or a proxy is "
                    "altering the file.")
            verified = _verified_path(dl, part)
            os.replace(partial, verified)
            _sidecar(verified).write_text(json.dumps({"url": remote.url, "commit": remote.commit,
                                                      "size": remote.size, "sha256": digest}), encoding="utf-8")
            with contextlib.suppress(FileNotFoundError):
                _sidecar(partial).unlink()
            digests.append(digest)
            offset += remote.size or verified.stat().st_size
    except _Stopped:
        if discard_on_stop:
            discard_set(dl, spec)
        state = DownloadState.CANCELLED if discard_on_stop else DownloadState.PAUSED
        report(DownloadProgress(state, 0, None, 0.0, None))
        return DownloadResult(state, None, None)
    report(DownloadProgress(DownloadState.VERIFYING, offset, total, 0.0, None))
    first = _install_set(dl, spec, parts, remotes[0].commit, digests)
    report(DownloadProgress(DownloadState.COMPLETED, offset, total, 0.0, 0.0))
    return DownloadResult(DownloadState.COMPLETED, first, digests[0], resumed)


def _install_set(dl: Downloader, spec: DownloadSpec, parts: list[DownloadSpec], commit: str | None,
                 digests: list[str]) -> Path:
    verified = [_verified_path(dl, p) for p in parts]
    try:
        header = read_gguf(verified[0])
    except HavenError as exc:
        discard_set(dl, spec)
        raise DownloadError(f"The downloaded file is not a usable model: {exc}") from exc
    if header.get("split.count") != len(parts) or header.get("split.no", 0) != 0:
        discard_set(dl, spec)
        raise DownloadError(
            f"{spec.file} does not say it is the first of {len(parts)} parts, so the set cannot be loaded; nothing "
            "was installed.")
    model_id = sanitize_id(spec.model_id)
    targets = [dl._paths.models_dir / part_name(model_id, i, len(parts)) for i in range(1, len(parts) + 1)]
    registry = dl._registry
    with registry.locked():
        for source, target in zip(verified, targets, strict=True):
            os.replace(source, target)
            with contextlib.suppress(FileNotFoundError):
                _sidecar(source).unlink()
        registry.record(model_id, ModelRecord(
            name=spec.name or spec.file.rsplit("/", 1)[-1].removesuffix(".gguf"), file=targets[0].name,
            sha256=digests[0], size_bytes=sum(t.stat().st_size for t in targets), license=spec.license,
            tags=list(spec.tags), repo=spec.repo, revision=spec.revision, commit=commit, chat_format=spec.chat_format,
        ))
    return targets[0]
