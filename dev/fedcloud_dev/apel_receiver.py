"""The receiving side (what the central APEL repository does), for tests and the demo.

Takes each message from a STOMP destination, decrypts it when it is encrypted,
verifies the S/MIME signature and the signer's chain against the CA directory,
checks the signer DN against an allow-list, and stores accepted bodies (one file per
``empa-id``, duplicates counted, not stored twice); rejected messages are stored
aside with the reason (unknown DN, unverified signer, tampered body, ...). A message
is acknowledged to the broker only after it has been stored.

Run: ``python -m fedcloud_dev.apel_receiver --help`` (or ``fedcloud-apel-receiver``): in the
development venv only, never on a site.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import quopri
import re
import signal
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stomp
from stomp.exception import ConnectFailedException, StompException

from fedcloud_core import smime
from fedcloud_core.files import atomic_write
from fedcloud_ssm.stomp_transport import ca_bundle_from_dir

log = logging.getLogger(__name__)

UNKNOWN_DN = "unknown DN"
UNVERIFIED = "unverified signer"
TAMPERED = "tampered body"
NOT_SMIME = "not a signed message"
UNDECRYPTABLE = "cannot decrypt"


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str | None = None  # one of the constants above
    detail: str = ""
    signer: str | None = None
    body: bytes | None = None


def strip_text_part(content: bytes) -> bytes:
    """The body of the signed MIME part: drop its header, undo the transfer encoding and CRLF.

    Mirrors what APEL's receiver does with ``openssl smime -verify`` output.
    """
    m = re.search(rb"\r?\n\r?\n", content)
    if m is None or not re.match(rb"[A-Za-z-]+:", content):
        head, body = b"", content
    else:
        head, body = content[: m.start()], content[m.end() :]
    enc = re.search(rb"(?im)^content-transfer-encoding:\s*([\w-]+)", head)
    if enc and enc.group(1).lower() == b"base64":
        body = base64.b64decode(body)
    elif enc and enc.group(1).lower() == b"quoted-printable":
        body = quopri.decodestring(body)
    return body.replace(b"\r\n", b"\n")


class MessageChecker:
    """Decides accept/reject for one raw message. Constructor does no I/O."""

    def __init__(
        self,
        capath: Path,
        allowed_dns: Sequence[str],
        *,
        cert: Path | None = None,
        key: Path | None = None,
        crl_check: bool = False,
    ):
        self.capath = capath
        self.allowed = list(allowed_dns)
        self.cert, self.key = cert, key
        self.crl_check = crl_check

    def check(self, raw: bytes) -> Verdict:
        if not raw.strip():
            return Verdict(False, NOT_SMIME, "empty message")
        if b"application/pkcs7-mime" in raw or b"application/x-pkcs7-mime" in raw:
            if self.cert is None or self.key is None:
                return Verdict(False, UNDECRYPTABLE, "encrypted, and this receiver has no key")
            try:
                raw = smime.decrypt(raw, self.cert, self.key)
            except smime.SmimeError as exc:
                return Verdict(False, UNDECRYPTABLE, str(exc))
        try:
            v = smime.verify(raw, capath=self.capath, purpose_any=True, crl_check=self.crl_check)
        except smime.SmimeError as exc:
            text = str(exc)
            if "tampered" in text or "does not match" in text:
                return Verdict(False, TAMPERED, text)
            if "not an S/MIME" in text:
                return Verdict(False, NOT_SMIME, text)
            return Verdict(False, UNVERIFIED, text)
        if not any(smime.same_dn(v.signer_dn, dn) for dn in self.allowed):
            return Verdict(
                False,
                UNKNOWN_DN,
                f"signer {v.signer_dn} is not in the allow-list",
                signer=v.signer_dn,
            )
        return Verdict(True, signer=v.signer_dn, body=strip_text_part(v.content))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:120] or "noid"


@dataclass
class Store:
    """Accepted bodies under ``accepted/<empa-id>.msg`` (+ ``.json``), rejects under ``rejected/``."""

    root: Path
    counts: dict[str, int] = field(
        default_factory=lambda: {"accepted": 0, "rejected": 0, "duplicates": 0}
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def accepted_dir(self) -> Path:
        return self.root / "accepted"

    @property
    def rejected_dir(self) -> Path:
        return self.root / "rejected"

    def put(self, empaid: str, raw: bytes, verdict: Verdict, destination: str = "") -> str:
        """Store ``raw``'s outcome; returns 'accepted', 'duplicate' or 'rejected'."""
        stamp = datetime.now(UTC).isoformat()
        with self._lock:
            if verdict.accepted:
                assert verdict.body is not None
                path = self.accepted_dir / f"{_safe(empaid)}.msg"
                if path.exists():
                    if path.read_bytes() == verdict.body:
                        self.counts["duplicates"] += 1
                        with open(self.root / "duplicates.log", "a", encoding="utf-8") as fh:
                            fh.write(f"{stamp} {empaid}\n")
                        return "duplicate"
                    n = 1
                    while (alt := self.accepted_dir / f"{_safe(empaid)}.{n}.msg").exists():
                        n += 1
                    path = alt
                atomic_write(path, verdict.body)
                atomic_write(
                    path.with_suffix(".json"),
                    json.dumps(
                        {
                            "empa-id": empaid,
                            "signer": verdict.signer,
                            "received": stamp,
                            "destination": destination,
                        },
                        indent=1,
                    )
                    + "\n",
                )
                self.counts["accepted"] += 1
                return "accepted"
            self.counts["rejected"] += 1
            base = self.rejected_dir / f"{self.counts['rejected']:06d}-{_safe(empaid)}"
            atomic_write(base.with_suffix(".msg"), raw)
            atomic_write(
                base.with_suffix(".reason"),
                json.dumps(
                    {
                        "empa-id": empaid,
                        "reason": verdict.reason,
                        "detail": verdict.detail,
                        "signer": verdict.signer,
                        "received": stamp,
                    },
                    indent=1,
                )
                + "\n",
            )
            log.warning("rejected message %s: %s (%s)", empaid, verdict.reason, verdict.detail)
            return "rejected"

    def accepted(self) -> dict[str, bytes]:
        """empa-id (file stem) -> body, as stored."""
        return {p.stem: p.read_bytes() for p in sorted(self.accepted_dir.glob("*.msg"))}

    def rejected(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.rejected_dir.glob("*.reason"))]


