"""Check the host certificate and key before anything is signed or sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedcloud_core.smime import openssl_dn

from .errors import CredentialError


@dataclass(frozen=True)
class HostCredentials:
    cert: Path
    key: Path
    subject_dn: str
    not_after: datetime


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_credentials(
    cert: Path,
    key: Path,
    *,
    min_validity: timedelta = timedelta(hours=24),
    now: datetime | None = None,
) -> HostCredentials:
    """Load ``cert`` and ``key``; raise :class:`CredentialError` naming the problem.

    Refused: unreadable files, an encrypted key, a key that is not the certificate's,
    a certificate not yet valid or expiring within ``min_validity``.
    """
    now = now or datetime.now(UTC)
    try:
        cert_pem = cert.read_bytes()
    except OSError as exc:
        raise CredentialError(f"host certificate {cert}: cannot read: {exc.strerror}") from None
    try:
        key_pem = key.read_bytes()
    except OSError as exc:
        raise CredentialError(f"host key {key}: cannot read: {exc.strerror}") from None
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise CredentialError(f"host certificate {cert}: not a PEM X.509 certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CredentialError(
            f"host key {key}: the key is encrypted; a host key has no passphrase"
        ) from None
    except ValueError:
        raise CredentialError(f"host key {key}: not a PEM private key") from None
    if _spki(private.public_key()) != _spki(certificate.public_key()):
        raise CredentialError(f"host key {key} does not match the certificate {cert}")
    not_after = certificate.not_valid_after_utc
    if certificate.not_valid_before_utc > now:
        raise CredentialError(
            f"host certificate {cert} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if not_after - now < min_validity:
        state = "has expired" if not_after <= now else "expires"
        hours = min_validity.total_seconds() / 3600
        raise CredentialError(
            f"host certificate {cert} {state} on {not_after:%Y-%m-%d %H:%M} UTC "
            f"(less than {hours:g} h left): renew it before sending"
        )
    return HostCredentials(cert, key, openssl_dn(certificate.subject), not_after)
