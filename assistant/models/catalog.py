"""The curated model catalog (``resources/catalog.json``): what Haven offers to download, and how to choose.

Every field that becomes part of a path or URL is validated here: ids and file names are plain names
(no separators, no ``..``), repos are ``owner/name``, checksums are 64 hex digits or null. An entry that
fails is left out with a warning; one bad entry never hides the rest.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError
from assistant.hardware import HardwareInfo
from assistant.models.fit import Fit, ModelShape, fit_for, memory_needed

__all__ = ["SMALL_MODEL_BYTES", "Catalog", "CatalogEntry", "Use", "load_catalog", "recommend", "recommend_by_use"]

log = logging.getLogger(__name__)

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,119}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}\.gguf$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REVISION = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    id: str
    name: str
    description: str
    repo: str | None
    file: str
    revision: str | None
    sha256: str | None
    size_bytes: int | None
    approx_size_bytes: int
    parameters: str
    quant: str
    context_length: int
    license_name: str
    license_url: str
    chat_format: str | None
    tags: tuple[str, ...]
    gated: bool
    shape: ModelShape | None
    rank: int = 0  # the team's preference among models that fit (higher is better)

    @property
    def display_size(self) -> int:
        return self.size_bytes or self.approx_size_bytes

    @property
    def is_guard(self) -> bool:
        return "safety-guard" in self.tags

    def memory_needed(self, context_length: int) -> int:
        return memory_needed(self.display_size, self.shape, min(context_length, self.context_length))


class _Invalid(ValueError):
    pass


def _text(raw: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Invalid(f"{key} must be text")
    return value


def _optional(raw: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise _Invalid(f"{key} has an invalid value")
    return value


def _positive_int(raw: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _Invalid(f"{key} must be a positive whole number")
    return value


def _rank(raw: dict[str, Any]) -> int:
    value = raw.get("rank", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Invalid("rank must be a whole number, 0 or more")
    return value


def _entry(raw: Any) -> CatalogEntry:
    if not isinstance(raw, dict):
        raise _Invalid("an entry must be an object")
    entry_id = _text(raw, "id")
    if not _ID.match(entry_id):
        raise _Invalid("id must be lowercase letters, digits, dots, dashes or underscores")
    file = _text(raw, "file")
    if not _FILE.match(file) or ".." in file:
        raise _Invalid("file must be a plain .gguf file name")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _Invalid("tags must be a list of text")
    shape_raw = raw.get("shape")
    shape = None
    if shape_raw is not None:
        if not isinstance(shape_raw, dict):
            raise _Invalid("shape must be an object")
        numbers = [_positive_int(shape_raw, k, required=True) for k in ("layers", "kv_heads", "head_dim")]
        shape = ModelShape(*(int(n or 0) for n in numbers))
    gated = raw.get("gated", False)
    if not isinstance(gated, bool):
        raise _Invalid("gated must be true or false")
    return CatalogEntry(
        id=entry_id, name=_text(raw, "name"), description=_text(raw, "description", required=False),
        repo=_optional(raw, "repo", _REPO), file=file, revision=_optional(raw, "revision", _REVISION),
        sha256=_optional(raw, "sha256", _SHA256), size_bytes=_positive_int(raw, "size_bytes", required=False),
        approx_size_bytes=int(_positive_int(raw, "approx_size_bytes", required=True) or 0),
        parameters=_text(raw, "parameters"), quant=_text(raw, "quant"),
        context_length=int(_positive_int(raw, "context_length", required=True) or 0),
        license_name=_text(raw, "license_name"), license_url=_text(raw, "license_url", required=False),
        chat_format=raw.get("chat_format") if isinstance(raw.get("chat_format"), str) else None,
        tags=tuple(tags), gated=gated, shape=shape, rank=_rank(raw),
    )


@dataclass(frozen=True, slots=True)
class Catalog:
    entries: tuple[CatalogEntry, ...]
    problems: tuple[str, ...] = ()

    def get(self, entry_id: str) -> CatalogEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def chat_models(self) -> list[CatalogEntry]:
        return [e for e in self.entries if not e.is_guard]


def parse_catalog(data: Any) -> Catalog:
    """Build a catalog from parsed JSON; never raises for bad entries, only skips them."""
    raw_entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(raw_entries, list):
        return Catalog((), ("the catalog has no list of models",))
    entries: list[CatalogEntry] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_entries):
        try:
            entry = _entry(raw)
        except _Invalid as exc:
            problems.append(f"catalog entry {index} was left out: {exc}")
            continue
        if entry.id in seen:
            problems.append(f"catalog entry {index} was left out: the id {entry.id} is used twice")
            continue
        seen.add(entry.id)
        entries.append(entry)
    for problem in problems:
        log.warning(problem)
    return Catalog(tuple(entries), tuple(problems))


def load_catalog(path: Path | None = None) -> Catalog:
    """``path``, else the current catalog: a refreshed copy whose signature verifies, or the bundled one
    (:mod:`assistant.models.catalog_refresh`; local files only, never the network)."""
    if path is None:
        from assistant.models.catalog_refresh import current_catalog_path

        path = current_catalog_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"Haven's model catalog {path} cannot be read ({exc}). Reinstall Haven.") from exc
    return parse_catalog(data)


def recommend(entries: Iterable[CatalogEntry], hardware: HardwareInfo, context_length: int,
              *, gpu_offload: bool = False) -> CatalogEntry | None:
    """The preferred chat model (highest ``rank``) among those labelled "fits" on this machine."""
    fitting = [
        e for e in entries
        if not e.is_guard and "starter" not in e.tags
        and fit_for(e.memory_needed(context_length), hardware, gpu_offload=gpu_offload) is Fit.YES
    ]
    return max(fitting, key=lambda e: (e.rank, e.display_size), default=None)


# "Small and fast": a model file this size or under decodes quickly on an ordinary laptop CPU.
SMALL_MODEL_BYTES = 2_600_000_000


class Use(StrEnum):
    GENERAL = "general"
    CODING = "coding"
    SMALL = "small-fast"

    @property
    def label(self) -> str:
        return {"general": "General chat", "coding": "Coding", "small-fast": "Small and fast"}[self.value]


def recommend_by_use(entries: Iterable[CatalogEntry], hardware: HardwareInfo, context_length: int,
                     *, gpu_offload: bool = False) -> dict[Use, CatalogEntry | None]:
    """The best model that fits this computer for each use: any chat model; one tagged ``coding``; the best
    one small enough to be quick (:data:`SMALL_MODEL_BYTES`)."""
    chat = list(entries)
    pools = {
        Use.GENERAL: chat,
        Use.CODING: [e for e in chat if "coding" in e.tags],
        Use.SMALL: [e for e in chat if e.display_size <= SMALL_MODEL_BYTES],
    }
    return {use: recommend(pool, hardware, context_length, gpu_offload=gpu_offload) for use, pool in pools.items()}
