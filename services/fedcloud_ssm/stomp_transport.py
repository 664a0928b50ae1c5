"""STOMP transport (stomp.py): one connection, SEND with ``empa-id`` and ``receipt``, wait for THAT receipt.

Two ways to send: :meth:`StompTransport.send` waits for the receipt of each message
before the next SEND; :meth:`StompTransport.submit` + :meth:`StompTransport.receipts`
keep up to ``window`` messages in flight, each with its own receipt (the sender removes
a message from its queue only once its receipt arrived).

TLS: the host certificate is the client certificate; the broker certificate is
verified against the CA directory (a CA bundle is built from it for the connection,
since stomp.py takes a file) and its name checked against ``host``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stomp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from stomp.exception import ConnectFailedException, StompException

from .errors import BrokerRefused, BrokerUnavailable, DeliveryError, MessageRefused, SsmError

log = logging.getLogger(__name__)

# An ERROR frame while a SEND waits for its receipt is about that message (too large, bad
# headers, ...) unless it speaks of access, the destination or the connection: then every
# message would be refused, so the run stops instead of setting messages aside.
_NOT_ABOUT_THE_MESSAGE = re.compile(
    r"access[_ ]refused|not[_ ]allowed|not[_ ]found|no queue|unauthori[sz]ed|not authori[sz]ed"
    r"|permission|forbidden|login|authenticat|vhost|virtual host|destination|inequivalent"
    r"|resource[_ ]locked|connection[_ ]forced|internal[_ ]error|shutdown|heart-?beat",
    re.IGNORECASE,
)


def ca_bundle_from_dir(capath: Path) -> bytes:
    """Every CA certificate in ``capath`` (PEM files, hashed links), deduplicated, as one PEM bundle."""
    seen: set[bytes] = set()
    out: list[bytes] = []
    try:
        entries = sorted(capath.iterdir())
    except OSError as exc:
        raise BrokerUnavailable(f"CA directory {capath}: {exc.strerror}") from None
    for f in entries:
        if f.suffix.startswith(".r") or not f.is_file():  # CRLs (<hash>.r0) and the rest
            continue
        try:
            data = f.read_bytes()
        except OSError:
            continue
        if b"-----BEGIN CERTIFICATE-----" not in data:
            continue
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            log.debug("skipping %s: not a PEM certificate", f)
            continue
        for c in certs:
            pem = c.public_bytes(Encoding.PEM)
            if pem not in seen:
                seen.add(pem)
                out.append(pem)
    if not out:
        raise BrokerRefused(
            f"CA directory {capath} holds no CA certificate: cannot verify the broker"
        )
    return b"".join(out)


class _Listener(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.connected = False
        self.receipts: set[str] = set()
        self.error: str | None = None
        self.error_receipt: str | None = None  # receipt-id of the frame the ERROR is about
        self.disconnects = 0

    def on_connected(self, frame: Any) -> None:
        with self.cond:
            self.connected = True
            self.cond.notify_all()

    def on_disconnected(self) -> None:
        with self.cond:
            self.connected = False
            self.disconnects += 1
            self.cond.notify_all()

    def on_error(self, frame: Any) -> None:
        with self.cond:
            headers = getattr(frame, "headers", {}) or {}
            body = " ".join(str(getattr(frame, "body", "") or "").split())[:300]
            short = headers.get("message") or ""
            self.error = (
                f"{short}: {body}" if short and body and short not in body else body or short
            ) or "ERROR frame"
            self.error_receipt = headers.get("receipt-id")
            self.cond.notify_all()

    def on_receipt(self, frame: Any) -> None:
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id", ""))
            self.cond.notify_all()


class StompTransport:
    """Sends signed messages to one STOMP destination. Constructor does no I/O."""

    kind = "STOMP"

    def __init__(
        self,
        host: str,
        port: int,
        destination: str,
        *,
        use_ssl: bool = True,
        cert: Path | None = None,
        key: Path | None = None,
        capath: Path | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        persistent: bool = True,
        vhost: str | None = None,
        window: int = 1,
    ):
        self.host, self.port, self.destination = host, port, destination
        self.use_ssl, self.cert, self.key, self.capath = use_ssl, cert, key, capath
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retries, self.backoff, self.sleep = retries, backoff, sleep
        self.persistent = persistent
        self.vhost = vhost
        self._conn: stomp.Connection12 | None = None
        self._listener = _Listener()
        self._bundle: str | None = None
        self.reconnects = 0
        self._probed = False
        self.window = max(1, window)
        # pipelined sending: msgid -> (queue, text, time sent), oldest first
        self._pending: dict[str, tuple[str, str, float]] = {}
        self._recoveries = 0  # reconnects since the last receipt
        self._settled: list[tuple[str, SsmError | None]] = []  # not yet returned by receipts()

    def describe(self, queue: str) -> str:
        scheme = "stomp+ssl" if self.use_ssl else "stomp"
        return f"{scheme}://{self.host}:{self.port}{self.destination}"

    # ------------------------------------------------------------------ connection

    def _prepare_tls(self) -> None:
        if not self.use_ssl or self._bundle:
            return
        if self.capath is None or self.cert is None or self.key is None:
            raise BrokerRefused("STOMP over TLS needs the host certificate, key and CA directory")
        fd, path = tempfile.mkstemp(prefix="ssm-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            fh.write(ca_bundle_from_dir(self.capath))
        self._bundle = path

    def _probe_tls(self) -> None:
        """One TLS handshake of our own, for a clear error (stomp.py only says 'could not connect')."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self._bundle)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        try:
            with (
                socket.create_connection(
                    (self.host, self.port), timeout=self.connect_timeout
                ) as raw,
                ctx.wrap_socket(raw, server_hostname=self.host),
            ):
                pass
        except ssl.SSLCertVerificationError as exc:
            raise BrokerRefused(
                f"the certificate of broker {self.host}:{self.port} is not trusted: "
                f"{exc.verify_message} (CA directory {self.capath})"
            ) from None
        except ssl.SSLError as exc:
            raise BrokerRefused(
                f"TLS handshake with broker {self.host}:{self.port} failed: {exc.reason or exc}"
            ) from None
        except OSError as exc:
            raise BrokerUnavailable(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self._probed = True

    def _connect_once(self) -> None:
        self._drop()
        if self.use_ssl and not self._probed:
            self._probe_tls()
        conn = stomp.Connection12(
            [(self.host, self.port)],
            heartbeats=(0, 0),
            timeout=self.connect_timeout,
            reconnect_attempts_max=1,
            reconnect_sleep_initial=0.0,
            reconnect_sleep_max=0.0,
            auto_content_length=True,
            vhost=self.vhost,
        )
        if self.use_ssl:
            conn.set_ssl(
                for_hosts=[(self.host, self.port)],
                key_file=str(self.key),
                cert_file=str(self.cert),
                ca_certs=self._bundle,
                verify=True,
                ssl_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        listener = self._listener = _Listener()
        conn.set_listener("fedcloud-ssm", listener)
        try:
            conn.connect(wait=False)
        except (ConnectFailedException, OSError, StompException) as exc:
            detail = str(exc) or "connection refused or closed"
            raise BrokerUnavailable(
                f"cannot connect to {self.host}:{self.port}: {detail}"
            ) from None
        deadline = time.monotonic() + self.connect_timeout
        with listener.cond:
            while not listener.connected and listener.error is None and time.monotonic() < deadline:
                listener.cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            ok, err = listener.connected, listener.error
        self._conn = conn
        if err:
            self._drop()
            raise BrokerRefused(f"broker {self.host}:{self.port} refused the connection: {err}")
        if not ok:
            self._drop()
            raise BrokerUnavailable(
                f"broker {self.host}:{self.port} did not answer CONNECT "
                f"within {self.connect_timeout:g}s"
            )

    def open(self) -> None:
        """Connect, retrying with backoff; raise :class:`BrokerUnavailable` when every attempt failed."""
        self._prepare_tls()
        self._connect_with_retries()
        log.info("connected to %s", self.describe(""))

    def _connect_with_retries(self) -> None:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                self._connect_once()
                return
            except BrokerUnavailable as exc:
                if attempt >= self.retries:
                    raise BrokerUnavailable(
                        f"{exc} (gave up after {attempt + 1} attempt(s))"
                    ) from None
                log.warning("%s; retrying in %.1fs", exc, delay)
                self.sleep(delay)
                delay *= 2

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if conn.is_connected():
                    conn.disconnect()
            except (StompException, OSError):
                pass
            try:
                conn.transport.stop()
            except Exception as exc:  # noqa: BLE001 - best effort teardown of a dead connection
                log.debug("stopping the STOMP transport: %s", exc)

    def close(self) -> None:
        self._drop()
        self._pending.clear()
        self._settled.clear()
        if self._bundle:
            try:
                os.unlink(self._bundle)
            except OSError:
                pass
            self._bundle = None

    # ------------------------------------------------------------------ sending

    def send(self, queue: str, msgid: str, text: str) -> None:
        """SEND ``text`` and return once the broker's receipt for ``msgid`` arrived.

        A lost connection is re-opened (bounded, with backoff) and the message re-sent
        (at-least-once). Raises :class:`DeliveryError` / :class:`BrokerUnavailable`.
        """
        attempts = 0
        while True:
            if self._conn is None or not self._listener.connected:
                self.reconnects += 1
                self._connect_with_retries()
            listener = self._listener
            assert self._conn is not None
            headers = {"empa-id": msgid, "receipt": msgid}
            if self.persistent:
                headers["persistent"] = "true"
            try:
                self._conn.send(self.destination, text, headers=headers)
            except (StompException, OSError) as exc:
                log.warning("sending %s failed: %s", msgid, exc)
                listener.connected = False
            else:
                outcome = self._wait_receipt(listener, msgid)
                if outcome == "ok":
                    return
                if outcome == "error":
                    err, about = listener.error or "ERROR frame", listener.error_receipt
                    self._drop()  # the broker closes the connection after an ERROR frame
                    if about == msgid or (about is None and not _NOT_ABOUT_THE_MESSAGE.search(err)):
                        raise MessageRefused(f"broker refused message {msgid}: {err}")
                    raise BrokerRefused(f"broker refused message {msgid}: {err}")
                if outcome == "timeout":
                    self._drop()
                    raise DeliveryError(f"no receipt for message {msgid} within {self.timeout:g}s")
            attempts += 1
            if attempts > self.retries:
                raise DeliveryError(
                    f"lost the broker while sending {msgid} (gave up after {attempts} attempt(s))"
                )
            log.warning(
                "connection lost while sending %s; reconnecting (attempt %d/%d)",
                msgid,
                attempts,
                self.retries,
            )
            self.sleep(self.backoff * 2 ** (attempts - 1))

    def _wait_receipt(self, listener: _Listener, msgid: str) -> str:
        deadline = time.monotonic() + self.timeout
        with listener.cond:
            while True:
                if msgid in listener.receipts:
                    listener.receipts.discard(msgid)
                    return "ok"
                if listener.error is not None:
                    return "error"
                if not listener.connected:
                    return "lost"
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                listener.cond.wait(min(left, 0.5))

    # ------------------------------------------------------------------ pipelined sending

    def submit(self, queue: str, msgid: str, text: str) -> None:
        """SEND ``text`` asking for a receipt and return without waiting for it.

        :meth:`receipts` reports it once acknowledged. A lost connection is re-opened
        (bounded, with backoff) and every message still without a receipt re-sent.
        """
        if self._conn is None or not self._listener.connected or self._listener.error:
            self._reconnect()
        self._pending[msgid] = (queue, text, time.monotonic())
        if not self._transmit(msgid, text):
            self._reconnect()  # sends it again with the others

    def in_flight(self) -> int:
        return len(self._pending)

    def receipts(self, *, wait: bool = True) -> list[tuple[str, SsmError | None]]:
        """Messages settled since the last call: ``(msgid, None)`` once its receipt arrived,
        ``(msgid, MessageRefused)`` when the broker refused it.

        With ``wait``, block until at least one is settled (while any is in flight).
        Raises :class:`DeliveryError` when the oldest message had no receipt within
        ``timeout``, :class:`BrokerRefused` for an ERROR frame not about a message, and
        :class:`BrokerUnavailable` / :class:`DeliveryError` when the broker stays away.
        """
        while True:
            listener = self._listener
            with listener.cond:
                self._harvest(listener)
                broken = listener.error is not None or not listener.connected
                if not broken and not self._settled and self._pending and wait:
                    oldest = min(sent for _, _, sent in self._pending.values())
                    left = oldest + self.timeout - time.monotonic()
                    if left > 0:
                        listener.cond.wait(min(left, 0.5))
                        continue
            if not broken and not self._settled and self._pending and wait:
                first = next(iter(self._pending))
                n = len(self._pending)
                self._drop()
                raise DeliveryError(
                    f"no receipt for message {first} within {self.timeout:g}s "
                    f"({n} message(s) in flight)"
                )
            # what arrived before the connection broke is reported first: those messages are
            # removed from their queue even if the next call ends the run
            if broken and not self._settled and (self._pending or listener.error is not None):
                self._reconnect()
                if wait and not self._settled and self._pending:
                    continue
            out, self._settled = self._settled, []
            return out

    def _harvest(self, listener: _Listener) -> None:
        """Move the receipts of messages in flight from ``listener`` to the settled list (lock held)."""
        got = [m for m in self._pending if m in listener.receipts]
        for m in got:
            listener.receipts.discard(m)
            del self._pending[m]
            self._settled.append((m, None))
        if got:
            self._recoveries = 0

    def _transmit(self, msgid: str, text: str) -> bool:
        """One SEND frame; False when the connection is gone."""
        if self._conn is None:
            return False
        headers = {"empa-id": msgid, "receipt": msgid}
        if self.persistent:
            headers["persistent"] = "true"
        try:
            self._conn.send(self.destination, text, headers=headers)
        except (StompException, OSError) as exc:
            log.warning("sending %s failed: %s", msgid, exc)
            self._listener.connected = False
            return False
        return True

    def _reconnect(self) -> None:
        """The connection is gone or ended with an ERROR frame: settle what the old one said
        (receipts, the refused message), then connect again and re-send what is in flight.

        A lost connection counts against ``retries`` (reset by the next receipt) and waits
        ``backoff`` (doubling); a connection closed after a refusal reconnects at once.
        """
        while True:
            listener = self._listener
            with listener.cond:
                self._harvest(listener)
                err, about = listener.error, listener.error_receipt
                listener.error = None
            lost = err is None and self._conn is not None
            self._drop()
            if err is not None and self._on_error(err, about):
                return  # the messages in flight were sent one at a time and settled
            if lost:
                self._recoveries += 1
                if self._recoveries > self.retries:
                    raise DeliveryError(
                        f"lost the broker while {len(self._pending)} message(s) awaited their "
                        f"receipts (gave up after {self._recoveries} attempt(s)); they stay queued"
                    )
                log.warning(
                    "connection lost with %d message(s) awaiting their receipts; reconnecting "
                    "(attempt %d/%d)",
                    len(self._pending),
                    self._recoveries,
                    self.retries,
                )
                self.sleep(self.backoff * 2 ** (self._recoveries - 1))
            self.reconnects += 1
            self._connect_with_retries()
            now = time.monotonic()
            for msgid, (queue, text, _) in list(self._pending.items()):
                if not self._transmit(msgid, text):
                    break
                self._pending[msgid] = (queue, text, now)
            else:
                return

    def _on_error(self, err: str, about: str | None) -> bool:
        """An ERROR frame (the broker closes the connection after it). Settles the message it
        is about as refused; raises :class:`BrokerRefused` when it is not about a message.
        True when every message in flight was settled here."""
        if about is None and len(self._pending) == 1 and not _NOT_ABOUT_THE_MESSAGE.search(err):
            about = next(iter(self._pending))
        if about is not None and about in self._pending:
            del self._pending[about]
            self._settled.append((about, MessageRefused(f"broker refused message {about}: {err}")))
            return False
        if about is not None or _NOT_ABOUT_THE_MESSAGE.search(err) or not self._pending:
            first = about or next(iter(self._pending), "?")
            raise BrokerRefused(f"broker refused message {first}: {err}")
        # about one of several messages in flight, which one the frame does not say: send them
        # again one at a time, each waiting for its receipt, so that a refusal names one
        log.warning(
            "broker error about one of %d messages in flight (%s); sending them one at a time",
            len(self._pending),
            err,
        )
        pending = list(self._pending.items())
        self._pending.clear()
        for msgid, (queue, text, _) in pending:
            try:
                self.send(queue, msgid, text)
            except MessageRefused as exc:
                self._settled.append((msgid, exc))
                self._listener.error = None  # settled here; the next SEND reconnects
            else:
                self._settled.append((msgid, None))
        return True
