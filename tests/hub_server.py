"""A real HTTP server on 127.0.0.1 that answers like the Hugging Face hub for what Haven uses.

Routes: ``HEAD|GET /{owner}/{name}/resolve/{revision}/{file}`` (X-Repo-Commit, ETag, X-Linked-Etag,
X-Linked-Size, Range -> 206) and ``GET /api/models/{owner}/{name}[/revision/{rev}]`` (the file listing
with LFS sha256). Switches make it misbehave the ways real networks and servers do.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
class FakeHub:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    switches: Switches = field(default_factory=Switches)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

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
                if parts[:2] == ["api", "models"] and len(parts) >= 4:
                    return self._listing("/".join(parts[2:4]))
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self._file("/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
                return self._error(404, "RepoNotFound")

            def _listing(self, repo: str) -> None:
                siblings = []
                commit = "c" * 40
                for (r, name), f in hub.files.items():
                    if r == repo:
                        commit = f.commit
                        entry: dict[str, object] = {"rfilename": name, "size": len(f.data)}
                        if hub.switches.listing_has_lfs:
                            entry["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": 134}
                        siblings.append(entry)
                if not siblings:
                    return self._error(404, "RepoNotFound")
                payload = json.dumps({"id": repo, "sha": commit, "siblings": siblings}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _file(self, repo: str, revision: str, name: str, body: bool) -> None:
                if not any(r == repo for r, _ in hub.files):
                    return self._error(404, "RepoNotFound")
                f = hub.files.get((repo, name))
                if f is None:
                    return self._error(404, "EntryNotFound")
                sw = hub.switches
                data = bytes(b ^ 0xFF for b in f.data[:4096]) + f.data[4096:] if sw.corrupt else f.data
                start = 0
                range_header = self.headers.get("Range")
                if range_header and not sw.ignore_range and range_header.startswith("bytes="):
                    start = int(range_header[6:].split("-")[0])
                    if start >= len(data):
                        return self._error(416, None)
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", f.commit)
                etag = f.sha256 if sw.lfs_etag else hashlib.sha1(f.data).hexdigest()
                self.send_header("ETag", f'"{etag}"')
                if sw.lfs_etag:
                    self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                    self.send_header("X-Linked-Size", str(len(f.data)))
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
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
