"""The in-process signer (``ssm.signer: builtin``) against real openssl and the project's receiver.

What it writes must verify with ``openssl smime -verify`` (what APEL's receiver runs) and
with :class:`fedcloud_dev.apel_receiver.MessageChecker`, and sign exactly the content
``openssl smime -sign -text`` signs: ``Content-Type: text/plain`` CRLF CRLF + the body
with CRLF line ends. A changed body must be rejected.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from fedcloud_core import smime
from fedcloud_dev.apel_receiver import TAMPERED, MessageChecker, strip_text_part
from fedcloud_ssm.encoding import Encoder
from support.apel_queue import cloud_message
from support.pki import Pki, make_pki

pytestmark = pytest.mark.contract

LF = cloud_message(7, 3)
BODIES = {
    "lf": LF,
    "crlf": LF.replace(b"\n", b"\r\n"),
    "mixed": LF.replace(b"\n", b"\r\n", 5),
    "no-final-newline": LF.rstrip(b"\n"),
    "blank-lines-and-trailing-space": b"APEL-cloud-message: v0.4\n\n\nVMUUID: x \nSiteName: S\r\r\n",
    "long-line": b"APEL-cloud-message: v0.4\nMachineName: " + b"x" * 5000 + b"\nSiteName: S\n",
    "lone-cr": b"APEL-cloud-message: v0.4\nMachineName: a\rb\nSiteName: S\n",  # openssl signs it
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("signer-pki"))


def openssl_verify(pki: Pki, wire: bytes) -> subprocess.CompletedProcess[bytes]:
    """``openssl smime -verify`` as APEL's receiver runs it (plus -purpose any: the test
    certificates are TLS server/client certificates, not S/MIME ones)."""
    return subprocess.run(
        ["openssl", "smime", "-verify", "-CApath", str(pki.capath), "-purpose", "any"],
        input=wire,
        capture_output=True,
        check=False,
        timeout=60,
    )


def layout(wire: bytes) -> bytes:
    """``wire`` with its boundary and its base64 signature replaced by fixed words."""
    boundary = re.search(rb'boundary="([^"]+)"', wire).group(1)  # type: ignore[union-attr]
    wire = wire.replace(boundary, b"BOUNDARY")
    return re.sub(rb'(filename="smime.p7s"\n\n)[A-Za-z0-9+/=\n]+?\n\n', rb"\1SIGNATURE\n\n", wire)


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_builtin_signature_verifies_with_openssl_and_the_receiver(pki: Pki, body: bytes):
    builtin = Encoder(pki.sender.cert, pki.sender.key, signer="builtin").encode(body).encode()
    reference = Encoder(pki.sender.cert, pki.sender.key, signer="openssl").encode(body).encode()

    # laid out as openssl lays it out, byte for byte but for the boundary and the signature
    assert layout(builtin) == layout(reference)
    # the shape APEL expects: clear-signed multipart/signed, SHA-256, a text/plain part
    head = builtin.split(b"\n\n", 1)[0]
    assert re.search(
        rb'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"', head
    )
    assert b'micalg="sha-256"' in head
    boundary = re.search(rb'boundary="([^"]+)"', head).group(1)  # type: ignore[union-attr]
    first_part = builtin.split(b"--" + boundary, 2)[1]
    assert re.match(rb"\r?\nContent-Type: text/plain\r\n\r\n", first_part)

    # real openssl: verified, and the signed content is byte for byte what openssl -text signs
    got = openssl_verify(pki, builtin)
    assert got.returncode == 0, got.stderr.decode()
    want = openssl_verify(pki, reference)
    assert want.returncode == 0, want.stderr.decode()
    assert got.stdout == want.stdout
    assert got.stdout.startswith(b"Content-Type: text/plain\r\n\r\n")

    # the project's receiver: accepted, signer DN checked, the body as APEL stores it (LF)
    verdict = MessageChecker(pki.capath, [pki.sender.dn]).check(builtin)
    assert verdict.accepted, verdict.detail
    assert smime.same_dn(verdict.signer or "", pki.sender.dn)
    assert verdict.body == strip_text_part(want.stdout)
    if b"\r" not in body:
        assert verdict.body == body


@pytest.mark.parametrize("body", [BODIES["lf"], BODIES["crlf"]], ids=["lf", "crlf"])
def test_tampered_body_is_rejected_by_openssl_and_the_receiver(pki: Pki, body: bytes):
    wire = Encoder(pki.sender.cert, pki.sender.key).encode(body).encode()
    tampered = wire.replace(b"MachineName: vm-7-1", b"MachineName: vm-7-X")
    assert tampered != wire
    got = openssl_verify(pki, tampered)
    assert got.returncode != 0
    assert b"digest failure" in got.stderr.lower() or b"verify error" in got.stderr.lower()
    verdict = MessageChecker(pki.capath, [pki.sender.dn]).check(tampered)
    assert not verdict.accepted
    assert verdict.reason == TAMPERED


def test_builtin_signature_encrypted_to_the_server_is_accepted(pki: Pki):
    enc = Encoder(pki.sender.cert, pki.sender.key, server_cert=pki.receiver.cert)
    wire = enc.encode(LF).encode()
    assert b"application/x-pkcs7-mime" in wire or b"application/pkcs7-mime" in wire
    checker = MessageChecker(
        pki.capath, [pki.sender.dn], cert=pki.receiver.cert, key=pki.receiver.key
    )
    verdict = checker.check(wire)
    assert verdict.accepted, verdict.detail
    assert verdict.body == LF


def test_canonical_text_is_what_openssl_signs():
    assert smime.canonical_text(b"a\nb\n") == b"a\r\nb\r\n"
    assert smime.canonical_text(b"a\r\nb") == b"a\r\nb"
    assert smime.canonical_text(b"a\r\r\n\nb\r") == b"a\r\n\r\nb"
    assert smime.canonical_text(b"a \n") == b"a \r\n"


def test_unreadable_key_is_a_clear_signing_error(pki: Pki, tmp_path):
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(smime.SmimeError, match=r"signing failed: cannot load .*key.pem"):
        Encoder(pki.sender.cert, bad).encode(LF)
