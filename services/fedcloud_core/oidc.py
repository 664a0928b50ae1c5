"""Fresh OIDC access tokens (EGI Check-in) for the ``v3oidcaccesstoken`` Keystone login.

An EGI Check-in access token lives about an hour; the scheduler runs for months. Two
ways keep it fresh, configured under ``openstack.oidc``:

- a refresh-token grant (RFC 6749 section 6) against the OIDC token endpoint, with a
  client id, an optional client secret and the refresh token (secrets from ``*_file``);
- a token command, e.g. oidc-agent's ``oidc-token <account>``, run with an argument
  list and a timeout through the core's tool adapter; its first output line is the token.

A session gets a new token source (so a new access token) for every job run; the
keystoneauth plugin :class:`RefreshingOidcAccessToken` asks it for a token whenever it
authenticates, and for a fresh one after a 401. Tokens and secrets are registered with
the log redaction and never appear in errors.

Errors::

    OidcError (PermanentError)
    +-- OidcUnavailable   the token endpoint did not answer / answered 5xx     transient (75)
    +-- OidcRefused       refused grant (revoked refresh token), bad client,
                          failing token command, Keystone refused the token    permanent (1)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import requests
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.access import AccessInfoV3, create
from keystoneauth1.identity.v3.oidc import OidcAccessToken

from .config.openstack import OidcConfig
from .errors import PermanentError, ToolError, TransientError
from .external import run_tool
from .logs import redact, register_secret

log = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 300  # seconds assumed when the token endpoint does not say

# a rotating provider's newest refresh token, kept for the life of the process (each run
# builds a new grant from the configured token): (endpoint, client id, configured) -> newest
_rotated: dict[tuple[str, str, str], str] = {}


class OidcError(PermanentError):
    """Root of the OIDC token errors."""


class OidcUnavailable(TransientError, OidcError):
    """The OIDC token endpoint could not be reached or answered with a server error."""


class OidcRefused(OidcError):
    """No access token: the grant or the client was refused, or the token command failed."""


class AccessTokenSource(Protocol):
    """Where the Keystone plugin gets an access token."""

    description: str

    def get(self) -> str: ...

    def invalidate(self) -> None: ...


class RefreshTokenGrant:
    """Access tokens from ``grant_type=refresh_token``, cached until shortly before expiry."""

    def __init__(
        self,
        token_endpoint: str,
        *,
        client_id: str,
        client_secret: str | None,
        refresh_token: str,
        scope: str | None,
        timeout: float = 30.0,
        verify: bool | str = True,
        min_validity: float = 60.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.token_endpoint = token_endpoint
        self.description = f"the OIDC token endpoint {token_endpoint}"
        self.client_id = client_id
        self._client_secret = client_secret
        self._key = (token_endpoint, client_id, refresh_token)
        self._refresh_token = _rotated.get(self._key, refresh_token)
        self.scope = scope
        self.timeout, self.verify, self.min_validity = timeout, verify, min_validity
        self._session = session
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self.grants = 0  # how many tokens this source obtained
        register_secret(client_secret)
        register_secret(refresh_token)

    def invalidate(self) -> None:
        self._token = None

    def get(self) -> str:
        if self._token is not None and self._clock() < self._expires - self.min_validity:
            return self._token
        self._token = None
        token, expires_in = self._grant()
        self._token, self._expires = token, self._clock() + expires_in
        self.grants += 1
        log.info(
            "obtained an access token from %s (valid %ds)", self.token_endpoint, int(expires_in)
        )
        return token

    def _grant(self) -> tuple[str, float]:
        data = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": self.client_id,
        }
        if self.scope:
            data["scope"] = self.scope
        auth = (self.client_id, self._client_secret) if self._client_secret else None
        http = self._session or requests
        try:
            resp = http.post(
                self.token_endpoint,
                data=data,
                auth=auth,
                timeout=self.timeout,
                verify=self.verify,
                headers={"Accept": "application/json"},
            )
        except requests.exceptions.SSLError as exc:
            raise OidcRefused(f"TLS failure talking to {self.description}: {_short(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise OidcUnavailable(f"{self.description} is unreachable: {_short(exc)}") from None
        if resp.status_code >= 500:
            raise OidcUnavailable(f"{self.description} answered HTTP {resp.status_code}")
        body = _json(resp)
        if resp.status_code != 200:
            error = str(body.get("error") or "")
            detail = redact(str(body.get("error_description") or ""))[:200]
            what = f"HTTP {resp.status_code}" + (f" {error}" if error else "")
            what += f": {detail}" if detail else ""
            if error == "invalid_grant":
                hint = (
                    "the refresh token is revoked or expired: get a new one and update "
                    "openstack.oidc.refresh_token"
                )
            elif error in ("invalid_client", "unauthorized_client"):
                hint = "check openstack.oidc.client_id and client_secret"
            else:
                hint = "check openstack.oidc"
            raise OidcRefused(f"{self.description} refused the refresh token ({what}): {hint}")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise OidcRefused(f"{self.description} answered without an access_token")
        register_secret(token)
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            register_secret(rotated)  # a rotating provider: use the new one from now on
            self._refresh_token = _rotated[self._key] = rotated
        try:
            expires_in = float(body.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        return token, max(expires_in, 0.0)


class TokenCommand:
    """Access tokens printed by a command (oidc-agent's ``oidc-token <account>``).

    The agent caches and refreshes the token itself: the command runs whenever the
    plugin authenticates (once per run, again after a 401).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        run: Callable[..., Any] = run_tool,
    ):
        if not argv:
            raise ValueError("an empty token command")
        self.argv = list(argv)
        self.description = f"the token command {self.argv[0]}"
        self.timeout = timeout
        self._run = run
        self.grants = 0

    def invalidate(self) -> None:
        pass  # every get() runs the command

    def get(self) -> str:
        try:
            proc = self._run(self.argv, timeout=self.timeout)
        except ToolError as exc:
            raise OidcRefused(f"openstack.oidc.token_command: {exc}") from None
        lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise OidcRefused(
                f"openstack.oidc.token_command: {self.argv[0]} printed no access token"
            )
        register_secret(token)
        self.grants += 1
        log.info("obtained an access token from %s", self.description)
        return token


