"""S/MIME signing and verification through ``openssl`` (one adapter, see :mod:`.tool`).

Used by the SSM sender/receiver (clear-signed accounting messages) and by the image
replicator (HEPiX image lists: detached, opaque or CMS signatures). ``cryptography``
has no S/MIME verification API, hence openssl (see docs/adr/0004-smime-openssl.md).

:class:`TextSigner` signs in-process with ``cryptography``'s PKCS#7 builder what
``openssl smime -sign -text`` signs, in the same S/MIME form (the SSM sender's default:
no process per message).
"""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from .errors import FedcloudError, PermanentError
from .external import run_tool

OPENSSL = "openssl"

_SHORT = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


class SmimeError(PermanentError):
    """A signature could not be made or did not verify; the message says why."""


@dataclass(frozen=True)
class Verified:
    content: bytes  # the signed content, as signed
    signer_dn: str  # OpenSSL one-line form: /C=NL/O=Example/CN=host.example.org
    issuer_dn: str
    signer_pem: bytes


def openssl_dn(name: x509.Name) -> str:
    """``/K=V/K=V`` (OpenSSL one-line order: as encoded, most significant first)."""
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            key = _SHORT.get(attr.oid, attr.oid.dotted_string)
            value = (
                attr.value if isinstance(attr.value, str) else attr.value.decode("utf-8", "replace")
            )
            parts.append(f"{key}={value}")
    return "/" + "/".join(parts)


def normalise_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """Comparable form of a ``/K=V/K=V`` or ``K=V, K=V`` DN (case of keys ignored, spaces trimmed)."""
    dn = dn.strip()
    if dn.startswith("/"):
        raw = [p for p in dn[1:].split("/") if p]
        # a '/' inside a value (e.g. CN=host/port) continues the previous component
        parts: list[str] = []
        for p in raw:
            if "=" in p or not parts:
                parts.append(p)
            else:
                parts[-1] += "/" + p
    else:
        parts = [p for p in dn.split(",") if p.strip()]
    out = []
    for p in parts:
        k, _, v = p.partition("=")
        k = k.strip()
        k = {"E": "emailAddress", "EMAIL": "emailAddress", "EMAILADDRESS": "emailAddress"}.get(
            k.upper(), k
        )
        out.append((k if k == "emailAddress" else k.upper(), v.strip()))
    return tuple(out)


def same_dn(a: str, b: str) -> bool:
    return normalise_dn(a) == normalise_dn(b)


def _tmpdir(base: str | os.PathLike[str] | None) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="smime-", dir=base)


def sign(
    data: bytes,
    cert: Path,
    key: Path,
    *,
    detached: bool = True,
    text: bool = False,
    digest: str = "sha256",
    cms: bool = False,
    binary: bool = False,
    timeout: float = 60.0,
) -> bytes:
    """S/MIME-sign ``data``: clear-signed multipart/signed (``detached``) or opaque pkcs7-mime.

    ``text`` prepends a ``Content-Type: text/plain`` header to the signed content (what
    APEL's ssm does). ``cms`` uses ``openssl cms`` instead of ``openssl smime``.
    ``binary`` signs the bytes as they are (no CRLF canonicalisation of line ends).
    """
    argv = [
        OPENSSL,
        "cms" if cms else "smime",
        "-sign",
        "-signer",
        str(cert),
        "-inkey",
        str(key),
        "-md",
        digest,
        "-outform",
        "SMIME",
    ]
    if not detached:
        argv.append("-nodetach")
    if text:
        argv.append("-text")
    if binary:
        argv.append("-binary")
    try:
        return run_tool(argv, input=data, timeout=timeout).stdout
    except FedcloudError as exc:
        raise SmimeError(f"signing failed: {exc}") from None


