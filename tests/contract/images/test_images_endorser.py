"""Who may sign a list, with real openssl signatures: DNs that print alike, CRLs, lists without expiry."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from fedcloud_core import smime
from fedcloud_core.config.images import Subscription
from fedcloud_core.external import run_tool
from fedcloud_core.x509names import AmbiguousDN, parse_dn, same_name
from fedcloud_images import imagelist
from fedcloud_images.errors import ListRejected
from fedcloud_images.sources.hepix import HepixSource
from fedcloud_images.sources.http import make_session
from fedcloud_images.verify import capath_has_crls
from support.images_pki import ImagesPki

pytestmark = pytest.mark.contract

C, ORG, CN = NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME


class Signer:
    """A leaf certificate with any subject, issued by the trusted test CA."""

    def __init__(self, root: Path, ca: Any, attrs: list[tuple[Any, str]]):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        self.subject = x509.Name([x509.NameAttribute(oid, v) for oid, v in attrs])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.subject)
            .issuer_name(ca.certificate.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca.private_key, hashes.SHA256())
        )
        d = root / uuid.uuid4().hex[:8]
        d.mkdir(parents=True)
        self.cert, self.key_path = d / "cert.pem", d / "key.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    @property
    def dn(self) -> str:
        return smime.openssl_dn(self.subject)


def _signed(
    signer: Signer,
    *,
    created: datetime | None = None,
    expires: bool = True,
    hv_dn: str | None = None,
    expires_days: int = 30,
) -> bytes:
    desc: dict[str, Any] = {"title": "t", "version": "1", "images": [], "identifier": "l1"}
    desc["expires_days"] = expires_days
    doc = imagelist.build_list(desc, base_dir=Path("/"), cert=signer.cert, now=created)
    lst = doc["hv:imagelist"]
    if not expires:
        del lst["dc:date:expires"]
    if created is None and not expires:
        del lst["dc:date:created"]
    if hv_dn is not None:
        lst["hv:endorser"]["hv:x509"]["hv:dn"] = hv_dn
    return imagelist.sign_list(doc, cert=signer.cert, key=signer.key_path)


def _fetch(
    http_server: Any, tmp_path: Path, body: bytes, endorser_dn: str, ca_dn: str, capath: Path
) -> Any:
    url = http_server.put(f"/endorser/{uuid.uuid4().hex[:8]}.list", body)
    sub = Subscription(name="l", url=url, vo="v", endorser_dn=endorser_dn, endorser_ca=ca_dn)
    src = HepixSource(
        sub, http=make_session(retries=0), capath=capath, timeout=(2, 2), workdir=str(tmp_path)
    )
    return src.fetch()


# ------------------------------------------------------------------ DNs that print alike


def test_a_cn_containing_a_slash_cannot_pass_for_another_dn(
    cpki: ImagesPki, http_server: Any, tmp_path: Path
) -> None:
    ca = cpki.pki.ca
    real = Signer(tmp_path, ca, [(C, "EU"), (ORG, "Fedcloud Test"), (CN, "appdb"), (CN, "images")])
    forged = Signer(tmp_path, ca, [(C, "EU"), (ORG, "Fedcloud Test"), (CN, "appdb/CN=images")])
    assert real.dn == forged.dn == "/C=EU/O=Fedcloud Test/CN=appdb/CN=images"
    assert real.subject != forged.subject  # different names, one printed form

    il = _fetch(http_server, tmp_path, _signed(real), real.dn, cpki.endorser_ca, cpki.capath)
    assert il.version == "1"
    with pytest.raises(ListRejected) as exc:
        _fetch(http_server, tmp_path, _signed(forged), real.dn, cpki.endorser_ca, cpki.capath)
    assert "not by the configured endorser" in exc.value.reason
    assert "cannot be named in /K=V form" in exc.value.reason


def test_the_list_declaring_the_forged_printed_form_is_refused_too(
    cpki: ImagesPki, http_server: Any, tmp_path: Path
) -> None:
    """Configured in RFC 4514 form (escaped, unambiguous) the forged cert is the endorser, but
    the list's own hv:dn (slash form) cannot name it."""
    forged = Signer(tmp_path, cpki.pki.ca, [(C, "EU"), (ORG, "Fedcloud Test"), (CN, "a/CN=b")])
    rfc = forged.subject.rfc4514_string()
    assert same_name(rfc, forged.subject)
    with pytest.raises(ListRejected) as exc:
        _fetch(http_server, tmp_path, _signed(forged), rfc, cpki.endorser_ca, cpki.capath)
    assert "the list declares endorser" in exc.value.reason


def test_a_slash_inside_a_value_without_a_key_is_fine(
    cpki: ImagesPki, http_server: Any, tmp_path: Path
) -> None:
    host = Signer(tmp_path, cpki.pki.ca, [(C, "EU"), (ORG, "Fedcloud Test"), (CN, "ldap/appdb.eu")])
    assert host.dn == "/C=EU/O=Fedcloud Test/CN=ldap/appdb.eu"
    _fetch(http_server, tmp_path, _signed(host), host.dn, cpki.endorser_ca, cpki.capath)
    # the RFC 4514 form names the same certificate
    rfc = "CN=ldap/appdb.eu,O=Fedcloud Test,C=EU"
    _fetch(http_server, tmp_path, _signed(host), rfc, cpki.endorser_ca, cpki.capath)


