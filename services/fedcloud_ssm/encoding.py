"""Turn one queued message into what goes on the wire: checked, S/MIME signed, optionally encrypted.

Wire format (what APEL's ssm 2.x-4.x sends and its receiver expects): ``openssl smime
-sign -text`` with the host certificate, i.e. a clear-signed ``multipart/signed``
(SHA-256) whose signed part is ``Content-Type: text/plain`` + the body with CRLF line
ends. The receiver verifies, drops the MIME header of the signed part and turns CRLF
back into LF. Optional encryption: ``openssl smime -encrypt -aes128`` to the server
certificate, applied to the signed text.

Signers (``ssm.signer``): ``builtin`` (default) signs in-process with ``cryptography``
(:class:`fedcloud_core.smime.TextSigner`, the same signed part); ``openssl`` runs
``openssl smime -sign -text`` once per message, as ssmsend does.
"""

from __future__ import annotations

from pathlib import Path

from fedcloud_core import smime

from .errors import BadMessage


def check_body(body: bytes, *, ascii_only: bool = True) -> str:
    """Return the body as text, or raise :class:`BadMessage` saying why it cannot be sent."""
    if not body.strip():
        raise BadMessage("empty message")
    nul = body.find(b"\x00")
    if nul >= 0:
        raise BadMessage(f"NUL byte at offset {nul}")
    if ascii_only and not body.isascii():
        for i, byte in enumerate(body):
            if byte > 0x7F:
                line = body.count(b"\n", 0, i) + 1
                raise BadMessage(
                    f"non-ASCII byte 0x{byte:02x} at offset {i} (line {line}); APEL rejects such a "
                    "message whole"
                )
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(f"not UTF-8 text: {exc.reason} at offset {exc.start}") from None


SIGNERS = ("builtin", "openssl")


class Encoder:
    """Signs (and encrypts) message bodies with the host credentials. No I/O until used."""

    def __init__(
        self,
        cert: Path,
        key: Path,
        *,
        server_cert: Path | None = None,
        ascii_only: bool = True,
        timeout: float = 60.0,
        signer: str = "builtin",
    ):
        if signer not in SIGNERS:
            raise ValueError(f"unknown signer {signer!r} (one of {', '.join(SIGNERS)})")
        self.cert = cert
        self.key = key
        self.server_cert = server_cert
        self.ascii_only = ascii_only
        self.timeout = timeout
        self.signer = signer
        self._builtin = smime.TextSigner(cert, key, timeout=timeout)

    def encode(self, body: bytes) -> str:
        """The wire text of ``body``. :class:`BadMessage` for a bad body; SmimeError if signing fails."""
        check_body(body, ascii_only=self.ascii_only)
        if self.signer == "builtin":
            signed = self._builtin.sign(body)
        else:
            signed = smime.sign(
                body,
                self.cert,
                self.key,
                detached=True,
                text=True,
                digest="sha256",
                timeout=self.timeout,
            )
        if self.server_cert is not None:
            signed = smime.encrypt(signed, self.server_cert, timeout=self.timeout)
        return signed.decode("utf-8")
