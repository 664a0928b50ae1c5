"""A local HTTPS AMS double implementing the AMS calls of the spec (127.0.0.1, test CA).

Used by the SSM tests (accounting project) and the cloud-info publisher tests
(egi_cloud_info project). ``AmsDouble(pki)`` starts it; ``state`` records what was
published, ``fail_next`` answers errors before succeeding, ``topics`` (when set) limits
the known topics so others answer 404.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.pki import Pki

TOKEN = "s3cr3t-ams-token-0123456789"


@dataclass
class AmsState:
    # project, topic, empaid (attribute, if any), attributes, data (decoded)
    published: list[dict[str, Any]] = field(default_factory=list)
    token_calls: int = 0
    peer_dns: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before succeeding
    max_bytes: int | None = None  # answer 413 above this request size
    token_status: int = 200
    projects: set[str] = field(default_factory=lambda: {"accounting"})
    topics: set[str] | None = None  # None: every topic exists
    publish_calls: int = 0

    def reset(self) -> None:
        self.published.clear()
        self.fail_next.clear()
        self.max_bytes = None
        self.token_status = 200
        self.topics = None
        self.publish_calls = 0


class AmsHandler(BaseHTTPRequestHandler):
    state: AmsState

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"code": status, "message": message, "status": "ERR"}})

    def do_GET(self) -> None:
        host = self.server.server_address[0]
        if self.path != f"/v1/service-types/ams/hosts/{host}:authx509":
            return self._error(404, "not found")
        cert = self.connection.getpeercert()  # type: ignore[attr-defined]
        if not cert:
            return self._error(401, "no client certificate")
        self.state.token_calls += 1
        self.state.peer_dns.append(dict(x[0] for x in cert["subject"])["commonName"])
        if self.state.token_status != 200:
            return self._error(self.state.token_status, "host not registered")
        self._json(200, {"token": TOKEN})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        prefix, _, rest = self.path.partition("/v1/projects/")
        project, _, rest = rest.partition("/topics/")
        if prefix or project not in self.state.projects or not rest.endswith(":publish"):
            return self._error(404, "project or topic not found")
        topic = rest.removesuffix(":publish")
        if self.headers.get("x-api-key") != TOKEN:
            return self._error(401, "Unauthorized")
        self.state.publish_calls += 1
        if self.state.fail_next:
            return self._error(self.state.fail_next.pop(0), "try later")
        if self.state.topics is not None and topic not in self.state.topics:
            return self._error(404, "topic doesn't exist")
        if self.state.max_bytes is not None and length > self.state.max_bytes:
            return self._error(413, "Message size too large")
        body = json.loads(raw)
        ids = []
        for m in body["messages"]:
            attributes = m.get("attributes") or {}
            self.state.published.append(
                {
                    "project": project,
                    "topic": topic,
                    "empaid": attributes.get("empaid"),
                    "attributes": attributes,
                    "data": base64.b64decode(m["data"]),
                }
            )
            ids.append(str(len(self.state.published)))
        self._json(200, {"messageIds": ids})


class AmsDouble:
    """The AMS double on a free 127.0.0.1 port, TLS with the test PKI's broker certificate."""

    def __init__(self, pki: Pki, projects: set[str] | None = None):
        self.state = AmsState()
        if projects is not None:
            self.state.projects = set(projects)
        handler = type("Handler", (AmsHandler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.broker.cert, pki.broker.key)
        ctx.load_verify_locations(cafile=pki.cafile)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def start(self) -> AmsDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
