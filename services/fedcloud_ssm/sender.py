"""The send loop: for each queued message lock -> read -> sign -> send -> receipt -> remove.

With a transport that pipelines (STOMP, ``ssm.window`` > 1) up to ``window`` messages are
sent before their receipts arrive, each with its own receipt; a message is removed from
its queue only once its receipt arrived, and when the run stops (broker lost, no receipt
in time) every message still without a receipt is unlocked and stays queued.

A message that cannot be read or encoded, or that the broker / AMS refuses for what it
is (:class:`MessageRefused`: a STOMP ERROR frame about it, an AMS 4xx other than
401/403/404/413), is set aside (``<queue>.rejected/``) with the reason and the run goes on.
:data:`MAX_REFUSED_IN_A_ROW` refusals in a row stop the run instead (with that message
still queued): the broker is refusing everything, not one message. A transport failure stops the run with the current message unlocked and
still queued (at-least-once: the next run resends it). Stale locks and temporary files
are purged at the start and at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, TypeGuard

from fedcloud_core.history import records_by_vo
from fedcloud_core.report import RunReport

from .encoding import Encoder
from .errors import (
    BadMessage,
    BrokerRefused,
    DeliveryError,
    MessageRefused,
    MessageTooLarge,
    SsmError,
)
from .halving import split_in_two
from .outbox import Outbox

log = logging.getLogger(__name__)

MAX_SPLIT_DEPTH = 6  # 64 parts at most
MAX_REFUSED_IN_A_ROW = 3  # this many refused messages in a row: the broker refuses everything


class Transport(Protocol):
    kind: str

    def describe(self, queue: str) -> str: ...
    def open(self) -> None: ...
    def send(self, queue: str, msgid: str, text: str) -> None: ...
    def close(self) -> None: ...


class PipelinedTransport(Transport, Protocol):
    """A transport that keeps ``window`` messages in flight (see StompTransport.submit)."""

    window: int

    def submit(self, queue: str, msgid: str, text: str) -> None: ...
    def receipts(self, *, wait: bool = True) -> list[tuple[str, SsmError | None]]: ...


def pipelines(transport: Transport | None) -> TypeGuard[PipelinedTransport]:
    return (
        transport is not None
        and getattr(transport, "window", 1) > 1
        and callable(getattr(transport, "submit", None))
        and callable(getattr(transport, "receipts", None))
    )


class Sender:
    """Sends every message of the outboxes through one transport."""

    def __init__(
        self,
        outboxes: Sequence[Outbox],
        encoder: Encoder,
        transport: Transport | None,
        *,
        dry_run: bool = False,
    ):
        self.outboxes = list(outboxes)
        self.encoder = encoder
        self.transport = transport
        self.dry_run = dry_run
        self._refused_in_a_row = 0

    def run(self, report: RunReport) -> RunReport:
        """Send (or with ``dry_run`` only list) every queued message; fills ``report``."""
        dry_run = self.dry_run
        for ob in self.outboxes:
            ob.open()
            stale = ob.purge()
            if stale:
                report.warn(f"queue {ob.name}: released {stale} stale lock/temporary file(s)")
        pending = {ob.name: ob.count() for ob in self.outboxes}
        report.details["pending"] = pending
        if not any(pending.values()):
            log.info("nothing to send (queues: %s)", ", ".join(pending) or "none")
            report.count("sent", 0)
            return report
        if dry_run or self.transport is None:
            for ob in self.outboxes:
                self._queue(ob, report, dry_run=True)
            return report
        self.transport.open()
        try:
            for ob in self.outboxes:
                self._queue(ob, report, dry_run=False)
        finally:
            self.transport.close()
            for ob in self.outboxes:
                try:
                    ob.purge()
                except OSError as exc:
                    report.warn(f"queue {ob.name}: purge failed: {exc}")
        return report

    def _queue(self, ob: Outbox, report: RunReport, *, dry_run: bool) -> None:
        names = ob.names()
        if not names:
            return
        dest = self.transport.describe(ob.name) if self.transport else "(no transport)"
        log.info(
            "queue %s: %d message(s) for %s%s",
            ob.name,
            len(names),
            dest,
            " (dry run)" if dry_run else "",
        )
        tally = {"sent": 0, "aside": 0, "locked": 0, "bytes": 0}
        try:
            if not dry_run and pipelines(self.transport):
                self._pipeline(self.transport, ob, names, report, tally)
            else:
                for name in names:
                    outcome, size = self._one(ob, name, report, dry_run=dry_run)
                    tally[outcome] += 1
                    tally["bytes"] += size
        finally:
            sent, aside, locked, nbytes = (tally[k] for k in ("sent", "aside", "locked", "bytes"))
            key = "would_send" if dry_run else "sent"
            report.count(key, sent)
            report.count(f"{key}_bytes", nbytes)
            report.count("set_aside", aside)
            if locked:
                report.count("locked_by_other", locked)
            report.details.setdefault("queues", {})[ob.name] = {
                "destination": dest,
                key: sent,
                "set_aside": aside,
                "locked_by_other": locked,
            }
            log.info(
                "queue %s: %s %d message(s) (%d bytes) to %s; %d set aside; %d locked elsewhere",
                ob.name,
                "would send" if dry_run else "sent",
                sent,
                nbytes,
                dest,
                aside,
                locked,
            )

    def _one(self, ob: Outbox, name: str, report: RunReport, *, dry_run: bool) -> tuple[str, int]:
        if not ob.lock(name):
            log.info("queue %s: %s is locked by another process or gone; skipped", ob.name, name)
            return "locked", 0
        done = False
        try:
            try:
                body = ob.read(name)
            except OSError as exc:
                reason = f"cannot read the message: {exc}"
                ob.set_aside(name, reason)
                report.error(f"queue {ob.name}: message {name} set aside: {reason}")
                done = True
                return "aside", 0
            try:
                parts = self._deliver(ob.name, name, body, dry_run=dry_run)
            except BadMessage as exc:
                ob.set_aside(name, str(exc))
                report.error(f"queue {ob.name}: message {name} set aside: {exc}")
                done = True
                return "aside", 0
            except MessageRefused as exc:
                self._refused(ob, name, exc, report)
                done = True
                return "aside", 0
            self._refused_in_a_row = 0
            if parts > 1:
                report.count("split_parts", parts)
            if not dry_run:
                self._sent(ob, name, body, report)
                done = True
            return "sent", len(body)
        finally:
            if not done:
                ob.unlock(name)

    def _refused(self, ob: Outbox, name: str, exc: MessageRefused, report: RunReport) -> None:
        """Set the locked message aside, or stop the run (message unlocked by the caller)."""
        self._refused_in_a_row += 1
        if self._refused_in_a_row >= MAX_REFUSED_IN_A_ROW:
            raise BrokerRefused(
                f"{self._refused_in_a_row} messages in a row refused (last: {exc}): "
                "stopping, the broker refuses more than single messages; "
                f"message {name} stays queued"
            ) from None
        reason = f"refused by {self.transport.kind if self.transport else '?'}: {exc}"
        ob.set_aside(name, reason)
        report.count("refused")
        report.error(f"queue {ob.name}: message {name} set aside: {reason}")

    def _sent(self, ob: Outbox, name: str, body: bytes, report: RunReport) -> None:
        """The broker acknowledged the message: remove it from the queue."""
        ob.remove(name)
        by_vo = report.details.setdefault("records_by_vo", {})  # run history, plots
        for vo, n in records_by_vo(body).items():
            by_vo[vo] = by_vo.get(vo, 0) + n

    def _pipeline(
        self,
        transport: PipelinedTransport,
        ob: Outbox,
        names: list[str],
        report: RunReport,
        tally: dict[str, int],
    ) -> None:
        """Send with up to ``transport.window`` messages awaiting their receipts.

        Each message is locked, read and signed, then submitted; it is removed when its
        receipt arrives. Whatever stops the run leaves the messages in flight unlocked.
        """
        inflight: dict[str, bytes] = {}  # element name (= msgid) -> body

        def settle(results: list[tuple[str, SsmError | None]]) -> None:
            for msgid, err in results:
                body = inflight[msgid]
                if err is None:
                    self._refused_in_a_row = 0
                    self._sent(ob, msgid, body, report)
                    del inflight[msgid]
                    tally["sent"] += 1
                    tally["bytes"] += len(body)
                elif isinstance(err, MessageRefused):
                    self._refused(ob, msgid, err, report)  # raises: stays in flight, unlocked
                    del inflight[msgid]
                    tally["aside"] += 1
                else:  # e.g. too large: STOMP has no such answer; set aside, named
                    ob.set_aside(msgid, str(err))
                    del inflight[msgid]
                    report.error(f"queue {ob.name}: message {msgid} set aside: {err}")
                    tally["aside"] += 1

        def wait_some() -> None:
            got = transport.receipts(wait=True)
            if not got:  # the transport lost track of them: never wait forever
                raise DeliveryError(
                    f"{len(inflight)} message(s) sent to {transport.describe(ob.name)} are "
                    "without a receipt and the transport expects none; they stay queued"
                )
            settle(got)

        try:
            for name in names:
                while len(inflight) >= transport.window:
                    wait_some()
                if not ob.lock(name):
                    log.info(
                        "queue %s: %s is locked by another process or gone; skipped", ob.name, name
                    )
                    tally["locked"] += 1
                    continue
                try:
                    body = ob.read(name)
                    text = self.encoder.encode(body)
                except (OSError, BadMessage) as exc:
                    reason = (
                        f"cannot read the message: {exc}" if isinstance(exc, OSError) else str(exc)
                    )
                    ob.set_aside(name, reason)
                    report.error(f"queue {ob.name}: message {name} set aside: {reason}")
                    tally["aside"] += 1
                    continue
                except BaseException:
                    ob.unlock(name)
                    raise
                inflight[name] = body
                transport.submit(ob.name, name, text)
                settle(transport.receipts(wait=False))
            while inflight:
                wait_some()
        finally:
            for name in inflight:
                ob.unlock(name)

    def _deliver(
        self, queue: str, msgid: str, body: bytes, *, dry_run: bool, depth: int = 0
    ) -> int:
        """Sign and send ``body``; on 'too large' split it and send the halves. Returns the part count."""
        text = self.encoder.encode(body)
        if dry_run or self.transport is None:
            return 1
        try:
            self.transport.send(queue, msgid, text)
            return 1
        except MessageTooLarge as exc:
            if depth >= MAX_SPLIT_DEPTH:
                raise BadMessage(f"{exc}; still too large after splitting {depth} times") from None
            log.warning("%s; splitting it in two", exc)
            first, second = split_in_two(body)
            n = self._deliver(queue, f"{msgid}.1", first, dry_run=False, depth=depth + 1)
            return n + self._deliver(queue, f"{msgid}.2", second, dry_run=False, depth=depth + 1)
