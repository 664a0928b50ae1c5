"""Signed HEPiX lists as publishers make them: detached / opaque, smime / cms, sha1 / sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedcloud_core import smime
from fedcloud_core.config.images import Subscription
from fedcloud_core.external import run_tool
from fedcloud_images.errors import ListRejected
from fedcloud_images.sources.hepix import HepixSource
from fedcloud_images.sources.http import make_session
from fedcloud_images.verify import verify_signature

pytestmark = pytest.mark.contract

DOC = {
    "hv:imagelist": {
        "dc:identifier": "l1",
        "hv:version": "3",
        "dc:date:expires": "2099-01-01T00:00:00Z",
        "hv:images": [
            {
                "hv:image": {
                    "dc:identifier": "i1",
                    "hv:uri": "http://127.0.0.1:1/x.img",
                    "hv:size": "10",
                    "sl:checksum:sha512": "ab" * 64,
                    "hv:format": "QCOW2",
                    "hv:ram_minimum": 512,
                }
            }
        ],
    }
}


def _doc(cred: Any, ca_dn: str) -> bytes:
    d = json.loads(json.dumps(DOC))
    d["hv:imagelist"]["hv:endorser"] = {"hv:x509": {"hv:dn": cred.dn, "hv:ca": ca_dn}}
    return json.dumps(d, indent=1).encode()


def _openssl_sign(data: bytes, cred: Any, *args: str, tool: str = "smime") -> bytes:
    argv = ["openssl", tool, "-sign", "-signer", str(cred.cert), "-inkey", str(cred.key), *args]
    return run_tool(argv, input=data, timeout=30).stdout


VARIANTS = {
    "smime-detached-sha256": ("smime", ["-md", "sha256"]),
    "smime-detached-sha1": ("smime", ["-md", "sha1"]),
    "smime-opaque": ("smime", ["-nodetach"]),
    "cms-detached": ("cms", ["-outform", "SMIME"]),
    "cms-opaque": ("cms", ["-outform", "SMIME", "-nodetach"]),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_signature_form_is_accepted(variant: str, cpki: Any, tmp_path: Path) -> None:
    tool, args = VARIANTS[variant]
    content = _doc(cpki.endorser, cpki.endorser_ca)
    signed = _openssl_sign(content, cpki.endorser, *args, tool=tool)
    head = signed[:400].lower()
    if "opaque" in variant:
        assert b"pkcs7-mime" in head
    else:
        assert b"multipart/signed" in head
    got = verify_signature(
        "l",
        signed,
        endorser_dn=cpki.endorser.dn,
        endorser_ca=cpki.endorser_ca,
        capath=cpki.capath,
        workdir=str(tmp_path),
    )
    assert json.loads(got.content) == json.loads(content)
    assert smime.same_dn(got.signer_dn, cpki.endorser.dn)


def test_x_pkcs7_signature_protocol_name_is_accepted(cpki: Any, tmp_path: Path) -> None:
    signed = _openssl_sign(_doc(cpki.endorser, cpki.endorser_ca), cpki.endorser)
    signed = signed.replace(b"application/pkcs7-signature", b"application/x-pkcs7-signature")
    signed = signed.replace(b'protocol="application/pkcs7', b'protocol="application/x-pkcs7')
    assert b"x-pkcs7-signature" in signed
    verify_signature(
        "l",
        signed,
        endorser_dn=cpki.endorser.dn,
        endorser_ca=cpki.endorser_ca,
        capath=cpki.capath,
        workdir=str(tmp_path),
    )


def test_endorser_without_email_protection_usage_is_accepted(cpki: Any) -> None:
    from cryptography.x509 import ExtendedKeyUsage
    from cryptography.x509.oid import ExtendedKeyUsageOID

    eku = cpki.endorser.certificate.extensions.get_extension_for_class(ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION not in list(eku)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("self-signed", "not trusted"),
        ("untrusted-ca", "does not chain to a trusted CA"),
        ("garbage", "not an S/MIME message"),
    ],
)
def test_untrusted_signatures_are_rejected(
    case: str, reason: str, cpki: Any, tmp_path: Path
) -> None:
    if case == "garbage":
        signed = b"hello"
    else:
        cred = cpki.pki.selfsigned if case == "self-signed" else cpki.untrusted
        signed = _openssl_sign(_doc(cred, cpki.endorser_ca), cred)
    with pytest.raises(ListRejected) as exc:
        verify_signature(
            "l",
            signed,
            endorser_dn=cpki.endorser.dn,
            endorser_ca=cpki.endorser_ca,
            capath=cpki.capath,
            workdir=str(tmp_path),
        )
    assert reason in exc.value.reason or (
        case == "self-signed" and "trusted CA" in exc.value.reason
    )


def test_source_parses_upper_case_formats_and_string_numbers(
    cpki: Any, http_server: Any, tmp_path: Path
) -> None:
    signed = _openssl_sign(
        _doc(cpki.endorser, cpki.endorser_ca), cpki.endorser, "-outform", "SMIME", tool="cms"
    )
    url = http_server.put("/sig/contract.list", signed)
    sub = Subscription(
        name="c", url=url, vo="v", endorser_dn=cpki.endorser.dn, endorser_ca=cpki.endorser_ca
    )
    il = HepixSource(
        sub, http=make_session(retries=0), capath=cpki.capath, timeout=(2, 2), workdir=str(tmp_path)
    ).fetch()
    assert il.version == "3"
    (img,) = il.images
    assert (img.format_hint, img.size, img.ram_min) == ("qcow2", 10, 512)
