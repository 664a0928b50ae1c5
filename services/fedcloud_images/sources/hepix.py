"""HEPiX image lists (AppDB / vmcaster): fetch -> verify signature -> parse.

AppDB-style tokens travel as HTTP basic auth user with password ``x-oauth-basic``;
they are never logged (the URL logged is the configured one, the token is separate).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from fedcloud_core.config.images import Subscription
from fedcloud_core.logs import register_secret

from ..errors import ListRejected
from ..model import ImageEntry, ImageList
from ..verify import (
    check_age,
    check_declared_endorser,
    check_not_expired,
    parse_time,
    verify_signature,
)
from .http import read_limited

log = logging.getLogger(__name__)

_HEX512 = re.compile(r"^[0-9a-fA-F]{128}$")


class HepixSource:
    """A subscription to one signed HEPiX image list."""

    def __init__(
        self,
        sub: Subscription,
        *,
        http: requests.Session,
        capath: Path,
        timeout: tuple[float, float],
        max_bytes: int = 16 * 1024 * 1024,
        crl_check: bool | None = None,
        max_age: timedelta | None = timedelta(days=30),
        workdir: str | None = None,
        now: Callable[[], datetime] | None = None,
    ):
        self.sub = sub
        self.name = sub.name
        self._http = http
        self._capath = capath
        self._timeout = timeout
        self._max = max_bytes
        self._crl = crl_check  # None: on when capath holds CRLs
        self._max_age = max_age
        self._workdir = workdir
        self._now = now or (lambda: datetime.now(UTC))

    def fetch_raw(self) -> bytes:
        url = str(self.sub.url)
        auth = None
        if self.sub.token is not None:
            token = self.sub.token.get_secret_value()
            register_secret(token)
            auth = (token, "x-oauth-basic")
        try:
            with self._http.get(url, auth=auth, timeout=self._timeout, stream=True) as resp:
                if resp.status_code != 200:
                    raise ListRejected(self.name, f"HTTP {resp.status_code} from {url}")
                return read_limited(resp, self._max)
        except requests.RequestException as exc:
            raise ListRejected(self.name, f"cannot fetch {url}: {type(exc).__name__}") from None
        except ValueError as exc:
            raise ListRejected(self.name, f"list at {url} is {exc}") from None

    def fetch(self) -> ImageList:
        raw = self.fetch_raw()
        signed = verify_signature(
            self.name,
            raw,
            endorser_dn=self.sub.endorser_dn,
            endorser_ca=self.sub.endorser_ca,
            capath=self._capath,
            crl_check=self._crl,
            workdir=self._workdir,
        )
        try:
            doc = json.loads(signed.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ListRejected(self.name, f"the signed content is not JSON: {exc}") from None
        lst = doc.get("hv:imagelist") if isinstance(doc, dict) else None
        if not isinstance(lst, dict):
            raise ListRejected(self.name, "no 'hv:imagelist' object in the signed content")
        check_declared_endorser(self.name, lst, signed)
        image_list = parse_imagelist(self.name, lst, signed.content)
        check_not_expired(self.name, image_list.expires, self._now())
        try:
            created = parse_time(lst.get("dc:date:created"))
        except ValueError as exc:
            raise ListRejected(self.name, f"dc:date:created: {exc}") from None
        check_age(self.name, image_list.expires, created, self._max_age, self._now())
        return image_list


def _str(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _int(v: Any, what: str) -> int | None:
    if v in (None, ""):
        return None
    if isinstance(v, bool):
        raise ValueError(f"{what} is not a number: {v!r}")
    try:
        n = int(str(v).strip())
    except ValueError:
        raise ValueError(f"{what} is not a number: {v!r}") from None
    if n < 0:
        raise ValueError(f"{what} is negative: {n}")
    return n


def parse_image(img: dict[str, Any]) -> ImageEntry:
    """One ``hv:image`` object -> :class:`ImageEntry`; ValueError names the problem."""
    ident = _str(img.get("dc:identifier"))
    if not ident:
        raise ValueError("no dc:identifier")
    uri = _str(img.get("hv:uri"))
    if not uri.startswith(("https://", "http://")):
        raise ValueError(f"hv:uri is not an http(s) URL: {uri!r}")
    digest = _str(img.get("sl:checksum:sha512"))
    if not _HEX512.match(digest):
        raise ValueError("sl:checksum:sha512 is missing or not 128 hex digits")
    fmt = _str(img.get("hv:format")).lower() or None
    try:
        expires = parse_time(img.get("dc:date:expires"))
    except ValueError as exc:
        raise ValueError(f"dc:date:expires: {exc}") from None
    return ImageEntry(
        identifier=ident,
        title=_str(img.get("dc:title")) or ident,
        uri=uri,
        digest_algo="sha512",
        digest=digest.lower(),
        size=_int(img.get("hv:size"), "hv:size"),
        format_hint=fmt,
        description=_str(img.get("dc:description")),
        version=_str(img.get("hv:version")),
        mpuri=_str(img.get("ad:mpuri")) or None,
        os_distro=_str(img.get("sl:osname")).lower() or None,
        os_version=_str(img.get("sl:osversion")) or None,
        architecture=_str(img.get("sl:arch")) or None,
        ram_min=_int(img.get("hv:ram_minimum"), "hv:ram_minimum"),
        expires=expires,
        attributes=dict(img),
    )


def parse_imagelist(source: str, lst: dict[str, Any], content: bytes) -> ImageList:
    """The ``hv:imagelist`` object -> :class:`ImageList`. Bad images are set aside, not fatal."""
    version = _str(lst.get("hv:version"))
    if not version:
        raise ListRejected(source, "the list has no hv:version")
    try:
        expires = parse_time(lst.get("dc:date:expires"))
    except ValueError as exc:
        raise ListRejected(source, f"dc:date:expires: {exc}") from None
    images = lst.get("hv:images", [])
    if not isinstance(images, list):
        raise ListRejected(source, "hv:images is not a list")
    out = ImageList(
        source=source,
        identifier=_str(lst.get("dc:identifier")),
        version=version,
        content_hash=hashlib.sha256(content).hexdigest(),
        title=_str(lst.get("dc:title")),
        expires=expires,
    )
    seen: set[str] = set()
    for n, item in enumerate(images):
        img = item.get("hv:image") if isinstance(item, dict) else None
        key = f"hv:images[{n}]"
        if not isinstance(img, dict):
            out.invalid[key] = "not an {'hv:image': {...}} object"
            continue
        ident = _str(img.get("dc:identifier")) or key
        try:
            entry = parse_image(img)
        except ValueError as exc:
            out.invalid[ident] = f"{key}: {exc}"
            continue
        if entry.identifier in seen:
            out.invalid[ident] = f"{key}: dc:identifier listed twice"
            continue
        seen.add(entry.identifier)
        out.images.append(entry)
    return out
