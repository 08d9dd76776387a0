"""A real HTTP server on 127.0.0.1 that answers like the Hugging Face hub for what Haven uses.

Routes: ``HEAD|GET /{owner}/{name}/resolve/{revision}/{file}`` (X-Repo-Commit, ETag, X-Linked-Etag,
X-Linked-Size, Range -> 206), ``GET /api/models/{owner}/{name}[/revision/{rev}]`` (the model info: the file
listing with LFS sha256, downloads, likes, lastModified, gated, tags with ``license:``, cardData and the
``gguf`` summary) and ``GET /api/models?search=&filter=gguf&sort=&limit=`` (the model search). The shapes
are those of the real API as huggingface_hub's ``ModelInfo`` reads them. Switches make it misbehave the ways
real networks and servers do; :class:`RepoMeta` makes a repository gated (401 without a token, 403 for a
token that has not accepted the licence, both with ``X-Error-Code: GatedRepo``).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class Switches:
    drop_after_bytes: int | None = None  # close the connection after sending this much of a body...
    drops_left: int = 0                  # ...this many times
    corrupt: bool = False                # serve different bytes under the same checksum
    ignore_range: bool = False           # always answer 200 with the whole file
    seconds_per_chunk: float = 0.0       # slow server: pause between 64 KiB chunks
    hold_at_bytes: int | None = None     # a body that starts before this offset stalls there...
    release: threading.Event = field(default_factory=threading.Event)  # ...until this is set (60 s at most)
    gated: bool = False
    required_token: str | None = None
    lfs_etag: bool = True                # False: ETag is a git blob id, the sha256 only in /api listing
    listing_has_lfs: bool = True


@dataclass
class HubFile:
    data: bytes
    commit: str = "c" * 40

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class RepoMeta:
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2025-01-01T00:00:00.000Z"
    gated: str | bool = False                 # "auto" / "manual" when gated
    accepted_tokens: set[str] = field(default_factory=set)  # tokens whose account accepted the licence
    license: str | None = "apache-2.0"
    gguf: dict[str, object] | None = None     # the hub's GGUF summary (total, architecture, context_length...)


@dataclass
class FakeHub:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    switches: Switches = field(default_factory=Switches)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    repos: dict[str, RepoMeta] = field(default_factory=dict)

    def meta(self, repo: str) -> RepoMeta:
        return self.repos.setdefault(repo, RepoMeta())

    def info(self, repo: str, blobs: bool) -> dict[str, object] | None:
        siblings: list[dict[str, object]] = []
        commit = "c" * 40
        for (r, name), f in self.files.items():
            if r == repo:
                commit = f.commit
                entry: dict[str, object] = {"rfilename": name}
                if blobs:
                    entry["size"] = len(f.data)
                    entry["blobId"] = hashlib.sha1(f.data).hexdigest()
                    if self.switches.listing_has_lfs:
                        entry["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": 134}
                siblings.append(entry)
        if not siblings:
            return None
        meta = self.meta(repo)
        tags = ["gguf"] + ([f"license:{meta.license}"] if meta.license else [])
        info: dict[str, object] = {
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24], "id": repo, "modelId": repo, "sha": commit,
            "author": repo.split("/")[0], "private": False, "disabled": False, "gated": meta.gated,
            "downloads": meta.downloads, "likes": meta.likes, "lastModified": meta.last_modified,
            "tags": tags, "library_name": "gguf", "siblings": siblings,
            "cardData": {"license": meta.license} if meta.license else {},
        }
        if meta.gguf is not None:
            info["gguf"] = meta.gguf
        return info

    def add(self, repo: str, name: str, data: bytes, commit: str = "c" * 40) -> HubFile:
        self.files[(repo, name)] = HubFile(data, commit)
        return self.files[(repo, name)]

    def ranges(self) -> list[str]:
        return [r for method, _, r in self.requests if method == "GET" and r]

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _error(self, status: int, code: str | None, message: str = "") -> None:
                self.send_response(status)
                if code:
                    self.send_header("X-Error-Code", code)
                if message:
                    self.send_header("X-Error-Message", message)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _serve(self, body: bool) -> None:
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                parts = self.path.split("?")[0].strip("/").split("/")
                sw = hub.switches
                if sw.required_token and self.headers.get("Authorization") != f"Bearer {sw.required_token}":
                    return self._error(401, None, "Invalid credentials in Authorization header")
                if sw.gated and self.headers.get("Authorization") is None:
                    return self._error(401, "GatedRepo", "Access to model is restricted.")
                if parts == ["api", "models"]:
                    return self._search(parse_qs(urlparse(self.path).query))
                if parts[:2] == ["api", "models"] and len(parts) >= 4:
                    return self._listing("/".join(parts[2:4]))
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self._file("/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
                return self._error(404, "RepoNotFound")

            def _json(self, payload: object) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _listing(self, repo: str) -> None:
                info = hub.info(repo, blobs="blobs=" in self.path)
                if info is None:
                    return self._error(404, "RepoNotFound")
                self._json(info)

            def _search(self, query: dict[str, list[str]]) -> None:
                words = [w.lower() for w in query.get("search", [""])[0].split()]
                names = sorted({r for r, _ in hub.files if all(w in r.lower() for w in words)})
                found = [hub.info(r, blobs=False) for r in names]
                key = {"downloads": "downloads", "lastModified": "lastModified", "likes": "likes"}.get(
                    query.get("sort", ["downloads"])[0], "downloads")
                found.sort(key=lambda i: i[key] if i else 0, reverse=True)  # type: ignore[index,return-value]
                limit = int(query.get("limit", ["1000"])[0])
                listing = [{k: v for k, v in (i or {}).items() if k != "siblings"} for i in found[:limit]]
                self._json(listing)

            def _file(self, repo: str, revision: str, name: str, body: bool) -> None:
                if not any(r == repo for r, _ in hub.files):
                    return self._error(404, "RepoNotFound")
                f = hub.files.get((repo, name))
                if f is None:
                    return self._error(404, "EntryNotFound")
                meta = hub.meta(repo)
                if meta.gated:
                    auth = self.headers.get("Authorization")
                    if auth is None:
                        return self._error(401, "GatedRepo", "Access to this model is restricted.")
                    if auth.removeprefix("Bearer ") not in meta.accepted_tokens:
                        return self._error(403, "GatedRepo", f"Access to model {repo} is restricted and you are "
                                           f"not in the authorized list. Visit https://huggingface.co/{repo} to "
                                           "ask for access.")
                sw = hub.switches
                data = bytes(b ^ 0xFF for b in f.data[:4096]) + f.data[4096:] if sw.corrupt else f.data
                start, end = 0, None
                range_header = self.headers.get("Range")
                if range_header and not sw.ignore_range and range_header.startswith("bytes="):
                    first, _, last = range_header[6:].partition("-")
                    start = int(first)
                    if last:
                        end = min(int(last) + 1, len(data))
                    if start >= len(data):
                        return self._error(416, None)
                full = len(data)
                if end is not None:
                    data = data[:end]
                self.send_response(206 if start or end is not None else 200)
                self.send_header("X-Repo-Commit", f.commit)
                etag = f.sha256 if sw.lfs_etag else hashlib.sha1(f.data).hexdigest()
                self.send_header("ETag", f'"{etag}"')
                if sw.lfs_etag:
                    self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                    self.send_header("X-Linked-Size", str(len(f.data)))
                self.send_header("Accept-Ranges", "bytes")
                if start or end is not None:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{full}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if body:
                    self._send_body(data[start:], start)

            def _send_body(self, payload: bytes, start: int = 0) -> None:
                sw = hub.switches
                limit = None
                if sw.drop_after_bytes is not None and sw.drops_left > 0:
                    sw.drops_left -= 1
                    limit = sw.drop_after_bytes
                sent = 0
                try:
                    for offset in range(0, len(payload), 64 * 1024):
                        chunk = payload[offset : offset + 64 * 1024]
                        if limit is not None and sent + len(chunk) > limit:
                            self.wfile.write(chunk[: max(limit - sent, 0)])
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)  # the dropped connection
                            self.close_connection = True
                            return
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        hold = sw.hold_at_bytes
                        if hold is not None and start + sent - len(chunk) < hold <= start + sent:
                            self.wfile.flush()
                            sw.release.wait(60)  # a download that is provably still running
                        if sw.seconds_per_chunk:
                            self.wfile.flush()
                            time.sleep(sw.seconds_per_chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