def token_source(cfg: OidcConfig, *, verify: bool | str = True) -> AccessTokenSource | None:
    """The configured way to get access tokens, or None (a static token, or no OIDC)."""
    if cfg.token_command:
        return TokenCommand(cfg.token_command, timeout=cfg.token_command_timeout)
    if cfg.refresh_token is not None:
        assert cfg.token_endpoint is not None  # validated with the refresh token
        assert cfg.client_id is not None
        return RefreshTokenGrant(
            cfg.token_endpoint,
            client_id=cfg.client_id,
            client_secret=cfg.client_secret.get_secret_value() if cfg.client_secret else None,
            refresh_token=cfg.refresh_token.get_secret_value(),
            scope=cfg.scope or None,
            timeout=cfg.timeout,
            verify=str(cfg.cacert) if cfg.cacert else verify,
            min_validity=cfg.min_validity,
        )
    return None


class RefreshingOidcAccessToken(OidcAccessToken):
    """keystoneauth's ``v3oidcaccesstoken`` with the access token from a token source.

    Authenticating (first request of a session, and again after keystoneauth saw a
    401 and invalidated the plugin) asks the source; a 401 from the federation login
    itself makes the source fetch a fresh token once more.
    """

    def __init__(self, *, token_source: AccessTokenSource, **kwargs: Any):
        kwargs.pop("access_token", None)
        super().__init__(access_token="", **kwargs)  # the source supplies each token
        self._source = token_source

    def get_unscoped_cache_id_elements(self) -> dict[str, str | None]:
        elements = super().get_unscoped_cache_id_elements()
        elements.pop("access_token", None)
        return elements

    def invalidate(self) -> bool:
        self._source.invalidate()
        return bool(super().invalidate())

    def get_unscoped_auth_ref(self, session: ks_session.Session) -> AccessInfoV3:
        try:
            response = self._get_keystone_token(session, self._source.get())
        except ks_exceptions.Unauthorized:
            log.info("Keystone refused the access token; getting a fresh one")
            self._source.invalidate()
            try:
                response = self._get_keystone_token(session, self._source.get())
            except ks_exceptions.Unauthorized:
                raise OidcRefused(
                    f"Keystone ({self.federated_token_url}) refused a fresh access token from "
                    f"{self._source.description}: check the identity provider, protocol and "
                    "the mapping of the account"
                ) from None
        access_info = create(resp=response)
        assert isinstance(access_info, AccessInfoV3)
        return access_info


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _short(exc: BaseException) -> str:
    text = redact(str(exc))
    return text if len(text) < 300 else text[:300] + "..."
