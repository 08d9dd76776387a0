"""Keeping the curated catalog current: a newer ``catalog.json`` published in the project's own repository,
signed with the project's Ed25519 key, fetched only when the user asks.

* The source (the file's URL, its detached signature's URL and the public key) is
  ``resources/catalog-source.json``, bundled with Haven; ``HAVEN_CATALOG_URL`` points elsewhere (a mirror,
  a test server), and the signature is then expected at that URL plus ``.sig``.
* A refresh downloads both, checks the signature against the bundled key, parses the catalog, and refuses a
  file that is not signed, is tampered with, has no usable model, or is older (``version``) than the bundled
  copy (no rollback to a catalog with known-bad entries). Only then is it saved, with its signature, under
  ``<data>/catalog/``.
* At start-up :func:`current_catalog_path` (local files only, never the network) uses the saved copy when its
  signature still verifies and it is not older than the bundled one; otherwise the bundled copy, the fallback.
* Nothing here runs without the user's say: ``haven-cli models catalog refresh`` or the model manager's
  "Check for catalog updates" button, whose work runs on a worker thread.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import HavenError
from assistant.files import write_atomically
from assistant.models.catalog import Catalog, parse_catalog
from assistant.models.ed25519 import verify
from assistant.models.hub_logging import route_hub_logging
from assistant.paths import AppPaths, resource_path

__all__ = ["CatalogSource", "RefreshError", "RefreshResult", "current_catalog_path", "refresh_catalog"]

log = logging.getLogger(__name__)

MAX_CATALOG_BYTES = 4 * 1024 * 1024


class RefreshError(HavenError):
    """The catalog could not be refreshed; the bundled (or previously refreshed) copy stays in use."""


@dataclass(frozen=True, slots=True)
class CatalogSource:
    url: str
    signature_url: str
    public_key: bytes

    @classmethod
    def bundled(cls) -> CatalogSource:
        raw = json.loads(resource_path("catalog-source.json").read_text(encoding="utf-8"))
        url = os.environ.get("HAVEN_CATALOG_URL") or str(raw["url"])
        signature_url = url + ".sig" if os.environ.get("HAVEN_CATALOG_URL") else str(raw["signature_url"])
        return cls(url, signature_url, bytes.fromhex(str(raw["public_key"])))


@dataclass(frozen=True, slots=True)
class RefreshResult:
    catalog: Catalog
    version: int
    changed: bool        # False: the published catalog is the one already in use


def _version(data: Any) -> int:
    value = data.get("version") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _signature(raw: bytes) -> bytes:
    try:
        return base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        return b""


def _refreshed_dir(paths: AppPaths) -> Path:
    return paths.data_dir / "catalog"


def _bundled_version() -> int:
    try:
        return _version(json.loads(resource_path("catalog.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return 0


def current_catalog_path(paths: AppPaths | None = None, source: CatalogSource | None = None) -> Path:
    """The refreshed catalog when it is intact, signed and not older than the bundled one; else the bundled."""
    bundled = resource_path("catalog.json")
    try:
        paths = paths or AppPaths.from_environment()
        folder = _refreshed_dir(paths)
        body = (folder / "catalog.json").read_bytes()
        signature = _signature((folder / "catalog.json.sig").read_bytes())
        key = (source or CatalogSource.bundled()).public_key
    except (OSError, ValueError, KeyError):
        return bundled
    if not verify(key, body, signature):
        log.warning("the refreshed catalog's signature does not verify; using the bundled catalog")
        return bundled
    try:
        newer = _version(json.loads(body)) >= _bundled_version()
    except ValueError:
        return bundled
    return folder / "catalog.json" if newer else bundled


def _fetch(url: str, timeout: float) -> bytes:
    from huggingface_hub import get_session  # its httpx client, with the proxy settings the user has
    route_hub_logging()

    try:
        response = get_session().get(url, timeout=timeout, follow_redirects=True)
    except Exception as exc:
        raise RefreshError(f"Haven cannot reach {url} ({type(exc).__name__}); the catalog it has stays in use. "
                           "Check the connection and try again.") from exc
    if response.status_code != 200:
        raise RefreshError(f"{url} answered HTTP {response.status_code}; the catalog Haven has stays in use.")
    if len(response.content) > MAX_CATALOG_BYTES:
        raise RefreshError(f"{url} is far larger than a catalog can be, so Haven did not use it.")
    return bytes(response.content)


def refresh_catalog(paths: AppPaths, source: CatalogSource | None = None, *, timeout: float = 20.0) -> RefreshResult:
    """Fetch, verify and save the published catalog. Raises :class:`RefreshError` with a sentence."""
    source = source or CatalogSource.bundled()
    body = _fetch(source.url, timeout)
    signature = _signature(_fetch(source.signature_url, timeout))
    if not verify(source.public_key, body, signature):
        raise RefreshError("The downloaded catalog is not signed by the Haven project (its signature does not "
                           "match), so it was refused; the catalog Haven has stays in use.")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RefreshError("The downloaded catalog cannot be read, so it was refused.") from exc
    catalog = parse_catalog(data)
    if not catalog.entries:
        raise RefreshError("The downloaded catalog lists no usable model, so it was refused.")
    version = _version(data)
    if version < _bundled_version():
        raise RefreshError(f"The published catalog (version {version}) is older than the one in this Haven "
                           f"(version {_bundled_version()}), so it was not used.")
    folder = _refreshed_dir(paths)
    previous = folder / "catalog.json"
    changed = not previous.is_file() or previous.read_bytes() != body
    try:
        write_atomically(folder / "catalog.json.sig", base64.b64encode(signature).decode() + "\n")
        _write_bytes(previous, body)  # byte for byte: the signature covers these exact bytes
    except OSError as exc:
        raise RefreshError(f"Haven could not save the catalog in {folder} ({exc.strerror or exc}).") from exc
    return RefreshResult(catalog, version, changed)


def _write_bytes(path: Path, body: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
