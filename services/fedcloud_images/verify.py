"""Trust rules of a signed image list: signature, chain, endorser, expiry, version.

The signature is checked by openssl (detached, opaque or CMS S/MIME; chain to the
configured CA directory; ``-purpose any`` so host certificates without the
emailProtection usage are accepted). The signer must be the list's declared
endorser (``hv:dn`` / ``hv:ca``) and the endorser configured for the subscription: the DN
strings are read into RDN sequences and compared with the signer certificate's own names
(:mod:`fedcloud_core.x509names`), never as printed text, which is ambiguous. CRLs are checked
when the CA directory has them (unless ``crl_check`` says otherwise), and a list without an
expiry date is refused once older than the configured maximum age.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from fedcloud_core import smime
from fedcloud_core.x509names import AmbiguousDN, same_name, slash_form_is_faithful

from .errors import ListRejected

# CRLs as fetch-crl / openssl rehash leave them in a CA directory: <hash>.r<n>, or *.crl
_CRL_NAME = re.compile(r"^[0-9a-f]{8}\.r\d+$")


@dataclass(frozen=True)
class TrustedContent:
    content: bytes
    signer_dn: str  # for messages; matching uses the names below
    issuer_dn: str
    subject: x509.Name
    issuer: x509.Name


def capath_has_crls(capath: Path) -> bool:
    """Whether the CA directory holds CRLs (then ``crl_check`` defaults to on)."""
    try:
        return any(
            _CRL_NAME.match(p.name) or p.name.endswith(".crl") for p in Path(capath).iterdir()
        )
    except OSError:
        return False


def _names(source: str, what: str, dn: str, ca: str, signed: TrustedContent) -> bool:
    """Do ``dn`` / ``ca`` name the signer and its issuer (RDN by RDN, OID and value)?"""
    try:
        return same_name(dn, signed.subject) and same_name(ca, signed.issuer)
    except AmbiguousDN as exc:
        raise ListRejected(source, f"{what}: {exc}") from None


def _unnameable(signed: TrustedContent) -> str:
    if not slash_form_is_faithful(signed.subject):
        return "; the signer's DN has a value containing '/KEY=' and cannot be named in /K=V form"
    return ""


def verify_signature(
    source: str,
    raw: bytes,
    *,
    endorser_dn: str,
    endorser_ca: str,
    capath: Path,
    crl_check: bool | None = None,
    workdir: str | None = None,
) -> TrustedContent:
    """Check the S/MIME signature and that the signer is the configured endorser.

    ``crl_check`` None: on when ``capath`` holds CRLs."""
    if crl_check is None:
        crl_check = capath_has_crls(capath)
    try:
        v = smime.verify(raw, capath=capath, purpose_any=True, crl_check=crl_check, workdir=workdir)
    except smime.SmimeError as exc:
        raise ListRejected(source, str(exc)) from None
    cert = x509.load_pem_x509_certificate(v.signer_pem)
    signed = TrustedContent(v.content, v.signer_dn, v.issuer_dn, cert.subject, cert.issuer)
    if not _names(source, "the configured endorser", endorser_dn, endorser_ca, signed):
        raise ListRejected(
            source,
            f"signed by {v.signer_dn} (issuer {v.issuer_dn}), not by the configured endorser "
            f"{endorser_dn} (issuer {endorser_ca}){_unnameable(signed)}",
        )
    return signed


def check_declared_endorser(source: str, doc: dict[str, Any], signed: TrustedContent) -> None:
    """The list's ``hv:endorser`` must name the certificate that signed it."""
    decl = ((doc.get("hv:endorser") or {}).get("hv:x509")) or {}
    dn, ca = decl.get("hv:dn"), decl.get("hv:ca")
    if not isinstance(dn, str) or not isinstance(ca, str):
        raise ListRejected(
            source, "the list declares no endorser (hv:endorser/hv:x509 hv:dn, hv:ca)"
        )
    if not _names(source, "the list's hv:dn/hv:ca", dn, ca, signed):
        raise ListRejected(
            source,
            f"the list declares endorser {dn} (issuer {ca}) but was signed by "
            f"{signed.signer_dn} (issuer {signed.issuer_dn}){_unnameable(signed)}",
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


def format_time(dt: datetime) -> str:
    """An aware datetime as ``2026-11-21T09:57:40Z`` (image lists, Glance's ``updated_at``)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_not_expired(source: str, expires: datetime | None, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if expires is not None and expires <= now:
        raise ListRejected(source, f"the list expired on {expires.isoformat()}")


def check_age(
    source: str,
    expires: datetime | None,
    created: datetime | None,
    max_age: timedelta | None,
    now: datetime | None = None,
) -> None:
    """A list without ``dc:date:expires`` is valid ``max_age`` after its ``dc:date:created``."""
    if expires is not None or max_age is None:
        return
    if created is None:
        raise ListRejected(source, "the list has neither dc:date:expires nor dc:date:created")
    now = now or datetime.now(UTC)
    if created + max_age <= now:
        raise ListRejected(
            source,
            f"the list has no dc:date:expires and was created on {created.isoformat()}, "
            f"more than images.max_list_age_days={max_age / timedelta(days=1):g} ago",
        )


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
