"""A local HTTP double of an OIDC-federated OpenStack (127.0.0.1, plain HTTP on loopback).

One server plays three parts, each checking what the real one checks:

- the OIDC token endpoint ``POST /oidc/token`` (``grant_type=refresh_token``, client
  id and secret by HTTP basic auth or in the form): short-lived access tokens;
  a revoked refresh token answers 400 ``invalid_grant`` as Keycloak (EGI Check-in) does.
  ``POST /oidc/issue`` mints a token directly (what oidc-agent hands ``oidc-token``).
- Keystone: ``POST /v3/OS-FEDERATION/identity_providers/<idp>/protocols/openid/auth``
  with ``Authorization: Bearer <access token>`` (401 when the token is unknown or
  expired) and ``POST /v3/auth/tokens`` rescoping to a project with a catalog.
- a "compute" API ``GET /compute/ping`` that wants a live Keystone token
  (``X-Auth-Token``), else 401. Keystone tokens advertise an hour but die after
  ``keystone_ttl`` seconds (like a revoked token), so a client meets 401s and re-logs in.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

IDP = "egi.eu"
CLIENT_ID = "fedcloud-appliance"
CLIENT_SECRET = "client-s3cret-0123456789"
REFRESH_TOKEN = "refresh-t0ken-abcdefghijklmnop"
REVOKED_TOKEN = "revoked-refresh-t0ken-qrstuvwxyz"
PROJECT_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class CloudState:
    access_ttl: float = 2.0
    keystone_ttl: float = 1.5
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    keystone_tokens: dict[str, tuple[float, bool]] = field(default_factory=dict)  # -> (exp, scoped)
    grants: int = 0
    refused_grants: int = 0
    federation_logins: int = 0
    federation_refused: int = 0
    api_ok: int = 0
    api_refused: int = 0
    counter: Any = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mint_access(self) -> str:
        with self.lock:
            token = f"access-{next(self.counter)}-{time.monotonic_ns()}"
            self.access_tokens[token] = time.monotonic() + self.access_ttl
        return token

    def access_valid(self, token: str) -> bool:
        exp = self.access_tokens.get(token)
        return exp is not None and time.monotonic() < exp

    def mint_keystone(self, scoped: bool) -> str:
        with self.lock:
            token = f"ks-{next(self.counter)}"
            self.keystone_tokens[token] = (time.monotonic() + self.keystone_ttl, scoped)
        return token

    def keystone_valid(self, token: str | None, scoped: bool | None = None) -> bool:
        entry = self.keystone_tokens.get(token or "")
        if entry is None or time.monotonic() >= entry[0]:
            return False
        return scoped is None or entry[1] == scoped


class CloudHandler(BaseHTTPRequestHandler):
    state: CloudState

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    # ---- the OIDC provider
    def _token_endpoint(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            self.state.refused_grants += 1
            return self._json(401, {"error": "invalid_client", "error_description": "bad client"})
        if form.get("grant_type") != "refresh_token":
            return self._json(400, {"error": "unsupported_grant_type"})
        if form.get("refresh_token") != REFRESH_TOKEN:
            self.state.refused_grants += 1
            return self._json(
                400, {"error": "invalid_grant", "error_description": "Token is not active"}
            )
        self.state.grants += 1
        self._json(
            200,
            {
                "access_token": self.state.mint_access(),
                "expires_in": int(self.state.access_ttl),
                "token_type": "Bearer",
                "refresh_token": REFRESH_TOKEN,
                "scope": form.get("scope", ""),
            },
        )

    # ---- Keystone
    def _token_body(self, scoped: bool) -> dict[str, Any]:
        now = datetime.now(UTC)
        token: dict[str, Any] = {
            "methods": ["openid"] if not scoped else ["token"],
            "issued_at": now.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "expires_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "user": {
                "id": "u-1",
                "name": "egi-user",
                "domain": {"id": "federated", "name": "Federated"},
                "OS-FEDERATION": {
                    "identity_provider": {"id": IDP},
                    "protocol": {"id": "openid"},
                    "groups": [],
                },
            },
            "audit_ids": ["a1"],
        }
        if scoped:
            token["project"] = {"id": PROJECT_ID, "name": "vo-project", "domain": {"id": "default"}}
            token["roles"] = [{"id": "r1", "name": "reader"}]
            token["catalog"] = [
                {
                    "type": kind,
                    "name": kind,
                    "id": kind,
                    "endpoints": [
                        {
                            "id": f"{kind}-public",
                            "interface": "public",
                            "region": "RegionOne",
                            "region_id": "RegionOne",
                            "url": url,
                        }
                    ],
                }
                for kind, url in (
                    ("identity", f"{self.base}/v3"),
                    ("compute", f"{self.base}/compute"),
                )
            ]
        return {"token": token}

    def do_POST(self) -> None:
        if self.path == "/oidc/token":
            return self._token_endpoint()
        if self.path == "/oidc/issue":
            self._body()
            token = self.state.mint_access()
            data = token.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if self.path == f"/v3/OS-FEDERATION/identity_providers/{IDP}/protocols/openid/auth":
            self._body()
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if not self.state.access_valid(bearer):
                self.state.federation_refused += 1
                return self._json(401, {"error": {"code": 401, "message": "invalid token"}})
            self.state.federation_logins += 1
            return self._json(
                201,
                self._token_body(scoped=False),
                {"X-Subject-Token": self.state.mint_keystone(scoped=False)},
            )
        if self.path == "/v3/auth/tokens":
            req = json.loads(self._body())
            ident = req["auth"]["identity"]
            unscoped = ident.get("token", {}).get("id") if ident["methods"] == ["token"] else None
            if not self.state.keystone_valid(unscoped, scoped=False):
                return self._json(401, {"error": {"code": 401, "message": "bad token"}})
            if req["auth"].get("scope", {}).get("project", {}).get("id") != PROJECT_ID:
                return self._json(401, {"error": {"code": 401, "message": "no such project"}})
            return self._json(
                201,
                self._token_body(scoped=True),
                {"X-Subject-Token": self.state.mint_keystone(scoped=True)},
            )
        return self._json(404, {"error": {"code": 404, "message": "not found"}})

    def do_GET(self) -> None:
        if self.path == "/compute/ping":
            if not self.state.keystone_valid(self.headers.get("X-Auth-Token"), scoped=True):
                self.state.api_refused += 1
                return self._json(401, {"error": {"code": 401, "message": "token expired"}})
            self.state.api_ok += 1
            return self._json(200, {"pong": True})
        return self._json(404, {"error": {"code": 404, "message": "not found"}})


class OidcCloud:
    """The double on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.state = CloudState()
        handler = type("Handler", (CloudHandler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.token_endpoint = f"{self.base}/oidc/token"
        self.auth_url = f"{self.base}/v3"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def start(self) -> OidcCloud:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
