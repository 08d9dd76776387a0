"""The catalog stays current: a signed catalog from the project's repository replaces the bundled one only when
its Ed25519 signature verifies; a tampered, unsigned or older file is refused and the bundled copy stays.
Also: the bundled catalog's pins, and recommendations per use."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant.hardware import HardwareInfo
from assistant.models.catalog import Use, load_catalog, recommend_by_use
from assistant.models.catalog_refresh import CatalogSource, RefreshError, current_catalog_path, refresh_catalog
from assistant.models.ed25519 import verify
from assistant.paths import AppPaths, resource_path

ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
GiB = 1024**3


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "site"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def key():
    return ed25519.Ed25519PrivateKey.generate()


def publish(folder: Path, url: str, key, body: bytes, *, sign: bytes | None = None) -> CatalogSource:
    (folder / "catalog.json").write_bytes(body)
    signature = key.sign(sign if sign is not None else body)
    (folder / "catalog.json.sig").write_text(base64.b64encode(signature).decode() + "\n")
    public = key.public_key().public_bytes_raw()
    return CatalogSource(f"{url}/catalog.json", f"{url}/catalog.json.sig", public)


def newer_catalog(extra_name: str = "A newer model", version: int = 99) -> bytes:
    data = json.loads(resource_path("catalog.json").read_text(encoding="utf-8"))
    data["version"] = version
    data["models"][1]["name"] = extra_name
    return json.dumps(data).encode()


def test_pure_python_ed25519_agrees_with_cryptography(key) -> None:
    public = key.public_key().public_bytes_raw()
    for message in (b"", b"catalog", bytes(range(256)) * 40):
        signature = key.sign(message)
        assert verify(public, message, signature)
        assert not verify(public, message + b"!", signature)
        assert not verify(public, message, signature[:-1] + bytes([signature[-1] ^ 1]))
        assert not verify(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw(), message, signature)


def test_a_signed_catalog_is_saved_and_used_from_then_on(site, key) -> None:
    folder, url = site
    source = publish(folder, url, key, newer_catalog())
    paths = AppPaths.from_environment().ensure()
    result = refresh_catalog(paths, source)
    assert result.changed and result.version == 99
    assert current_catalog_path(paths, source) == paths.data_dir / "catalog" / "catalog.json"
    assert load_catalog(current_catalog_path(paths, source)).entries[1].name == "A newer model"
    assert not refresh_catalog(paths, source).changed


def test_a_tampered_or_unsigned_catalog_is_refused_and_the_bundled_one_stays(site, key) -> None:
    folder, url = site
    paths = AppPaths.from_environment().ensure()
    body = newer_catalog()
    tampered = publish(folder, url, key, body.replace(b"A newer model", b"An evil model!"), sign=body)
    with pytest.raises(RefreshError, match="not signed by the Haven project"):
        refresh_catalog(paths, tampered)
    other_key = publish(folder, url, ed25519.Ed25519PrivateKey.generate(), body)
    with pytest.raises(RefreshError, match="not signed"):
        refresh_catalog(paths, CatalogSource(other_key.url, other_key.signature_url, tampered.public_key))
    (folder / "catalog.json.sig").write_text("not base64 at all\n")
    with pytest.raises(RefreshError):
        refresh_catalog(paths, tampered)
    assert current_catalog_path(paths, tampered) == resource_path("catalog.json")
    assert not (paths.data_dir / "catalog" / "catalog.json").exists()


def test_an_older_catalog_is_refused(site, key) -> None:
    folder, url = site
    source = publish(folder, url, key, newer_catalog(version=0))
    with pytest.raises(RefreshError, match="older"):
        refresh_catalog(AppPaths.from_environment().ensure(), source)


def test_a_saved_catalog_changed_on_disk_falls_back_to_the_bundled_one(site, key) -> None:
    folder, url = site
    source = publish(folder, url, key, newer_catalog())
    paths = AppPaths.from_environment().ensure()
    refresh_catalog(paths, source)
    saved = paths.data_dir / "catalog" / "catalog.json"
    saved.write_bytes(saved.read_bytes().replace(b"A newer model", b"Edited model!"))
    assert current_catalog_path(paths, source) == resource_path("catalog.json")


def test_an_unreachable_source_is_a_sentence(key) -> None:
    source = CatalogSource("http://127.0.0.1:9/catalog.json", "http://127.0.0.1:9/catalog.json.sig", b"\0" * 32)
    with pytest.raises(RefreshError, match="cannot reach"):
        refresh_catalog(AppPaths.from_environment().ensure(), source, timeout=2)


def test_the_bundled_catalog_is_signed_and_its_pins_are_complete() -> None:
    body = resource_path("catalog.json").read_bytes()
    signature = base64.b64decode(resource_path("catalog.json.sig").read_text())
    assert verify(CatalogSource.bundled().public_key, body, signature), "re-sign: scripts/sign_catalog.py"
    catalog = load_catalog(resource_path("catalog.json"))
    assert not catalog.problems
    for entry in catalog.entries:
        if entry.sha256 is not None:
            assert entry.revision is not None, f"{entry.id}: a pinned checksum needs its pinned revision"
    ids = {e.id for e in catalog.entries}
    assert {"qwen3-4b", "qwen3-8b", "qwen3-14b", "llama-guard-3-1b", "llama-guard-3-8b"} <= ids


def test_recommendations_per_use_follow_the_computer() -> None:
    catalog = load_catalog(resource_path("catalog.json"))

    def picks(ram_gib: float) -> dict[Use, str | None]:
        hardware = HardwareInfo(8, 16, int(ram_gib * GiB), int(ram_gib * GiB), "Linux", "x86_64", ())
        return {u: (e.id if e else None) for u, e in recommend_by_use(catalog.chat_models(), hardware, 4096).items()}

    assert picks(32) == {Use.GENERAL: "qwen3-14b", Use.CODING: "qwen3-14b", Use.SMALL: "qwen3-4b"}
    assert picks(12) == {Use.GENERAL: "qwen3-8b", Use.CODING: "qwen3-8b", Use.SMALL: "qwen3-4b"}
    small = picks(6)
    assert small[Use.SMALL] == small[Use.GENERAL] and small[Use.GENERAL] in ("qwen3-4b", "llama-3.2-3b-instruct")
    assert picks(0.5) == {Use.GENERAL: None, Use.CODING: None, Use.SMALL: None}
