"""AMS (ARGO Messaging Service) transport over HTTPS with ``requests``.

Token: ``GET https://<host>:<auth_port>/v1/service-types/ams/hosts/<host>:authx509`` with
the host certificate as client certificate -> ``{"token": "..."}`` (or a configured
token). Publish: ``POST https://<host>[:port]/v1/projects/<project>/topics/<topic>:publish``
with header ``x-api-key``; body ``{"messages": [{"attributes": {"empaid": <id>},
"data": <base64 of the signed text>}]}``; the answer's ``messageIds`` is the receipt.
The token never appears in logs or errors.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from .errors import BrokerRefused, BrokerUnavailable, DeliveryError, MessageTooLarge

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 502, 503, 504})


def _ams_error(resp: requests.Response) -> str:
    try:
        err = resp.json().get("error", {})
        msg = err.get("message") or err.get("status")
        if msg:
            return f"HTTP {resp.status_code}: {msg}"
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status_code} {resp.reason or ''}".strip()


class AmsTransport:
    """Publishes signed messages to AMS topics, one topic per queue. Constructor does no I/O."""

    kind = "AMS"

    def __init__(
        self,
        host: str,
        *,
        port: int = 443,
        auth_port: int = 8443,
        project: str = "accounting",
        topics: Mapping[str, str],
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
    ):
        self.host, self.port, self.auth_port, self.project = host, port, auth_port, project
        self.topics = dict(topics)
        self.cert, self.key, self.capath = cert, key, capath
        self._token = token
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retries, self.backoff, self.sleep = retries, backoff, sleep
        self._session = session
        self._own_session = session is None

    @property
    def base(self) -> str:
        return f"https://{self.host}" + ("" if self.port == 443 else f":{self.port}")

    def topic(self, queue: str) -> str:
        try:
            return self.topics[queue]
        except KeyError:
            raise BrokerRefused(
                f"no AMS topic configured for queue {queue!r} (ssm.ams_topics)"
            ) from None

    def describe(self, queue: str) -> str:
        return f"{self.base}/v1/projects/{self.project}/topics/{self.topic(queue)}"

    def _timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout, self.timeout)

    def open(self) -> None:
        if self._session is None:
            self._session = requests.Session()
        if self._token is None:
            self._token = self._fetch_token()
        log.info("AMS %s, project %s: authenticated", self.base, self.project)

    def _fetch_token(self) -> str:
        url = (
            f"https://{self.host}:{self.auth_port}/v1/service-types/ams/hosts/{self.host}:authx509"
        )
        resp = self._request("GET", url, what="AMS token exchange")
        if resp.status_code in (401, 403):
            raise BrokerRefused(
                f"AMS token exchange at {self.host}:{self.auth_port} refused the host "
                f"certificate ({_ams_error(resp)}): is the host registered for AMS?"
            )
        if resp.status_code != 200:
            raise BrokerRefused(f"AMS token exchange failed: {_ams_error(resp)}")
        try:
            token = resp.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise BrokerRefused("AMS token exchange answered without a token") from None
        if not isinstance(token, str) or not token:
            raise BrokerRefused("AMS token exchange answered with an empty token")
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
                raise BrokerRefused(
                    f"{what}: TLS failure talking to {self.host}: {_short(exc)}"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{what}: {self.host} unreachable: {_short(exc)}"
                status = None
            else:
                if resp.status_code not in RETRY_STATUS:
                    return resp
                problem = f"{what}: {_ams_error(resp)}"
                status = resp.status_code
            if attempt >= self.retries:
                err = BrokerUnavailable if status is None else DeliveryError
                raise err(f"{problem} (gave up after {attempt + 1} attempt(s))")
            log.warning("%s; retrying in %.1fs", problem, delay)
            self.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def send(self, queue: str, msgid: str, text: str) -> None:
        topic = self.topic(queue)
        url = f"{self.base}/v1/projects/{self.project}/topics/{topic}:publish"
        payload = {
            "messages": [
                {
                    "attributes": {"empaid": msgid},
                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                }
            ]
        }
        assert self._token is not None
        resp = self._request(
            "POST",
            url,
            what=f"publish {msgid} to {topic}",
            json=payload,
            headers={"x-api-key": self._token},
        )
        if resp.status_code == 413:
            raise MessageTooLarge(f"AMS refused message {msgid} as too large ({_ams_error(resp)})")
        if resp.status_code in (401, 403):
            raise BrokerRefused(
                f"AMS refused to publish to {topic} ({_ams_error(resp)}): check the token "
                "or the host's AMS registration"
            )
        if resp.status_code != 200:
            raise BrokerRefused(f"AMS publish of {msgid} to {topic} failed: {_ams_error(resp)}")
        try:
            ids = resp.json()["messageIds"]
        except (ValueError, KeyError, TypeError):
            raise DeliveryError(f"AMS answered the publish of {msgid} without messageIds") from None
        if not isinstance(ids, list) or len(ids) != 1:
            raise DeliveryError(
                f"AMS answered the publish of {msgid} with {ids!r} instead of one id"
            )
        log.debug("AMS accepted %s as %s", msgid, ids[0])

    def close(self) -> None:
        if self._own_session and self._session is not None:
            self._session.close()
            self._session = None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
