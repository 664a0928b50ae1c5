"""Trust rules of a signed image list: signature, chain, endorser, expiry, version.

The signature is checked by openssl (detached, opaque or CMS S/MIME; chain to the
configured CA directory; ``-purpose any`` so host certificates without the
emailProtection usage are accepted). The signer must be the list's declared
endorser (``hv:dn`` / ``hv:ca``) and the endorser configured for the subscription.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedcloud_core import smime

from .errors import ListRejected


@dataclass(frozen=True)
class TrustedContent:
    content: bytes
    signer_dn: str
    issuer_dn: str


def verify_signature(
    source: str,
    raw: bytes,
    *,
    endorser_dn: str,
    endorser_ca: str,
    capath: Path,
    crl_check: bool = False,
    workdir: str | None = None,
) -> TrustedContent:
    """Check the S/MIME signature and that the signer is the configured endorser."""
    try:
        v = smime.verify(raw, capath=capath, purpose_any=True, crl_check=crl_check, workdir=workdir)
    except smime.SmimeError as exc:
        raise ListRejected(source, str(exc)) from None
    if not (smime.same_dn(v.signer_dn, endorser_dn) and smime.same_dn(v.issuer_dn, endorser_ca)):
        raise ListRejected(
            source,
            f"signed by {v.signer_dn} (issuer {v.issuer_dn}), not by the configured endorser "
            f"{endorser_dn} (issuer {endorser_ca})",
        )
    return TrustedContent(v.content, v.signer_dn, v.issuer_dn)


def check_declared_endorser(source: str, doc: dict[str, Any], signed: TrustedContent) -> None:
    """The list's ``hv:endorser`` must name the certificate that signed it."""
    x509 = ((doc.get("hv:endorser") or {}).get("hv:x509")) or {}
    dn, ca = x509.get("hv:dn"), x509.get("hv:ca")
    if not isinstance(dn, str) or not isinstance(ca, str):
        raise ListRejected(
            source, "the list declares no endorser (hv:endorser/hv:x509 hv:dn, hv:ca)"
        )
    if not smime.same_dn(dn, signed.signer_dn) or not smime.same_dn(ca, signed.issuer_dn):
        raise ListRejected(
            source,
            f"the list declares endorser {dn} (issuer {ca}) but was signed by "
            f"{signed.signer_dn} (issuer {signed.issuer_dn})",
        )


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (``2026-11-21T09:57:40Z`` and friends) -> aware UTC datetime."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    text = value.strip().replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def check_not_expired(source: str, expires: datetime | None, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if expires is not None and expires <= now:
        raise ListRejected(source, f"the list expired on {expires.isoformat()}")


def version_key(version: str) -> tuple[Any, ...]:
    """Order versions like ``20261121095740``, ``2026.11.21`` or ``1.10`` numerically."""
    parts = re.findall(r"\d+|[A-Za-z]+", version)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def check_version(source: str, version: str, last: str | None) -> None:
    """Refuse a list older than the last accepted one (replay/downgrade)."""
    if last is not None and version_key(version) < version_key(last):
        raise ListRejected(
            source, f"version {version} is lower than the last accepted {last} (downgrade)"
        )
