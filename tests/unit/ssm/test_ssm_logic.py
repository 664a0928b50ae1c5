"""SSM sender logic with fakes: credentials, message checks, splitting, the send loop, legacy import."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from dirq.QueueSimple import QueueSimple

from fedcloud_appliance.cli import main
from fedcloud_core.config import parse_config
from fedcloud_core.errors import ConfigError
from fedcloud_core.report import RunReport
from fedcloud_dev.apel_receiver import MessageChecker, strip_text_part
from fedcloud_ssm.credentials import check_credentials
from fedcloud_ssm.encoding import Encoder, check_body
from fedcloud_ssm.errors import (
    BadMessage,
    BrokerRefused,
    CredentialError,
    DeliveryError,
    MessageRefused,
    MessageTooLarge,
    SsmError,
)
from fedcloud_ssm.halving import split_in_two
from fedcloud_ssm.outbox import Outbox
from fedcloud_ssm.predecessor_config import convert
from fedcloud_ssm.sender import Sender
from fedcloud_ssm.stomp_transport import StompTransport, ca_bundle_from_dir
from support.apel_queue import cloud_message, fill_queue, write_config

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"


# ----------------------------------------------------------------------------- credentials


def test_credentials_ok(unit_pki):
    c = check_credentials(unit_pki.sender.cert, unit_pki.sender.key)
    assert c.subject_dn == "/C=EU/O=Fedcloud Test/CN=sender.example.org"


def test_key_that_is_not_the_certificates_is_refused(unit_pki):
    with pytest.raises(CredentialError, match="does not match the certificate"):
        check_credentials(unit_pki.sender.cert, unit_pki.rogue.key)


def test_certificate_expiring_within_24h_is_refused(unit_pki):
    with pytest.raises(CredentialError, match=r"expires on .* \(less than 24 h left\)"):
        check_credentials(unit_pki.expiring.cert, unit_pki.expiring.key)
    # with a lower threshold it is fine
    check_credentials(
        unit_pki.expiring.cert, unit_pki.expiring.key, min_validity=timedelta(hours=1)
    )


def test_missing_certificate_is_named(tmp_path, unit_pki):
    with pytest.raises(CredentialError, match=r"host certificate .*nope.pem: cannot read"):
        check_credentials(tmp_path / "nope.pem", unit_pki.sender.key)


def test_cli_refuses_to_start_on_mismatch_before_touching_the_queue(tmp_path, unit_pki, capsys):
    cfg = write_config(
        tmp_path,
        {
            "protocol": "STOMP",
            "host": "127.0.0.1",
            "port": 1,
            "certificate": str(unit_pki.sender.cert),
            "key": str(unit_pki.rogue.key),
        },
    )
    fill_queue(tmp_path / "spool" / "outgoing" / "cloud", [cloud_message(1, 1)])
    assert main(["ssm", "send", "--once", "--config", str(cfg)]) == 1
    assert "does not match the certificate" in capsys.readouterr().out
    assert QueueSimple(str(tmp_path / "spool" / "outgoing" / "cloud")).count() == 1


# ----------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty message"),
        (b"  \n", "empty message"),
        (
            b"APEL-cloud-message: v0.4\nMachineName: caf\xc3\xa9\n",
            "non-ASCII byte 0xc3 at offset 41 (line 2)",
        ),
        (b"APEL\x00", "NUL byte at offset 4"),
    ],
)
def test_bad_bodies_are_named(body, why):
    with pytest.raises(BadMessage, match=why.replace("(", r"\(").replace(")", r"\)")):
        check_body(body)


def test_non_ascii_allowed_when_configured_but_must_be_utf8():
    assert check_body("caf\u00e9".encode(), ascii_only=False) == "caf\u00e9"
    with pytest.raises(BadMessage, match="not UTF-8"):
        check_body(b"caf\xe9", ascii_only=False)


def test_signed_text_round_trips_through_the_checker(unit_pki):
    body = cloud_message(1, 3)
    text = Encoder(unit_pki.sender.cert, unit_pki.sender.key).encode(body)
    assert 'protocol="application/x-pkcs7-signature"' in text
    assert 'micalg="sha-256"' in text
    assert "Content-Type: text/plain" in text  # ssm's -text part header
    v = MessageChecker(unit_pki.capath, [unit_pki.sender.dn]).check(text.encode())
    assert v.accepted
    assert v.body == body


def test_encrypted_message_is_decrypted_by_the_receiver(unit_pki):
    body = cloud_message(2, 2)
    text = Encoder(
        unit_pki.sender.cert, unit_pki.sender.key, server_cert=unit_pki.receiver.cert
    ).encode(body)
    assert "application/x-pkcs7-mime" in text or "application/pkcs7-mime" in text
    assert "VMUUID" not in text
    checker = MessageChecker(
        unit_pki.capath,
        [unit_pki.sender.dn],
        cert=unit_pki.receiver.cert,
        key=unit_pki.receiver.key,
    )
    assert checker.check(text.encode()).body == body


@pytest.mark.parametrize(
    ("content", "body"),
    [
        (b"Content-Type: text/plain\r\n\r\nA: 1\r\n%%\r\nB: 2\r\n", b"A: 1\n%%\nB: 2\n"),
        (
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nQTogMQo=\r\n",
            b"A: 1\n",
        ),
        (
            b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nA=3D1\n",
            b"A=1\n",
        ),
    ],
)
def test_strip_text_part_like_apel_receiver(content, body):
    assert strip_text_part(content) == body


# ----------------------------------------------------------------------------- splitting


def test_split_apel_text_keeps_header_and_every_record_once():
    body = cloud_message(1, 5)
    a, b = split_in_two(body)
    assert a.startswith(b"APEL-cloud-message: v0.4\n")
    assert b.startswith(b"APEL-cloud-message: v0.4\n")
    recs = lambda m: m.split(b"\n", 1)[1].rstrip(b"\n").split(b"\n%%\n")  # noqa: E731
    assert recs(a) + recs(b) == recs(body)
    assert len(recs(a)) == 2


def test_split_star_and_json():
    star = (
        b'<sr:StorageUsageRecords xmlns:sr="x"><sr:StorageUsageRecord>1</sr:StorageUsageRecord>\n'
        b"<sr:StorageUsageRecord>2</sr:StorageUsageRecord></sr:StorageUsageRecords>"
    )
    a, b = split_in_two(star)
    assert (
        a
        == b'<sr:StorageUsageRecords xmlns:sr="x"><sr:StorageUsageRecord>1</sr:StorageUsageRecord></sr:StorageUsageRecords>'
    )
    assert b"<sr:StorageUsageRecord>2</sr:StorageUsageRecord>" in b
    doc = {
        "Type": "APEL Public IP message",
        "Version": "0.2",
        "UsageRecords": [{"a": 1}, {"a": 2}, {"a": 3}],
    }
    x, y = split_in_two(json.dumps(doc).encode())
    assert json.loads(x)["UsageRecords"] == [{"a": 1}]
    assert json.loads(y)["Type"] == "APEL Public IP message"


def test_single_record_cannot_be_split():
    with pytest.raises(BadMessage, match="single record"):
        split_in_two(cloud_message(1, 1))


# ----------------------------------------------------------------------------- the send loop


class FakeTransport:
    kind = "FAKE"

    def __init__(self, fail_on: dict[int, Exception] | None = None, max_len: int | None = None):
        self.sent: list[tuple[str, str, str]] = []
        self.calls = 0
        self.fail_on = fail_on or {}
        self.max_len = max_len
        self.opened = self.closed = False

    def describe(self, queue):
        return f"fake://{queue}"

    def open(self):
        self.opened = True

    def close(self):
        self.closed = True

    def send(self, queue, msgid, text):
        self.calls += 1
        if self.calls in self.fail_on:
            raise self.fail_on[self.calls]
        if self.max_len is not None and len(text) > self.max_len:
            raise MessageTooLarge("too large")
        self.sent.append((queue, msgid, text))


class PlainEncoder(Encoder):
    def __init__(self):
        super().__init__(Path("c"), Path("k"))

    def encode(self, body):
        return check_body(body)


def _outbox(tmp_path, bodies):
    fill_queue(tmp_path / "cloud", bodies)
    return Outbox(tmp_path / "cloud", "cloud")


def test_receipt_failure_stops_the_run_and_keeps_the_message_unlocked(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(i, 1) for i in range(4)])
    t = FakeTransport(fail_on={3: DeliveryError("no receipt")})
    report = RunReport(job="t")
    with pytest.raises(DeliveryError):
        Sender([ob], PlainEncoder(), t).run(report)
    assert len(t.sent) == 2
    assert report.counts["sent"] == 2
    assert QueueSimple(str(tmp_path / "cloud")).count() == 2
    assert not list((tmp_path / "cloud").rglob("*.lck"))
    assert t.closed


def test_bad_message_is_set_aside_and_the_rest_is_sent(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(1, 1), b"caf\xc3\xa9", cloud_message(2, 1)])
    t = FakeTransport()
    report = RunReport(job="t")
    Sender([ob], PlainEncoder(), t).run(report)
    assert [m[2] for m in t.sent] == [cloud_message(1, 1).decode(), cloud_message(2, 1).decode()]
    assert report.counts["set_aside"] == 1
    assert report.status == "partial"
    (reason,) = (tmp_path / "cloud.rejected").glob("*.reason")
    assert "non-ASCII" in reason.read_text()


def test_message_locked_by_another_process_is_skipped(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(1, 1), cloud_message(2, 1)])
    first = ob.open().names()[0]
    assert QueueSimple(str(tmp_path / "cloud")).lock(first)
    t = FakeTransport()
    report = RunReport(job="t")
    Sender([ob], PlainEncoder(), t).run(report)
    assert [m[1] for m in t.sent] != [first]
    assert len(t.sent) == 1
    assert report.counts["locked_by_other"] == 1


def test_dry_run_signs_but_neither_sends_nor_removes(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(1, 1)])
    report = RunReport(job="t", dry_run=True)
    t = FakeTransport()
    Sender([ob], PlainEncoder(), t, dry_run=True).run(report)
    assert report.counts["would_send"] == 1
    assert t.sent == []
    assert not t.opened
    assert QueueSimple(str(tmp_path / "cloud")).count() == 1


def test_too_large_is_split_and_sent_as_parts(tmp_path):
    body = cloud_message(1, 8)
    ob = _outbox(tmp_path, [body])
    t = FakeTransport(max_len=len(body) // 3)
    report = RunReport(job="t")
    Sender([ob], PlainEncoder(), t).run(report)
    assert len(t.sent) == 4
    name = ob.names() or None
    assert name is None  # removed
    assert report.counts["split_parts"] == 4
    assert all(m[1].count(".") == 2 for m in t.sent)  # <element>.1.1, <element>.1.2, ...


def test_refusal_propagates_as_permanent(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(1, 1)])
    t = FakeTransport(fail_on={1: BrokerRefused("401")})
    with pytest.raises(BrokerRefused):
        Sender([ob], PlainEncoder(), t).run(RunReport(job="t"))
    assert QueueSimple(str(tmp_path / "cloud")).count() == 1


def test_message_refused_by_the_broker_is_set_aside_and_the_rest_is_sent(tmp_path):
    bodies = [cloud_message(i, 1) for i in range(4)]
    ob = _outbox(tmp_path, bodies)
    names = ob.open().names()
    why = "broker refused message x: precondition_failed: message size 900000 is too large"
    t = FakeTransport(fail_on={2: MessageRefused(why)})
    report = RunReport(job="t")
    Sender([ob], PlainEncoder(), t).run(report)
    assert [m[1] for m in t.sent] == [names[0], names[2], names[3]]
    assert report.counts["sent"] == 3
    assert report.counts["set_aside"] == 1
    assert report.counts["refused"] == 1
    assert report.status == "partial"
    assert QueueSimple(str(tmp_path / "cloud")).count() == 0
    rejected = tmp_path / "cloud.rejected"
    assert (rejected / names[1].replace("/", "-")).read_bytes() == bodies[1]
    reason = (rejected / f"{names[1].replace('/', '-')}.reason").read_text()
    assert f"reason: refused by FAKE: {why}" in reason
    # the next run does not meet it again
    t2 = FakeTransport()
    Sender([ob], PlainEncoder(), t2).run(RunReport(job="t"))
    assert t2.sent == []


def test_refusals_in_a_row_stop_the_run_instead_of_emptying_the_queue(tmp_path):
    ob = _outbox(tmp_path, [cloud_message(i, 1) for i in range(5)])
    names = ob.open().names()
    refused = {n: MessageRefused("broker refused: something") for n in (1, 2, 3)}
    t = FakeTransport(fail_on=refused)
    report = RunReport(job="t")
    with pytest.raises(BrokerRefused, match="3 messages in a row refused"):
        Sender([ob], PlainEncoder(), t).run(report)
    assert report.counts["set_aside"] == 2
    assert ob.names() == names[2:]  # the third and the rest stay queued, unlocked
    assert not list((tmp_path / "cloud").rglob("*.lck"))


class _Frame:
    def __init__(self, headers, body=""):
        self.headers, self.body = headers, body


class _ErroringConnection:
    """Answers every SEND with one ERROR frame, as a broker does before closing."""

    def __init__(self, listener, headers, body):
        self.listener, self.headers, self.body = listener, headers, body
        self.transport = self

    def send(self, destination, body, headers):
        self.listener.on_error(_Frame(self.headers, self.body))
        self.listener.on_disconnected()

    def is_connected(self):
        return False

    def stop(self):
        pass


@pytest.mark.parametrize(
    ("headers", "body", "refused"),
    [
        (
            {"message": "precondition_failed"},
            "PRECONDITION_FAILED - message size 900000 is larger than configured max size 100000",
            MessageRefused,
        ),
        ({"message": "invalid header", "receipt-id": "m-1"}, "", MessageRefused),
        ({"message": "access_refused", "receipt-id": "m-1"}, "", MessageRefused),
        (
            {"message": "access_refused"},
            "ACCESS_REFUSED - access to exchange denied",
            BrokerRefused,
        ),
        ({"message": "not_found"}, "NOT_FOUND - no queue 'x' in vhost '/'", BrokerRefused),
        ({"message": "Bad CONNECT"}, "Access refused for user 'x'", BrokerRefused),
        ({"message": "something", "receipt-id": "other"}, "", BrokerRefused),
    ],
    ids=["size", "receipt-id", "receipt-id-wins", "access", "no-queue", "login", "other-frame"],
)
def test_stomp_error_frame_about_the_message_or_about_the_broker(headers, body, refused):
    t = StompTransport("127.0.0.1", 1, "/queue/x", use_ssl=False, timeout=5, retries=0)
    t._listener.connected = True
    t._conn = _ErroringConnection(t._listener, headers, body)
    with pytest.raises(SsmError) as err:
        t.send("cloud", "m-1", "text")
    assert type(err.value) is refused
    assert str(err.value).startswith("broker refused message m-1: ")
    assert t._conn is None  # dropped: the next send reconnects


def test_empty_ca_directory_is_a_clear_error(tmp_path):
    with pytest.raises(BrokerRefused, match="holds no CA certificate"):
        ca_bundle_from_dir(tmp_path)


# ----------------------------------------------------------------------------- config and legacy


def test_ams_queue_without_topic_is_a_config_error():
    text = "site: {name: X}\nssm: {protocol: AMS, queues: [cloud, ip]}\n"
    with pytest.raises(ConfigError, match="no topic in 'ams_topics' for queue\\(s\\) ip"):
        parse_config(text, environ={})


@pytest.mark.parametrize(
    ("accounting", "ssm", "queues"),
    [
        ("{}", "{}", ["cloud", "storage"]),
        ("{storage_records: false}", "{}", ["cloud"]),
        ("{ip_records: true}", "{protocol: STOMP}", ["cloud", "storage", "ip"]),
        ("{queues: {storage: star}}", "{protocol: STOMP}", ["cloud", "star"]),
        ("{}", "{protocol: STOMP, queues: [cloud, storage, extra]}", ["cloud", "storage", "extra"]),
    ],
)
def test_ssm_queues_default_to_the_extracted_record_types(accounting, ssm, queues):
    cfg = parse_config(f"site: {{name: X}}\naccounting: {accounting}\nssm: {ssm}\n", environ={})
    assert cfg.ssm.queues == queues
    assert cfg.ssm.send_queues == queues


def test_derived_queue_without_an_ams_topic_names_the_key():
    text = "site: {name: X}\naccounting: {accelerator_records: true}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="a.yaml", environ={})
    assert str(err.value) == (
        "a.yaml: ssm.ams_topics: protocol AMS: no topic in 'ams_topics' for queue(s) accelerator "
        "(ssm.queues defaults to the queues of the record types the accounting job extracts): add "
        "the topic, or set accounting.accelerator_records to false"
    )


def test_config_check_refuses_an_extracted_type_whose_queue_nobody_sends(tmp_path, capsys):
    path = tmp_path / "appliance.yaml"
    path.write_text("site: {name: X}\nssm:\n  protocol: STOMP\n  queues: [cloud]\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: ssm.queues: the accounting job extracts storage records into queue " in err
    assert "'storage', which ssm.queues (cloud) does not send" in err
    assert "accounting.storage_records to false" in err
    # no mismatch when the ssm job (or the accounting job) does not run here
    for off in ("ssm", "accounting"):
        path.write_text(
            f"site: {{name: X}}\nsite_bdii: {{public_hostname: bdii.example.org}}\n"
            f"scheduler: {{{off}: 0}}\nssm: {{protocol: STOMP, queues: [cloud]}}\n"
        )
        assert main(["config", "check", "--config", str(path)]) == 0
    path.write_text(
        "site: {name: X}\nsite_bdii: {public_hostname: bdii.example.org}\n"
        "accounting: {storage_records: false}\nssm: {protocol: STOMP, queues: [cloud]}\n"
    )
    assert main(["config", "check", "--config", str(path)]) == 0


def test_import_stomp_sender_cfg():
    frag = convert(FIXTURES / "sender.cfg")
    assert frag["ssm"] == {
        "protocol": "STOMP",
        "host": "broker.accounting.example.net",
        "port": 6162,
        "use_ssl": True,
        "certificate": "/etc/grid-security/site-hostcert.pem",
        "key": "/etc/grid-security/site-hostkey.pem",
        "capath": "/etc/grid-security/certificates",
        "server_cert": "/etc/grid-security/apel-server.pem",
        "destination": "/queue/global.accounting.cloud.APEL",
        "queues": ["cloud"],
    }
    assert frag["paths"] == {"spool_dir": "/var/spool/apel"}


def test_import_ams_sender_cfg_leaves_the_token_out(tmp_path, capsys):
    out = tmp_path / "imported.yaml"
    assert main(["config", "import-legacy", str(FIXTURES / "ams-sender.cfg"), "-o", str(out)]) == 0
    text = out.read_text()
    assert "do-not-copy-me" not in text
    data = yaml.safe_load(text)
    assert data["ssm"]["protocol"] == "AMS"
    assert data["ssm"]["ams_topics"] == {"cloud": "eu-egi-cloud-accounting"}
    with pytest.raises(ConfigError, match="no topic in 'ams_topics' for queue\\(s\\) storage"):
        # storage records are extracted by default and this sender.cfg had no topic for them
        parse_config(yaml.safe_dump({"site": {"name": "X"}, **dict(data.items())}), environ={})
    data["accounting"] = {"storage_records": False}
    cfg = parse_config(yaml.safe_dump({"site": {"name": "X"}, **dict(data.items())}), environ={})
    assert cfg.ssm.host == "msg-devel.example.net"
    assert cfg.paths.spool_dir == Path("/var/spool/apel")


def test_import_rejects_a_file_that_is_not_sender_cfg(tmp_path):
    p = tmp_path / "sender.cfg"
    p.write_text("[something]\na = b\n")
    with pytest.raises(ConfigError, match=r"not an ssmsend sender\.cfg"):
        convert(p)
