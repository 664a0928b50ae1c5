"""Pipelined sending: up to ``window`` messages in flight, each removed only after its own receipt.

The send loop against a fake pipelining transport, and StompTransport's submit/receipts
against a scripted stand-in for stomp.py's connection (receipts, ERROR frames with and
without ``receipt-id``, a dropped connection).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_core.report import RunReport
from fedcloud_ssm.encoding import Encoder, check_body
from fedcloud_ssm.errors import BrokerRefused, DeliveryError, MessageRefused
from fedcloud_ssm.outbox import Outbox
from fedcloud_ssm.sender import Sender, pipelines
from fedcloud_ssm.stomp_transport import StompTransport, _Listener
from support.apel_queue import cloud_message, fill_queue

pytestmark = pytest.mark.unit


class PlainEncoder(Encoder):
    def __init__(self):
        super().__init__(Path("c"), Path("k"))

    def encode(self, body):
        return check_body(body)


class FakePipeline:
    """Acknowledges the oldest message in flight on each waiting call; checks the window."""

    kind = "FAKE"

    def __init__(self, queue_dir: Path, window: int, *, refuse=(), fail_after: int | None = None):
        self.window = window
        self.queue_dir = queue_dir
        self.inflight: list[str] = []
        self.sent: list[str] = []
        self.acked: list[str] = []
        self.max_inflight = 0
        self.refuse = set(refuse)
        self.fail_after = fail_after
        self.closed = False

    def describe(self, queue):
        return f"fake://{queue}"

    def open(self):
        pass

    def close(self):
        self.closed = True

    def send(self, queue, msgid, text):  # pragma: no cover - the pipelined path must not use it
        raise AssertionError("send() called on a pipelining transport")

    def submit(self, queue, msgid, text):
        self.inflight.append(msgid)
        self.sent.append(msgid)
        self.max_inflight = max(self.max_inflight, len(self.inflight))

    def receipts(self, *, wait=True):
        if not wait or not self.inflight:
            return []
        if self.fail_after is not None and len(self.acked) >= self.fail_after:
            raise DeliveryError("no receipt")
        msgid = self.inflight.pop(0)
        # the message is still in its queue (and locked) when its receipt arrives
        assert (self.queue_dir / msgid).exists()
        assert (self.queue_dir / f"{msgid}.lck").exists()
        if msgid in self.refuse:
            return [(msgid, MessageRefused(f"broker refused message {msgid}: too large"))]
        self.acked.append(msgid)
        return [(msgid, None)]


def _outbox(tmp_path, bodies):
    fill_queue(tmp_path / "cloud", bodies)
    return Outbox(tmp_path / "cloud", "cloud")


def test_window_bounds_the_messages_in_flight_and_each_is_removed_after_its_receipt(tmp_path):
    bodies = [cloud_message(i, 2) for i in range(23)]
    ob = _outbox(tmp_path, bodies)
    names = ob.open().names()
    t = FakePipeline(tmp_path / "cloud", window=5)
    assert pipelines(t)
    report = RunReport(job="t")
    Sender([ob], PlainEncoder(), t).run(report)
    assert t.sent == names  # oldest first, each once
    assert t.acked == names
    assert t.max_inflight == 5
    assert report.counts["sent"] == 23
    assert report.counts["sent_bytes"] == sum(len(b) for b in bodies)
    assert QueueSimple(str(tmp_path / "cloud")).count() == 0
    assert t.closed


def test_window_of_one_or_a_transport_without_submit_sends_one_at_a_time():
    t = StompTransport("127.0.0.1", 1, "/queue/x", use_ssl=False, window=1)
    assert not pipelines(t)
    assert pipelines(StompTransport("127.0.0.1", 1, "/queue/x", use_ssl=False, window=16))


def test_refused_message_in_flight_is_set_aside_and_the_rest_sent(tmp_path):
    bodies = [cloud_message(i, 2) for i in range(8)]
    ob = _outbox(tmp_path, bodies)
    names = ob.open().names()
    t = FakePipeline(tmp_path / "cloud", window=4, refuse={names[2]})
    report = RunReport(job="t")
    Sender([ob], PlainEncoder(), t).run(report)
    assert report.counts["sent"] == 7
    assert report.counts["set_aside"] == 1
    assert report.counts["refused"] == 1
    assert report.status == "partial"
    rejected = tmp_path / "cloud.rejected"
    assert (rejected / names[2].replace("/", "-")).read_bytes() == bodies[2]
    assert QueueSimple(str(tmp_path / "cloud")).count() == 0


def test_run_stopped_with_messages_in_flight_leaves_them_queued_and_unlocked(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(i, 2) for i in range(12)])
    names = ob.open().names()
    t = FakePipeline(tmp_path / "cloud", window=4, fail_after=3)
    report = RunReport(job="t")
    with pytest.raises(DeliveryError):
        Sender([ob], PlainEncoder(), t).run(report)
    assert t.acked == names[:3]
    assert report.counts["sent"] == 3
    assert ob.names() == names[3:]  # the ones in flight and the rest: still queued
    assert not list((tmp_path / "cloud").rglob("*.lck"))


def test_bad_message_is_set_aside_without_entering_the_pipeline(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(1, 1), b"caf\xc3\xa9", cloud_message(2, 1), b""])
    t = FakePipeline(tmp_path / "cloud", window=3)
    report = RunReport(job="t")
    Sender([ob], PlainEncoder(), t).run(report)
    assert len(t.sent) == 2
    assert report.counts["sent"] == 2
    assert report.counts["set_aside"] == 2
    assert not list((tmp_path / "cloud").rglob("*.lck"))


# ----------------------------------------------------------------------------- StompTransport


class _Frame:
    def __init__(self, headers, body=""):
        self.headers, self.body = headers, body


class ScriptedBroker:
    """Stands in for the broker behind stomp.py: one connection per connect, scripted answers.

    ``refuse``: msgids answered with an ERROR frame (with ``receipt-id`` when ``name_it``),
    after which the connection closes; ``drop_at``: the n-th SEND (1-based, counted over
    all connections) is lost with the connection; ``hold``: receipts wait for :meth:`flush`.
    """

    def __init__(self, t: StompTransport, *, refuse=(), name_it=True, drop_at=(), hold=False):
        self.t = t
        self.refuse, self.name_it = set(refuse), name_it
        self.drop_at, self.hold = set(drop_at), hold
        self.frames: list[str] = []
        self.stored: list[str] = []  # what the broker accepted, in order
        self.held: list[tuple[_Listener, str]] = []
        self.connections = 0
        t._connect_once = self.connect  # type: ignore[method-assign]

    def connect(self):
        self.connections += 1
        listener = _Listener()
        listener.connected = True
        self.t._listener = listener
        self.t._conn = _Conn(self, listener)  # type: ignore[assignment]

    def flush(self):
        held, self.held = self.held, []
        for listener, msgid in held:
            if listener.connected:
                listener.on_receipt(_Frame({"receipt-id": msgid}))


class _Conn:
    def __init__(self, broker: ScriptedBroker, listener: _Listener):
        self.broker, self.listener = broker, listener
        self.transport = self

    def send(self, destination, body, headers):
        b = self.broker
        if not self.listener.connected:
            raise OSError("connection closed")
        msgid = headers["receipt"]
        b.frames.append(msgid)
        if len(b.frames) in b.drop_at:
            self.listener.on_disconnected()
            return
        if msgid in b.refuse:
            h = {"message": "precondition_failed"}
            if b.name_it:
                h["receipt-id"] = msgid
            self.listener.on_error(_Frame(h, "message size 900000 is larger than max size"))
            self.listener.on_disconnected()
            return
        b.stored.append(msgid)
        if b.hold:
            b.held.append((self.listener, msgid))
        else:
            self.listener.on_receipt(_Frame({"receipt-id": msgid}))

    def is_connected(self):
        return self.listener.connected

    def disconnect(self):
        self.listener.connected = False

    def stop(self):
        pass


def _transport(**kw) -> StompTransport:
    kw = {"timeout": 2, "retries": 2, "backoff": 0.0, "window": 8, "sleep": lambda s: None} | kw
    return StompTransport("127.0.0.1", 1, "/queue/x", use_ssl=False, **kw)


def _settle_all(t: StompTransport, n: int) -> dict[str, object]:
    out: dict[str, object] = {}
    while len(out) < n:
        for msgid, err in t.receipts(wait=True):
            assert msgid not in out  # each message settled once
            out[msgid] = err
    return out


def test_each_message_in_flight_gets_its_own_receipt():
    t = _transport()
    b = ScriptedBroker(t, hold=True)
    t.open()
    for i in range(6):
        t.submit("cloud", f"m{i}", "text")
    assert t.in_flight() == 6
    assert t.receipts(wait=False) == []
    b.flush()
    assert _settle_all(t, 6) == {f"m{i}": None for i in range(6)}
    assert t.in_flight() == 0
    assert b.connections == 1


@pytest.mark.parametrize("name_it", [True, False], ids=["receipt-id", "no-receipt-id"])
def test_error_frame_refuses_one_message_the_others_are_sent_again_and_receipted(name_it):
    t = _transport()
    b = ScriptedBroker(t, refuse={"m2"}, name_it=name_it, hold=True)
    t.open()
    for i in range(4):
        t.submit("cloud", f"m{i}", "text")
        b.flush()
    got = _settle_all(t, 4)
    assert isinstance(got.pop("m2"), MessageRefused)
    assert got == {"m0": None, "m1": None, "m3": None}
    assert b.stored.count("m0") == 1  # receipted before the ERROR: never sent twice
    assert b.stored.count("m1") == 1


def test_error_frame_without_receipt_id_about_several_in_flight_resends_one_at_a_time():
    t = _transport()
    b = ScriptedBroker(t, refuse={"m2"}, name_it=False, hold=True)
    t.open()
    for i in range(3):
        t.submit("cloud", f"m{i}", "text")  # receipts held: m0, m1 are in flight when m2 fails
    b.hold = False
    t.submit("cloud", "m3", "text")
    got = _settle_all(t, 4)
    assert isinstance(got["m2"], MessageRefused)
    assert [m for m, e in got.items() if e is None] == ["m0", "m1", "m3"]
    assert sorted(b.stored) == ["m0", "m0", "m1", "m1", "m3"]  # not receipted, so sent again


def test_error_frame_about_access_stops_the_run():
    t = _transport()
    ScriptedBroker(t)
    t.open()
    t._listener.on_error(_Frame({"message": "access_refused"}, "ACCESS_REFUSED - no access"))
    t._listener.on_disconnected()
    with pytest.raises(BrokerRefused, match="ACCESS_REFUSED"):
        t.submit("cloud", "m0", "text")


def test_lost_connection_resends_only_the_messages_without_receipt():
    t = _transport()
    b = ScriptedBroker(t, drop_at={4})  # the 4th SEND dies with the connection
    t.open()
    for i in range(6):
        t.submit("cloud", f"m{i}", "text")
    got = _settle_all(t, 6)
    assert got == {f"m{i}": None for i in range(6)}
    assert b.connections == 2
    assert b.stored == ["m0", "m1", "m2", "m3", "m4", "m5"]  # m3 again after the reconnect
    assert t.reconnects == 1


def test_broker_lost_for_good_is_a_delivery_error_with_the_messages_in_flight():
    t = _transport(retries=1)
    ScriptedBroker(t, drop_at={3, 4, 5, 6}, hold=True)
    t.open()

    def send_all() -> None:
        for i in range(5):
            t.submit("cloud", f"m{i}", "text")
        _settle_all(t, 5)

    with pytest.raises(DeliveryError, match=r"awaited their receipts \(gave up after 2"):
        send_all()


def test_no_receipt_in_time_is_a_delivery_error():
    t = _transport(timeout=0.3)
    ScriptedBroker(t, hold=True)
    t.open()
    t.submit("cloud", "m0", "text")
    with pytest.raises(DeliveryError, match=r"no receipt for message m0 within 0.3s"):
        t.receipts(wait=True)


def test_a_transport_that_forgets_its_messages_stops_the_run_instead_of_waiting_forever(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(i, 1) for i in range(3)])
    names = ob.open().names()

    class Forgetful(FakePipeline):
        def receipts(self, *, wait=True):
            return []

    with pytest.raises(DeliveryError, match=r"3 message.*without a receipt"):
        Sender([ob], PlainEncoder(), Forgetful(tmp_path / "cloud", window=8)).run(
            RunReport(job="t")
        )
    assert ob.names() == names
    assert not list((tmp_path / "cloud").rglob("*.lck"))
