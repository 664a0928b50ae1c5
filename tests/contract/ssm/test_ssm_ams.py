"""AMS mode against a local HTTPS server implementing the AMS calls of the spec (127.0.0.1, test CA)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_appliance.cli import main
from fedcloud_dev.apel_receiver import MessageChecker
from support.ams import TOKEN, AmsDouble, AmsState
from support.apel_queue import cloud_message, fill_queue, write_config
from support.pki import Pki, make_pki

pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ams-pki"))


@pytest.fixture(scope="module")
def ams(pki: Pki) -> Iterator[tuple[AmsState, int]]:
    double = AmsDouble(pki).start()
    yield double.state, double.port
    double.stop()


@pytest.fixture
def fresh(ams: tuple[AmsState, int]) -> tuple[AmsState, int]:
    state, port = ams
    state.reset()
    return state, port


def ams_config(tmp: Path, pki: Pki, port: int, **extra: Any) -> Path:
    ssm = {
        "protocol": "AMS",
        "host": "127.0.0.1",
        "port": port,
        "ams_auth_port": port,
        "certificate": str(pki.sender.cert),
        "key": str(pki.sender.key),
        "capath": str(pki.capath),
        "timeout": 10,
        "connect_timeout": 5,
        "retries": 2,
        "backoff": 0.05,
        **extra,
    }
    return write_config(tmp, ssm, queues=("cloud", "storage"))


STAR = (
    b'<sr:StorageUsageRecords xmlns:sr="http://eu-emi.eu/namespaces/2011/02/storagerecord">'
    + b"".join(
        b'<sr:StorageUsageRecord><sr:RecordIdentity sr:recordId="r%d"/></sr:StorageUsageRecord>' % i
        for i in range(4)
    )
    + b"</sr:StorageUsageRecords>\n"
)


def test_publishes_each_queue_to_its_topic_with_empaid(tmp_path, pki, fresh, capsys, caplog):
    state, port = fresh
    out = tmp_path / "spool" / "outgoing"
    cloud = fill_queue(out / "cloud", [cloud_message(i, 5) for i in range(3)])
    storage = fill_queue(out / "storage", [STAR])
    rc = main(["ssm", "send", "--once", "--config", str(ams_config(tmp_path, pki, port)), "-v"])
    text = capsys.readouterr()
    assert rc == 0, text
    assert state.peer_dns[-1] == "sender.example.org"  # token exchange used the host certificate
    got = {(p["topic"], p["empaid"]): p["data"] for p in state.published}
    assert set(got) == {("eu-egi-cloud-accounting", n) for n in cloud} | {
        ("eu-egi-storage-accounting", n) for n in storage
    }
    checker = MessageChecker(pki.capath, [pki.sender.dn])
    for (_topic, name), data in got.items():
        verdict = checker.check(data)
        assert verdict.accepted, verdict
        assert verdict.body == (cloud | storage)[name]
    assert QueueSimple(str(out / "cloud")).count() == 0
    assert TOKEN not in text.out + text.err + caplog.text  # never logged


def test_retries_503_then_succeeds(tmp_path, pki, fresh):
    state, port = fresh
    state.fail_next[:] = [503, 504]
    fill_queue(tmp_path / "spool" / "outgoing" / "cloud", [cloud_message(1, 2)])
    assert main(["ssm", "send", "--once", "--config", str(ams_config(tmp_path, pki, port))]) == 0
    assert len(state.published) == 1


def test_503_beyond_retries_is_transient_and_keeps_the_message(tmp_path, pki, fresh):
    state, port = fresh
    state.fail_next[:] = [503] * 10
    path = tmp_path / "spool" / "outgoing" / "cloud"
    fill_queue(path, [cloud_message(1, 2)])
    assert main(["ssm", "send", "--once", "--config", str(ams_config(tmp_path, pki, port))]) == 75
    assert QueueSimple(str(path)).count() == 1
    assert not list(path.rglob("*.lck"))
    assert state.published == []


def test_413_splits_the_message_into_halves(tmp_path, pki, fresh):
    state, port = fresh
    body = cloud_message(7, 40)
    state.max_bytes = (
        len(base64.b64encode(body)) // 2 + 9000
    )  # a quarter of the records fit (+ signature)
    queued = fill_queue(tmp_path / "spool" / "outgoing" / "cloud", [body])
    assert main(["ssm", "send", "--once", "--config", str(ams_config(tmp_path, pki, port))]) == 0
    (name,) = queued
    assert len(state.published) >= 2
    assert all(p["empaid"].startswith(name + ".") for p in state.published)
    checker = MessageChecker(pki.capath, [pki.sender.dn])
    bodies = [
        checker.check(p["data"]).body for p in sorted(state.published, key=lambda p: p["empaid"])
    ]
    records = [r for b in bodies for r in b.split(b"\n", 1)[1].rstrip(b"\n").split(b"\n%%\n")]
    assert records == body.split(b"\n", 1)[1].rstrip(b"\n").split(b"\n%%\n")  # all, once, in order
    assert all(b.startswith(b"APEL-cloud-message: v0.4\n") for b in bodies)


def test_401_on_publish_stops_with_a_clear_error(tmp_path, pki, fresh, capsys):
    _state, port = fresh
    path = tmp_path / "spool" / "outgoing" / "cloud"
    fill_queue(path, [cloud_message(1, 2), cloud_message(2, 2)])
    cfg = ams_config(tmp_path, pki, port, ams_token="wrong-token")
    rc = main(["ssm", "send", "--once", "--config", str(cfg)])
    out = capsys.readouterr()
    assert rc == 1
    assert (
        "AMS refused to publish to eu-egi-cloud-accounting (HTTP 401: Unauthorized)"
        in out.out + out.err
    )
    assert "wrong-token" not in out.out + out.err
    assert QueueSimple(str(path)).count() == 2


def test_403_on_token_exchange_stops_with_a_clear_error(tmp_path, pki, fresh, capsys):
    state, port = fresh
    state.token_status = 403
    fill_queue(tmp_path / "spool" / "outgoing" / "cloud", [cloud_message(1, 2)])
    rc = main(["ssm", "send", "--once", "--config", str(ams_config(tmp_path, pki, port))])
    out = capsys.readouterr()
    assert rc == 1
    assert "refused the host certificate" in out.out + out.err


def test_untrusted_ams_certificate_is_refused(tmp_path, pki, fresh, capsys):
    state, port = fresh
    other = tmp_path / "other-capath"
    other.mkdir()
    (other / "ca.pem").write_bytes(pki.other_ca.cert.read_bytes())
    from fedcloud_core.external import run_tool

    run_tool(["openssl", "rehash", str(other)])
    fill_queue(tmp_path / "spool" / "outgoing" / "cloud", [cloud_message(1, 2)])
    rc = main(
        [
            "ssm",
            "send",
            "--once",
            "--config",
            str(ams_config(tmp_path, pki, port, capath=str(other))),
        ]
    )
    out = capsys.readouterr()
    assert rc == 1
    assert "TLS failure" in out.out + out.err
    assert state.published == []


def test_400_for_one_message_sets_it_aside_and_the_rest_is_published(tmp_path, pki, fresh, capsys):
    state, port = fresh
    path = tmp_path / "spool" / "outgoing" / "cloud"
    queued = fill_queue(path, [cloud_message(i, 2) for i in range(3)])
    first = min(queued)
    state.fail_next[:] = [400]  # AMS refuses the first publish (that message), then accepts
    rc = main(["ssm", "send", "--once", "--config", str(ams_config(tmp_path, pki, port))])
    out = capsys.readouterr().out
    assert rc == 3, out  # partial: one message set aside
    assert QueueSimple(str(path)).count() == 0
    assert {p["empaid"] for p in state.published} == set(queued) - {first}
    rejected = path.parent / "cloud.rejected"
    assert (rejected / first.replace("/", "-")).read_bytes() == queued[first]
    reason = (rejected / f"{first.replace('/', '-')}.reason").read_text()
    assert "refused by AMS: AMS refused message" in reason
    assert "HTTP 400" in reason


def test_404_unknown_topic_still_stops_and_sets_nothing_aside(tmp_path, pki, fresh):
    state, port = fresh
    path = tmp_path / "spool" / "outgoing" / "cloud"
    fill_queue(path, [cloud_message(1, 2), cloud_message(2, 2)])
    state.fail_next[:] = [404]
    assert main(["ssm", "send", "--once", "--config", str(ams_config(tmp_path, pki, port))]) == 1
    assert QueueSimple(str(path)).count() == 2
    assert not (path.parent / "cloud.rejected").exists()
