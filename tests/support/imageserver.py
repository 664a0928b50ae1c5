"""Loopback HTTP servers for the image replicator's tests (127.0.0.1, random port).

``ImageServer`` serves byte blobs with HTTP Range support and misbehaviour on demand:
a status (404), a stall after N bytes, a dropped connection after N bytes, basic auth.
``RegistryServer`` adds the Harbor API v2 listing calls, the OCI distribution manifest
and blob calls, and a bearer-token service, which is what the registry source uses.
Every request is recorded in ``requests`` (method, path, headers) for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Blob:
    data: bytes
    status: int | None = None  # answer this status instead of the data
    stall_after: int | None = None  # send this many bytes, then go silent
    stall_seconds: float = 5.0  # how long the stall lasts (bounded)
    stall_times: int = 1  # how many requests stall
    drop_after: int | None = None  # send this many bytes, then close the connection
    drop_times: int = 1  # how many requests are dropped
    auth: tuple[str, str] | None = None  # required basic auth
    ranges: bool = True  # honour Range requests
    content_type: str = "application/octet-stream"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.requests.append(Seen("GET", self.path, dict(self.headers.items())))
        try:
            owner.handle(self)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ImageServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # clients that time out or reset are what these tests provoke
        super().handle_error(request, client_address)


class ImageServer:
    def __init__(self) -> None:
        self.blobs: dict[str, Blob] = {}
        self.requests: list[Seen] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -------------------------------------------------------------- lifecycle

    def start(self) -> ImageServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, daemon=True, kwargs={"poll_interval": 0.1}
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        assert self._httpd
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def put(self, path: str, data: bytes, **behaviour: Any) -> str:
        self.blobs["/" + path.lstrip("/")] = Blob(data, **behaviour)
        return self.url(path)

    def hits(self, path: str) -> list[Seen]:
        p = "/" + path.lstrip("/")
        return [r for r in self.requests if urlparse(r.path).path == p]

    # -------------------------------------------------------------- serving

    def handle(self, h: _Handler) -> None:
        path = urlparse(h.path).path
        blob = self.blobs.get(path)
        if blob is None:
            return self.send(h, 404, b"not found\n", "text/plain")
        self.serve_blob(h, blob)

    @staticmethod
    def send(
        h: _Handler,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def serve_blob(self, h: _Handler, blob: Blob) -> None:
        if blob.auth:
            want = "Basic " + base64.b64encode(f"{blob.auth[0]}:{blob.auth[1]}".encode()).decode()
            if h.headers.get("Authorization") != want:
                return self.send(h, 401, b"{}", headers={"WWW-Authenticate": 'Basic realm="lists"'})
        if blob.status:
            return self.send(h, blob.status, b"{}")
        data, start, status = blob.data, 0, 200
        rng = h.headers.get("Range")
        if rng and blob.ranges and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.send(h, 416, b"", headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
        body = data[start:]
        h.send_response(status)
        h.send_header("Content-Type", blob.content_type)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if blob.drop_after is not None and blob.drop_times > 0 and len(body) > blob.drop_after:
            blob.drop_times -= 1
            h.wfile.write(body[: blob.drop_after])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)  # the client sees a short body
            return
        if blob.stall_after is not None and blob.stall_times > 0 and len(body) > blob.stall_after:
            blob.stall_times -= 1
            h.wfile.write(body[: blob.stall_after])
            h.wfile.flush()
            self._stop.wait(blob.stall_seconds)
            h.close_connection = True
            return
        h.wfile.write(body)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Artifact:
    tags: list[str]
    disk: bytes
    annotations: dict[str, str]
    manifest: bytes = b""
    digest: str = ""


class RegistryServer(ImageServer):
    """Harbor API v2 + OCI distribution (the calls the registry source makes), with bearer tokens."""

    TOKEN = "registry-test-token"

    def __init__(self, *, require_token: bool = True, page_size_cap: int | None = None) -> None:
        super().__init__()
        self.repos: dict[str, dict[str, list[Artifact]]] = {}  # project -> repo -> artifacts
        self.require_token = require_token
        self.page_size_cap = page_size_cap
        self.bad_manifest: set[str] = set()  # digests served with altered manifest bytes

    def add_artifact(
        self,
        project: str,
        repo: str,
        tags: list[str],
        disk: bytes,
        annotations: dict[str, str] | None = None,
    ) -> Artifact:
        ann = annotations or {}
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": sha256_digest(b"{}"),
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": "application/x-qemu-disk",
                        "digest": sha256_digest(disk),
                        "size": len(disk),
                        "annotations": ann,
                    }
                ],
            },
            sort_keys=True,
        ).encode()
        art = Artifact(tags, disk, ann, manifest, sha256_digest(manifest))
        self.repos.setdefault(project, {}).setdefault(repo, []).append(art)
        self.blobs[f"/v2/{project}/{repo}/blobs/{sha256_digest(disk)}"] = Blob(disk)
        return art

    def _authorised(self, h: _Handler, scope: str) -> bool:
        if not self.require_token or h.headers.get("Authorization") == f"Bearer {self.TOKEN}":
            return True
        challenge = (
            f'Bearer realm="{self.base}/service/token",service="harbor-registry",scope="{scope}"'
        )
        self.send(
            h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', headers={"WWW-Authenticate": challenge}
        )
        return False

    def _page(self, h: _Handler, items: list[Any]) -> None:
        q = parse_qs(urlparse(h.path).query)
        page = int(q.get("page", ["1"])[0])
        size = int(q.get("page_size", ["10"])[0])
        if self.page_size_cap:
            size = min(size, self.page_size_cap)
        chunk = items[(page - 1) * size : page * size]
        self.send(h, 200, json.dumps(chunk).encode(), headers={"X-Total-Count": str(len(items))})

    def handle(self, h: _Handler) -> None:
        path = urlparse(h.path).path
        parts = path.strip("/").split("/")
        if path == "/service/token":
            return self.send(h, 200, json.dumps({"token": self.TOKEN}).encode())
        if parts[:3] == ["api", "v2.0", "projects"] and len(parts) >= 5:
            project = parts[3]
            repos = self.repos.get(project)
            if repos is None:
                return self.send(h, 404, b"{}")
            if len(parts) == 5 and parts[4] == "repositories":
                return self._page(
                    h,
                    [
                        {"name": f"{project}/{r}", "artifact_count": len(a)}
                        for r, a in sorted(repos.items())
                    ],
                )
            if len(parts) == 7 and parts[6] == "artifacts":
                repo = unquote(unquote(parts[5]))
                arts = repos.get(repo)
                if arts is None:
                    return self.send(h, 404, b"{}")
                return self._page(
                    h,
                    [
                        {
                            "digest": a.digest,
                            "media_type": "application/vnd.oci.image.manifest.v1+json",
                            "tags": [{"name": t} for t in a.tags],
                        }
                        for a in arts
                    ],
                )
        if parts[0] == "v2" and len(parts) >= 5 and parts[-2] in ("manifests", "blobs"):
            repo = "/".join(parts[1:-2])
            if not self._authorised(h, f"repository:{repo}:pull"):
                return None
            if parts[-2] == "manifests":
                project, name = repo.split("/", 1)
                for a in self.repos.get(project, {}).get(name, []):
                    if a.digest == parts[-1]:
                        body = a.manifest + (b" " if a.digest in self.bad_manifest else b"")
                        return self.send(
                            h,
                            200,
                            body,
                            "application/vnd.oci.image.manifest.v1+json",
                            headers={"Docker-Content-Digest": a.digest},
                        )
                return self.send(h, 404, b"{}")
            blob = self.blobs.get(path)
            if blob is None:
                return self.send(h, 404, b"{}")
            return self.serve_blob(h, blob)
        return self.send(h, 404, b"{}")


def wait_until(pred: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False
