"""openstack.oidc: config checks, the refresh-token grant's error classes, the token command."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from fedcloud_core.config import parse_config
from fedcloud_core.config.openstack import OidcConfig, OpenStackConfig
from fedcloud_core.errors import ConfigError, ExitCode
from fedcloud_core.oidc import (
    OidcRefused,
    OidcUnavailable,
    RefreshTokenGrant,
    TokenCommand,
    token_source,
)
from fedcloud_core.openstack import make_session

pytestmark = pytest.mark.unit

SITE = "site: {name: TEST-SITE}\n"
ENDPOINT = "https://aai.example.org/token"


def oidc_yaml(body: str) -> str:
    return SITE + "openstack:\n  oidc:\n" + "".join(f"    {line}\n" for line in body.splitlines())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("client_id: c\nrefresh_token: r", "also needs: token_endpoint"),
        (f"token_endpoint: {ENDPOINT}\nrefresh_token: r", "also needs: client_id"),
        ("token_command: [oidc-token, egi]\nrefresh_token: r", "either token_command or"),
        (
            "token_endpoint: http://aai.example.org/token\nclient_id: c\nrefresh_token: r",
            "must be an https:// URL",
        ),
    ],
)
def test_incomplete_or_conflicting_oidc_config_is_refused(body, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(oidc_yaml(body), source="t", environ={})
    assert "openstack.oidc" in str(err.value)
    assert err.value.exit_code == ExitCode.CONFIG


def test_secrets_come_from_files(tmp_path):
    (tmp_path / "rt").write_text("the-refresh-token\n")
    (tmp_path / "cs").write_text("the-client-secret\n")
    cfg = parse_config(
        oidc_yaml(
            f"token_endpoint: {ENDPOINT}\nclient_id: c\n"
            f"refresh_token_file: {tmp_path / 'rt'}\nclient_secret_file: {tmp_path / 'cs'}"
        ),
        source="t",
        environ={},
    )
    oidc = cfg.openstack.oidc
    assert oidc.refresh_token is not None
    assert oidc.refresh_token.get_secret_value() == "the-refresh-token"
    assert "the-refresh-token" not in repr(cfg)
    source = token_source(oidc)
    assert isinstance(source, RefreshTokenGrant)
    assert "the-client-secret" not in repr(source.__dict__.get("description"))


@dataclass
class FakeResponse:
    status_code: int
    body: Any

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


@dataclass
class FakeHttp:
    answers: list[Any]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def post(self, url: str, **kw: Any) -> FakeResponse:
        self.calls.append({"url": url, **kw})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def grant(
    http: FakeHttp,
    clock: list[float] | None = None,
    refresh_token: str = "rtoken-456",  # noqa: S107
) -> RefreshTokenGrant:
    now = clock if clock is not None else [0.0]
    return RefreshTokenGrant(
        ENDPOINT,
        client_id="cid",
        client_secret="csecret-123",
        refresh_token=refresh_token,
        scope="openid",
        session=http,  # type: ignore[arg-type]
        clock=lambda: now[0],
        min_validity=60,
    )


def test_grant_posts_the_refresh_token_and_caches_until_near_expiry():
    http = FakeHttp(
        [
            FakeResponse(200, {"access_token": "at-1", "expires_in": 3600}),
            FakeResponse(200, {"access_token": "at-2", "expires_in": 3600}),
            FakeResponse(200, {"access_token": "at-3", "expires_in": 3600}),
        ]
    )
    clock = [0.0]
    g = grant(http, clock)
    assert g.get() == "at-1"
    clock[0] = 3000
    assert g.get() == "at-1"  # cached
    clock[0] = 3545
    assert g.get() == "at-2"  # less than min_validity left
    g.invalidate()
    assert g.get() == "at-3"  # after a 401
    call = http.calls[0]
    assert call["data"]["grant_type"] == "refresh_token"
    assert call["data"]["refresh_token"] == "rtoken-456"
    assert call["auth"] == ("cid", "csecret-123")
    assert call["timeout"] == 30.0


@pytest.mark.parametrize(
    ("answer", "cls", "text"),
    [
        (FakeResponse(503, ValueError()), OidcUnavailable, "answered HTTP 503"),
        (requests.ConnectionError("refused"), OidcUnavailable, "is unreachable"),
        (
            FakeResponse(
                400, {"error": "invalid_grant", "error_description": "Token is not active"}
            ),
            OidcRefused,
            "revoked or expired",
        ),
        (
            FakeResponse(401, {"error": "invalid_client"}),
            OidcRefused,
            "client_id and client_secret",
        ),
        (FakeResponse(200, {"token_type": "Bearer"}), OidcRefused, "without an access_token"),
    ],
)
def test_grant_errors_are_classified_and_name_the_endpoint(answer, cls, text):
    with pytest.raises(cls, match=text) as err:
        grant(FakeHttp([answer])).get()
    assert ENDPOINT in str(err.value)
    assert "rtoken-456" not in str(err.value)
    assert "csecret-123" not in str(err.value)


def test_token_command_prints_the_token_and_its_failures_name_the_key(tmp_path):
    ok = TokenCommand([sys.executable, "-c", "print('at-from-agent')"], timeout=10)
    assert ok.get() == "at-from-agent"
    slow = TokenCommand([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
    with pytest.raises(OidcRefused, match=r"openstack.oidc.token_command: .*timed out"):
        slow.get()
    empty = TokenCommand([sys.executable, "-c", "pass"], timeout=10)
    with pytest.raises(OidcRefused, match="printed no access token"):
        empty.get()
    missing = TokenCommand([str(tmp_path / "oidc-token"), "egi"], timeout=10)
    with pytest.raises(OidcRefused, match="not installed"):
        missing.get()


def test_refresh_with_a_password_cloud_is_a_config_error(tmp_path: Path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  c:\n    auth:\n      auth_url: https://ks.example.org/v3\n"
        "      username: u\n      password: p\n"
    )
    cfg = OpenStackConfig(
        cloud="c",
        clouds_yaml=clouds,
        oidc=OidcConfig(token_command=["oidc-token", "egi"]),
    )
    with pytest.raises(ConfigError, match="use v3oidcaccesstoken") as err:
        make_session(cfg, environ={})
    assert err.value.key == "openstack.oidc"


def test_federation_auth_without_access_token_uses_the_refreshing_plugin(tmp_path: Path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  egi:\n    auth:\n      auth_url: https://ks.example.org/v3\n"
        "      identity_provider: egi.eu\n      protocol: openid\n      project_id: p\n"
    )
    cfg = OpenStackConfig(
        cloud="egi", clouds_yaml=clouds, oidc=OidcConfig(token_command=["oidc-token", "egi"])
    )
    sess = make_session(cfg, environ={})
    assert type(sess.auth).__name__ == "RefreshingOidcAccessToken"


def test_a_rotated_refresh_token_is_used_by_the_next_run():
    first = FakeHttp(
        [FakeResponse(200, {"access_token": "at-1", "expires_in": 60, "refresh_token": "rt-new-1"})]
    )
    grant(first, refresh_token="rt-rotating").get()
    second = FakeHttp([FakeResponse(200, {"access_token": "at-2", "expires_in": 60})])
    grant(
        second, refresh_token="rt-rotating"
    ).get()  # a new run: a new grant built from the configured token
    assert second.calls[0]["data"]["refresh_token"] == "rt-new-1"