@pytest.mark.parametrize(
    "dn",
    ["/C=EU/O=Fedcloud Test/CN=appdb/foo=bar", "C=EU/CN=x", "/", "", "/CN=a/CN=b=c/zz=1"],
)
def test_ambiguous_dn_strings_are_refused_in_the_config(dn: str) -> None:
    with pytest.raises(AmbiguousDN):
        parse_dn(dn)
    with pytest.raises(ValidationError, match="endorser_dn"):
        Subscription(name="l", url="http://x/l", vo="v", endorser_dn=dn, endorser_ca="/CN=ca")


def test_an_ambiguous_hv_dn_in_the_list_is_a_rejection(
    cpki: ImagesPki, http_server: Any, tmp_path: Path
) -> None:
    e = cpki.endorser
    signer = Signer(tmp_path, cpki.pki.ca, [(C, "EU"), (ORG, "Fedcloud Test"), (CN, "x")])
    signer.cert, signer.key_path = e.cert, e.key  # the real endorser, a crafted hv:dn
    body = _signed(signer, hv_dn=e.dn + "/weird=1")
    with pytest.raises(ListRejected) as exc:
        _fetch(http_server, tmp_path, body, e.dn, cpki.endorser_ca, cpki.capath)
    assert "hv:dn" in exc.value.reason
    assert "'weird' is not a known attribute name" in exc.value.reason


def test_attribute_names_are_read_as_oids() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "eu"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.eu"),
            x509.NameAttribute(CN, "h"),
        ]
    )
    for text in (
        "/DC=eu/emailAddress=a@b.eu/CN=h",
        "/dc=eu/E=a@b.eu/cn=h",
        "/DC=eu/1.2.840.113549.1.9.1=a@b.eu/CN=h",
    ):
        assert same_name(text, name), text
    assert not same_name("/DC=eu/CN=h/emailAddress=a@b.eu", name)  # order matters


# ------------------------------------------------------------------ CRLs


def _capath_with_crl(cpki: ImagesPki, tmp_path: Path, revoked: list[x509.Certificate]) -> Path:
    capath = tmp_path / "certificates"
    shutil.copytree(cpki.capath, capath, symlinks=False)
    ca = cpki.pki.ca
    now = datetime.now(UTC)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(hours=1))
        .next_update(now + timedelta(days=7))
    )
    for cert in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - timedelta(minutes=5))
            .build()
        )
    crl = b.sign(ca.private_key, hashes.SHA256())
    (capath / "fedcloud-test-ca.crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    run_tool(["openssl", "rehash", str(capath)], timeout=30)
    return capath


def test_crls_in_the_ca_directory_turn_the_check_on(
    cpki: ImagesPki, http_server: Any, tmp_path: Path
) -> None:
    ca = cpki.pki.ca
    revoked = Signer(tmp_path, ca, [(C, "EU"), (ORG, "Fedcloud Test"), (CN, "appdb.example.org")])
    good = Signer(tmp_path, ca, [(C, "EU"), (ORG, "Fedcloud Test"), (CN, "appdb.example.org")])
    capath = _capath_with_crl(cpki, tmp_path, [revoked.certificate])
    assert capath_has_crls(capath)
    assert any(p.name.endswith(".r0") for p in capath.iterdir())
    assert not capath_has_crls(cpki.capath)

    with pytest.raises(ListRejected) as exc:
        _fetch(http_server, tmp_path, _signed(revoked), revoked.dn, cpki.endorser_ca, capath)
    assert "revoked" in exc.value.reason
    _fetch(http_server, tmp_path, _signed(good), good.dn, cpki.endorser_ca, capath)

    # explicitly off: the operator's choice stands
    url = http_server.put("/endorser/revoked.list", _signed(revoked))
    sub = Subscription(
        name="l", url=url, vo="v", endorser_dn=revoked.dn, endorser_ca=cpki.endorser_ca
    )
    src = HepixSource(
        sub,
        http=make_session(retries=0),
        capath=capath,
        timeout=(2, 2),
        workdir=str(tmp_path),
        crl_check=False,
    )
    assert src.fetch().version == "1"


# ------------------------------------------------------------------ lists without an expiry date


def test_a_list_without_expiry_is_valid_for_the_maximum_age(
    cpki: ImagesPki, http_server: Any, tmp_path: Path
) -> None:
    e = cpki.endorser
    signer = Signer(tmp_path, cpki.pki.ca, [(CN, "x")])
    signer.cert, signer.key_path = e.cert, e.key
    now = datetime.now(UTC)

    fresh = _signed(signer, created=now - timedelta(days=29), expires=False)
    il = _fetch(http_server, tmp_path, fresh, e.dn, cpki.endorser_ca, cpki.capath)
    assert il.expires is None

    old = _signed(signer, created=now - timedelta(days=31), expires=False)
    with pytest.raises(ListRejected) as exc:
        _fetch(http_server, tmp_path, old, e.dn, cpki.endorser_ca, cpki.capath)
    assert "no dc:date:expires" in exc.value.reason
    assert "max_list_age_days=30" in exc.value.reason

    undated = _signed(signer, expires=False)
    with pytest.raises(ListRejected, match="neither dc:date:expires nor dc:date:created"):
        _fetch(http_server, tmp_path, undated, e.dn, cpki.endorser_ca, cpki.capath)

    # an explicit expiry date wins over the age
    dated = _signed(signer, created=now - timedelta(days=300), expires_days=400)
    assert _fetch(http_server, tmp_path, dated, e.dn, cpki.endorser_ca, cpki.capath).expires
