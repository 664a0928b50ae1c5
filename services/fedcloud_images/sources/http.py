"""One HTTP session per run: timeouts, TLS verification, bounded retries on 5xx/connect."""

from __future__ import annotations

from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

USER_AGENT = "fedcloud-appliance-images"


def make_session(
    *, ca_bundle: Path | None = None, retries: int = 2, backoff: float = 1.0
) -> requests.Session:
    """A session for lists and API calls (image downloads do their own resume/retry)."""
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    s.verify = str(ca_bundle) if ca_bundle else True
    retry = Retry(
        total=retries,
        connect=retries,
        read=0,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(502, 503, 504),
        allowed_methods=("GET", "HEAD"),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def read_limited(resp: requests.Response, limit: int) -> bytes:
    """The body of ``resp``, refusing more than ``limit`` bytes."""
    chunks: list[bytes] = []
    n = 0
    for chunk in resp.iter_content(65536):
        n += len(chunk)
        if n > limit:
            raise ValueError(f"larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
