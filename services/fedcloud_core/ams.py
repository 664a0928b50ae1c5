"""The one AMS (ARGO Messaging Service) client of the appliance, over HTTPS with ``requests``.

Used by the SSM sender (accounting records) and by cloud-info (the GLUE 2.1 JSON).

Token: ``GET https://<host>:<auth_port>/v1/service-types/ams/hosts/<host>:authx509`` with
the host certificate as client certificate -> ``{"token": "..."}`` (or a configured
token). Publish: ``POST https://<host>[:port]/v1/projects/<project>/topics/<topic>:publish``
with header ``x-api-key``; body ``{"messages": [{"attributes": {...}, "data": <base64>}]}``;
the answer's ``messageIds`` is the receipt. The token never appears in logs or errors.

Errors (all raised here, mapped by the caller where it needs its own classes)::

    AmsError (PermanentError)
    +-- AmsUnavailable      cannot connect (after retries)                  transient (75)
    +-- AmsDeliveryError    408/5xx after retries, or no message id         transient (75)
    +-- AmsRefused          TLS failure, 401/403, 404 (unknown topic), 4xx  permanent (1)
    |   +-- AmsMessageRefused  other 4xx to a publish: that message         permanent (1)
    +-- AmsMessageTooLarge  413: the message is above the AMS limit         permanent (1)
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from .errors import PermanentError, TransientError
from .logs import register_secret

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 502, 503, 504})
# publish answers that say nothing about the message itself (credentials, topic, proxy, rate)
_NOT_ABOUT_THE_MESSAGE = frozenset({401, 403, 404, 407, 408, 413, 429})


class AmsError(PermanentError):
    """Root of the AMS client errors."""


class AmsUnavailable(TransientError, AmsError):
    """AMS could not be reached (connection error, timeout) within the retries."""


class AmsDeliveryError(TransientError, AmsError):
    """AMS kept answering 408/502/503/504, or accepted without a message id."""


class AmsRefused(AmsError):
    """AMS refused the request: TLS, authentication, authorisation, unknown topic."""


class AmsMessageRefused(AmsRefused):
    """AMS refused one published message with a 4xx other than 401/403/404/407/408/413/429
    (e.g. 400): a problem of that message, not of the credentials or the topic."""


class AmsMessageTooLarge(AmsError):
    """AMS refused the message for its size (HTTP 413)."""


def ams_error_text(resp: requests.Response) -> str:
    """``HTTP <status>: <AMS error message>`` of an error answer."""
    try:
        err = resp.json().get("error", {})
        msg = err.get("message") or err.get("status")
        if msg:
            return f"HTTP {resp.status_code}: {msg}"
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status_code} {resp.reason or ''}".strip()


class AmsClient:
    """Publishes messages to the topics of one AMS project. The constructor does no I/O.

    ``credential_hint`` names the configured token (its config key) in the 401/403 error text.
    """

    def __init__(
        self,
        host: str,
        *,
        port: int = 443,
        auth_port: int = 8443,
        project: str,
        cert: Path,
        key: Path,
        capath: Path,
        token: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 2.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        credential_hint: str = "the token",
    ):
        self.host, self.port, self.auth_port, self.project = host, port, auth_port, project
        self.cert, self.key, self.capath = cert, key, capath
        self._token = token
        register_secret(token)
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retries, self.backoff, self.sleep = retries, backoff, sleep
        self.credential_hint = credential_hint
        self._session = session
        self._own_session = session is None

    @property
    def base(self) -> str:
        return f"https://{self.host}" + ("" if self.port == 443 else f":{self.port}")

    def topic_url(self, topic: str) -> str:
        return f"{self.base}/v1/projects/{self.project}/topics/{topic}"

    def _timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout, self.timeout)

    def open(self) -> None:
        """Open the HTTP session and get a token by the X.509 exchange unless one is configured."""
        if self._session is None:
            self._session = requests.Session()
        if self._token is None:
            self._token = self._fetch_token()
            register_secret(self._token)
        log.info("AMS %s, project %s: authenticated", self.base, self.project)

    def _fetch_token(self) -> str:
        url = (
            f"https://{self.host}:{self.auth_port}/v1/service-types/ams/hosts/{self.host}:authx509"
        )
        resp = self._request("GET", url, what="AMS token exchange")
        if resp.status_code in (401, 403):
            raise AmsRefused(
                f"AMS token exchange at {self.host}:{self.auth_port} refused the host "
                f"certificate ({ams_error_text(resp)}): is the host registered for AMS?"
            )
        if resp.status_code != 200:
            raise AmsRefused(f"AMS token exchange failed: {ams_error_text(resp)}")
        try:
            token = resp.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise AmsRefused("AMS token exchange answered without a token") from None
        if not isinstance(token, str) or not token:
            raise AmsRefused("AMS token exchange answered with an empty token")
        return token

    def _request(self, method: str, url: str, *, what: str, **kw: Any) -> requests.Response:
        """One HTTP call with bounded retries on connection errors and 408/502/503/504."""
        assert self._session is not None
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                # verify and cert per request: REQUESTS_CA_BUNDLE in the environment would
                # otherwise override a session-level CA directory
                resp = self._session.request(
                    method,
                    url,
                    timeout=self._timeouts(),
                    verify=str(self.capath),
                    cert=(str(self.cert), str(self.key)),
                    **kw,
                )
            except requests.exceptions.SSLError as exc:
                raise AmsRefused(
                    f"{what}: TLS failure talking to {self.host}: {_short(exc)}"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{what}: {self.host} unreachable: {_short(exc)}"
                status = None
            else:
                if resp.status_code not in RETRY_STATUS:
                    return resp
                problem = f"{what}: {ams_error_text(resp)}"
                status = resp.status_code
            if attempt >= self.retries:
                err = AmsUnavailable if status is None else AmsDeliveryError
                raise err(f"{problem} (gave up after {attempt + 1} attempt(s))")
            log.warning("%s; retrying in %.1fs", problem, delay)
            self.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str], *, label: str) -> str:
        """Publish ``data`` (base64-encoded here) as one message; returns its AMS message id.

        ``label`` names the message in logs and errors (an SSM message id, "the cloud-info JSON").
        """
        url = f"{self.topic_url(topic)}:publish"
        payload = {
            "messages": [
                {"attributes": dict(attributes), "data": base64.b64encode(data).decode("ascii")}
            ]
        }
        assert self._token is not None, "open() first"
        resp = self._request(
            "POST",
            url,
            what=f"publish {label} to {topic}",
            json=payload,
            headers={"x-api-key": self._token},
        )
        if resp.status_code == 413:
            raise AmsMessageTooLarge(
                f"AMS refused message {label} as too large ({ams_error_text(resp)})"
            )
        if resp.status_code in (401, 403):
            raise AmsRefused(
                f"AMS refused to publish to {topic} ({ams_error_text(resp)}): check "
                f"{self.credential_hint} or the host's AMS registration (project {self.project} "
                f"at {self.base})"
            )
        if resp.status_code == 404:
            raise AmsRefused(
                f"AMS has no topic {topic} in project {self.project} at {self.base} "
                f"({ams_error_text(resp)}): check the topic and project names"
            )
        if 400 <= resp.status_code < 500 and resp.status_code not in _NOT_ABOUT_THE_MESSAGE:
            raise AmsMessageRefused(
                f"AMS refused message {label} for {topic}: {ams_error_text(resp)}"
            )
        if resp.status_code != 200:
            raise AmsRefused(f"AMS publish of {label} to {topic} failed: {ams_error_text(resp)}")
        try:
            ids = resp.json()["messageIds"]
        except (ValueError, KeyError, TypeError):
            raise AmsDeliveryError(
                f"AMS answered the publish of {label} without messageIds"
            ) from None
        if not isinstance(ids, list) or len(ids) != 1:
            raise AmsDeliveryError(
                f"AMS answered the publish of {label} with {ids!r} instead of one id"
            )
        log.debug("AMS accepted %s as %s", label, ids[0])
        return str(ids[0])

    def close(self) -> None:
        if self._own_session and self._session is not None:
            self._session.close()
            self._session = None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