def canonical_text(data: bytes) -> bytes:
    """``data`` with the line ends ``openssl smime -sign -text`` signs: every line (split at
    LF) loses its trailing CRs and ends with CRLF; a last line without LF stays without."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return b"\r\n".join(line.rstrip(b"\r") for line in data.split(b"\n"))


class TextSigner:
    """Clear-signs text in-process, as ``openssl smime -sign -text -md sha256`` does.

    The certificate and key are read once (:meth:`load`, or the first :meth:`sign`). The
    signed part is ``Content-Type: text/plain`` CRLF CRLF + the body with CRLF line ends,
    byte for byte what openssl signs (:func:`canonical_text`); ``cryptography`` makes the
    detached PKCS#7 signature (DER) of exactly those bytes and the message around it is
    laid out as openssl lays it out: ``multipart/signed;
    protocol="application/x-pkcs7-signature"; micalg="sha-256"``, LF line ends outside
    the signed part, a base64 ``smime.p7s`` part in 64-column lines. (``cryptography``'s
    own S/MIME writer goes through the email package: ten times slower for a 150 KiB
    message.) A body with a lone CR inside a line is signed by openssl instead, as
    openssl canonicalises such a line in its own way.
    """

    def __init__(self, cert: Path, key: Path, *, timeout: float = 60.0):
        self.cert_path, self.key_path, self.timeout = cert, key, timeout
        self._cert: x509.Certificate | None = None
        self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
        self.openssl_fallbacks = 0  # bodies handed to openssl (lone CR)

    def load(self) -> None:
        if self._cert is not None:
            return
        try:
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SmimeError(
                f"signing failed: cannot load {self.cert_path} / {self.key_path}: {exc}"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SmimeError(
                f"signing failed: {self.key_path} is a {type(key).__name__}, not an RSA or EC key"
            )
        self._cert, self._key = cert, key

    def sign(self, data: bytes) -> bytes:
        self.load()
        assert self._cert is not None
        assert self._key is not None
        canon = canonical_text(data)
        if b"\r" in data and canon.count(b"\r") != canon.count(b"\r\n"):
            self.openssl_fallbacks += 1
            return sign(data, self.cert_path, self.key_path, text=True, timeout=self.timeout)
        part = b"Content-Type: text/plain\r\n\r\n" + canon
        try:
            der = (
                pkcs7.PKCS7SignatureBuilder()
                .set_data(part)
                .add_signer(self._cert, self._key, hashes.SHA256())
                .sign(
                    serialization.Encoding.DER,
                    [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
                )
            )
        except (ValueError, TypeError) as exc:
            raise SmimeError(f"signing failed: {exc}") from None
        return multipart_signed(part, der)


def multipart_signed(part: bytes, signature_der: bytes, *, micalg: str = "sha-256") -> bytes:
    """A clear-signed S/MIME message as ``openssl smime -sign`` writes it: the signed MIME part
    ``part`` as is, then the detached signature ``signature_der`` as ``smime.p7s``."""
    boundary = b"----" + secrets.token_hex(16).upper().encode()
    while boundary in part:  # pragma: no cover - 128 random bits
        boundary = b"----" + secrets.token_hex(16).upper().encode()
    b64 = base64.b64encode(signature_der)
    lines = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return b"".join(
        [
            b"MIME-Version: 1.0\n",
            b'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; ',
            b'micalg="%s"; boundary="%s"\n\n' % (micalg.encode(), boundary),
            b"This is an S/MIME signed message\n\n--%s\n" % boundary,
            part,
            b"\n--%s\n" % boundary,
            b'Content-Type: application/x-pkcs7-signature; name="smime.p7s"\n',
            b"Content-Transfer-Encoding: base64\n",
            b'Content-Disposition: attachment; filename="smime.p7s"\n\n',
            lines,
            b"\n\n--%s--\n\n" % boundary,
        ]
    )


def verify(
    message: bytes,
    *,
    capath: Path | None = None,
    cafile: Path | None = None,
    purpose_any: bool = True,
    text: bool = False,
    binary: bool = False,
    crl_check: bool = False,
    timeout: float = 60.0,
    workdir: str | None = None,
) -> Verified:
    """Verify a clear-signed or opaque S/MIME message against trusted CAs; return content and signer.

    Raises :class:`SmimeError` naming the reason (bad signature, untrusted chain, not S/MIME).
    """
    if capath is None and cafile is None:
        raise SmimeError("no trust anchors given (capath or cafile)")
    with _tmpdir(workdir) as tmp:
        signer = Path(tmp) / "signer.pem"
        argv = [OPENSSL, "cms", "-verify", "-inform", "SMIME", "-signer", str(signer)]
        if capath is not None:
            argv += ["-CApath", str(capath)]
        if cafile is not None:
            argv += ["-CAfile", str(cafile)]
        if purpose_any:
            argv += ["-purpose", "any"]
        if text:
            argv.append("-text")
        if binary:
            argv.append("-binary")
        if crl_check:
            argv.append("-crl_check")
        try:
            proc = run_tool(argv, input=message, timeout=timeout)
        except FedcloudError as exc:
            raise SmimeError(f"signature verification failed: {_reason(str(exc))}") from None
        pem = signer.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    return Verified(proc.stdout, openssl_dn(cert.subject), openssl_dn(cert.issuer), pem)


def _reason(detail: str) -> str:
    lowered = detail.lower()
    if "certificate revoked" in lowered:
        return "the signer certificate is revoked (CRL in the CA directory)"
    if "unable to get certificate crl" in lowered:
        return "no CRL for the signer's CA in the CA directory (CRL checking is on)"
    if (
        "digest failure" in lowered
        or "content verify error" in lowered
        or "signature failure" in lowered
    ):
        return "the content does not match its signature (tampered?)"
    if "certificate verify error" in lowered or "unable to get local issuer" in lowered:
        return "the signer certificate does not chain to a trusted CA"
    if "self-signed" in lowered or "self signed" in lowered:
        return "the signer certificate is self-signed and not trusted"
    if "expired" in lowered:
        return "a certificate in the chain has expired"
    if (
        "no content type" in lowered
        or "error reading s/mime" in lowered
        or "not enough data" in lowered
    ):
        return "not an S/MIME message"
    return detail


def encrypt(
    data: bytes, recipient_cert: Path, *, cipher: str = "-aes128", timeout: float = 60.0
) -> bytes:
    """Encrypt ``data`` to ``recipient_cert`` (S/MIME enveloped data, AES-128-CBC by default)."""
    try:
        return run_tool(
            [OPENSSL, "smime", "-encrypt", cipher, str(recipient_cert)], input=data, timeout=timeout
        ).stdout
    except FedcloudError as exc:
        raise SmimeError(f"encryption failed: {exc}") from None


def decrypt(data: bytes, cert: Path, key: Path, *, timeout: float = 60.0) -> bytes:
    try:
        return run_tool(
            [OPENSSL, "smime", "-decrypt", "-recip", str(cert), "-inkey", str(key)],
            input=data,
            timeout=timeout,
        ).stdout
    except FedcloudError as exc:
        raise SmimeError(f"decryption failed: {exc}") from None
