"""A throw-away test PKI made with ``cryptography``: a trusted CA (hashed CA directory) and leaf certs.

``make_pki(root)`` gives: ``ca`` (trusted, in ``capath``), ``sender`` / ``receiver`` /
``broker`` (issued by the CA; the broker's names are localhost and 127.0.0.1),
``rogue`` (issued by the CA, a DN nobody allows), ``selfsigned`` (not issued by any
trusted CA), ``expiring`` (valid for 2 more hours) and ``other_ca`` (an untrusted CA).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedcloud_core.external import run_tool


@dataclass
class Cred:
    name: str
    cert: Path
    key: Path
    dn: str  # /C=../O=../CN=.. form
    certificate: x509.Certificate = field(repr=False)
    private_key: rsa.RSAPrivateKey = field(repr=False)


def _name(cn: str, o: str = "Fedcloud Test") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "EU"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, o),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _dn(name: x509.Name) -> str:
    short = {NameOID.COUNTRY_NAME: "C", NameOID.ORGANIZATION_NAME: "O", NameOID.COMMON_NAME: "CN"}
    return "/" + "/".join(f"{short[a.oid]}={a.value}" for a in name)


def _write(
    root: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey
) -> tuple[Path, Path]:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    c, k = d / "cert.pem", d / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(k, 0o600)
    return c, k


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_ca(root: Path, name: str, cn: str) -> Cred:
    key = _key()
    now = datetime.now(UTC)
    subject = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    c, k = _write(root, name, cert, key)
    return Cred(name, c, k, _dn(subject), cert, key)


def issue(
    root: Path,
    ca: Cred | None,
    name: str,
    cn: str,
    *,
    hosts: tuple[str, ...] = (),
    valid_for: timedelta = timedelta(
        days=365
    ),  # a host certificate's year (the certificate probe warns under 30 days)
) -> Cred:
    """A leaf certificate (client + server use) issued by ``ca``, or self-signed when ``ca`` is None."""
    key = _key()
    now = datetime.now(UTC)
    subject = _name(cn)
    issuer_name = ca.certificate.subject if ca else subject
    signing_key = ca.private_key if ca else key
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if ca:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    if hosts:
        alt: list[x509.GeneralName] = []
        for h in hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                alt.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = b.sign(signing_key, hashes.SHA256())
    c, k = _write(root, name, cert, key)
    return Cred(name, c, k, _dn(subject), cert, key)


@dataclass
class Pki:
    root: Path
    capath: Path
    cafile: Path
    ca: Cred
    other_ca: Cred
    sender: Cred
    receiver: Cred
    broker: Cred
    rogue: Cred
    selfsigned: Cred
    expiring: Cred


def make_pki(root: Path) -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    ca = make_ca(root, "ca", "Fedcloud Test CA")
    other = make_ca(root, "other-ca", "Untrusted Test CA")
    capath = root / "certificates"
    capath.mkdir(exist_ok=True)
    cafile = capath / "fedcloud-test-ca.pem"
    cafile.write_bytes(ca.cert.read_bytes())
    run_tool(["openssl", "rehash", str(capath)], timeout=30)
    return Pki(
        root=root,
        capath=capath,
        cafile=cafile,
        ca=ca,
        other_ca=other,
        sender=issue(root, ca, "sender", "sender.example.org", hosts=("sender.example.org",)),
        receiver=issue(root, ca, "receiver", "apel.example.org", hosts=("apel.example.org",)),
        broker=issue(root, ca, "broker", "localhost", hosts=("localhost", "127.0.0.1")),
        rogue=issue(root, ca, "rogue", "rogue.example.org"),
        selfsigned=issue(root, None, "selfsigned", "sender.example.org"),
        expiring=issue(root, ca, "expiring", "expiring.example.org", valid_for=timedelta(hours=2)),
    )