class _Consumer(stomp.ConnectionListener):
    def __init__(self, receiver: Receiver):
        self.r = receiver
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.last_message = time.monotonic()

    def on_connected(self, frame: Any) -> None:
        self.connected.set()

    def on_disconnected(self) -> None:
        self.lost.set()

    def on_error(self, frame: Any) -> None:
        log.error("broker error: %s", frame.headers.get("message", frame.body))

    def on_message(self, frame: Any) -> None:
        self.last_message = time.monotonic()
        self.r.handle(frame)


class Receiver:
    """Consumes a STOMP destination into a :class:`Store`."""

    def __init__(
        self,
        host: str,
        port: int,
        destination: str,
        checker: MessageChecker,
        store: Store,
        *,
        use_ssl: bool = False,
        cert: Path | None = None,
        key: Path | None = None,
        capath: Path | None = None,
        vhost: str | None = None,
        timeout: float = 10.0,
    ):
        self.host, self.port, self.destination = host, port, destination
        self.checker, self.store = checker, store
        self.use_ssl, self.cert, self.key, self.capath, self.vhost = (
            use_ssl,
            cert,
            key,
            capath,
            vhost,
        )
        self.timeout = timeout
        self._conn: stomp.Connection12 | None = None
        self._consumer: _Consumer | None = None
        self._bundle: Path | None = None
        self._stop = threading.Event()
        self._closing = threading.Event()
        self.handled = 0  # messages stored (accepted, duplicate or rejected) and acknowledged

    def handle(self, frame: Any) -> None:
        if self._closing.is_set():  # not stored, not acked: the broker redelivers it next time
            return
        headers = frame.headers
        empaid = headers.get("empa-id", "noid")
        raw = frame.body if isinstance(frame.body, bytes) else str(frame.body).encode("utf-8")
        verdict = self.checker.check(raw)
        outcome = self.store.put(empaid, raw, verdict, self.destination)
        log.info(
            "message %s: %s%s", empaid, outcome, f" ({verdict.reason})" if verdict.reason else ""
        )
        self.handled += 1
        conn = self._conn
        if conn is not None:  # ack only once stored: nothing is lost if we die before
            try:
                conn.ack(headers["ack"] if "ack" in headers else headers["message-id"])
            except (StompException, OSError) as exc:
                log.warning("ack of %s failed (it will be redelivered): %s", empaid, exc)

    def connect(self) -> None:
        conn = stomp.Connection12(
            [(self.host, self.port)],
            heartbeats=(0, 0),
            timeout=self.timeout,
            reconnect_attempts_max=1,
            vhost=self.vhost,
            auto_decode=False,
        )
        if self.use_ssl:
            if self._bundle is None:
                assert self.capath is not None
                self._bundle = self.store.root / ".ca-bundle.pem"
                atomic_write(self._bundle, ca_bundle_from_dir(self.capath))
            conn.set_ssl(
                for_hosts=[(self.host, self.port)],
                key_file=str(self.key),
                cert_file=str(self.cert),
                ca_certs=str(self._bundle),
                verify=True,
                ssl_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        consumer = _Consumer(self)
        conn.set_listener("receiver", consumer)
        conn.connect(wait=False)
        if not consumer.connected.wait(self.timeout):
            conn.disconnect()
            raise ConnectFailedException()
        self._closing.clear()
        self._conn, self._consumer = conn, consumer
        conn.subscribe(
            destination=self.destination,
            id="fedcloud-receiver",
            ack="client-individual",
            headers={"prefetch-count": "50"},
        )
        consumer.last_message = time.monotonic()
        log.info("receiving from %s:%s%s", self.host, self.port, self.destination)

    def close(self) -> None:
        self._closing.set()
        conn, self._conn = self._conn, None
        if conn is not None and conn.is_connected():
            try:
                conn.disconnect()
            except (StompException, OSError):
                pass

    def drain(
        self, *, idle: float = 1.0, max_time: float = 60.0, expect: int = 0
    ) -> dict[str, int]:
        """Consume until nothing arrived for ``idle`` seconds (bounded by ``max_time``).

        ``expect``: the destination is known to hold at least this many messages: the idle
        time counts only once as many were handled (a broker that has just restarted, or a
        loaded machine, may take longer than ``idle`` to deliver the first one).
        """
        start = self.handled
        self.connect()
        assert self._consumer is not None
        deadline = time.monotonic() + max_time
        try:
            while time.monotonic() < deadline and not self._consumer.lost.is_set():
                if (
                    self.handled - start >= expect
                    and time.monotonic() - self._consumer.last_message > idle
                ):
                    break
                time.sleep(0.1)
        finally:
            self.close()
        return dict(self.store.counts)

    def serve_forever(self, *, max_backoff: float = 30.0) -> None:
        """Consume until :meth:`stop`; reconnect with backoff when the broker goes away."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.connect()
                delay = 1.0
            except (ConnectFailedException, StompException, OSError) as exc:
                log.warning(
                    "cannot connect to %s:%s (%s); retrying in %.0fs",
                    self.host,
                    self.port,
                    exc or "refused",
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, max_backoff)
                continue
            assert self._consumer is not None
            while not self._stop.is_set() and not self._consumer.lost.is_set():
                self._stop.wait(0.5)
            self.close()

    def stop(self) -> None:
        self._stop.set()


def _read_dns(values: Sequence[str], files: Sequence[Path]) -> list[str]:
    dns = list(values)
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                dns.append(line)
    return dns


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fedcloud-apel-receiver", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=61613)
    p.add_argument("--destination", default="/queue/global.accounting.cloudtest.APEL")
    p.add_argument("--vhost", default=None, help="STOMP 'host' header (RabbitMQ: '/')")
    p.add_argument("--tls", action="store_true", help="connect with TLS (client cert --cert/--key)")
    p.add_argument("--cert", type=Path, help="receiver certificate (TLS client, decryption)")
    p.add_argument("--key", type=Path, help="receiver key")
    p.add_argument(
        "--capath", type=Path, required=True, help="CA directory (signer and broker chains)"
    )
    p.add_argument(
        "--allow", action="append", default=[], metavar="DN", help="an allowed signer DN"
    )
    p.add_argument(
        "--allow-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="file with one allowed DN per line",
    )
    p.add_argument(
        "--store", type=Path, required=True, help="directory for accepted/ and rejected/"
    )
    p.add_argument("--drain", action="store_true", help="exit once the destination is empty")
    p.add_argument("--idle", type=float, default=2.0, help="--drain: seconds without a message")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("stomp.py").setLevel(logging.WARNING)
    dns = _read_dns(args.allow, args.allow_file)
    if not dns:
        p.error("give at least one allowed DN (--allow or --allow-file)")
    args.store.mkdir(parents=True, exist_ok=True)
    checker = MessageChecker(args.capath, dns, cert=args.cert, key=args.key)
    receiver = Receiver(
        args.host,
        args.port,
        args.destination,
        checker,
        Store(args.store),
        use_ssl=args.tls,
        cert=args.cert,
        key=args.key,
        capath=args.capath,
        vhost=args.vhost,
    )
    if args.drain:
        counts = receiver.drain(idle=args.idle)
        print(json.dumps(counts))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: receiver.stop())
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        receiver.stop()
    print(json.dumps(receiver.store.counts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
