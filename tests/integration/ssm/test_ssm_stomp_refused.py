"""A message the real broker refuses (RabbitMQ ERROR frame for it) is set aside; the rest goes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_appliance.cli import main
from fedcloud_dev.apel_receiver import MessageChecker, Receiver, Store
from support.apel_queue import cloud_message, fill_queue, stomp_settings, write_config
from support.pki import Pki
from support.rabbitmq import RabbitNode

pytestmark = pytest.mark.integration

MAX_MESSAGE = 100_000  # bytes; RabbitMQ answers a larger SEND with ERROR precondition_failed


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    node = RabbitNode(
        tmp_path_factory.mktemp("ssm-rabbit-small"),
        extra_conf=[f"max_message_size = {MAX_MESSAGE}"],
    )
    node.start()
    yield node
    node.stop()


def test_message_refused_by_the_broker_is_set_aside_and_does_not_block_the_queue(
    tmp_path, pki: Pki, small_broker: RabbitNode, destination: str, capsys
):
    cfg = write_config(tmp_path, stomp_settings(pki, small_broker, destination, tls=False))
    path = tmp_path / "spool" / "outgoing" / "cloud"
    big = cloud_message(99, 500)
    assert len(big) > MAX_MESSAGE
    small = [cloud_message(i, 5) for i in range(3)]
    queued = fill_queue(path, [small[0], big, small[1], small[2]])
    big_name = next(n for n, b in queued.items() if b == big)

    rc = main(["ssm", "send", "--once", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert rc == 3, out  # partial: the refused message is set aside, the others sent
    assert "larger than configured max size" in out
    assert QueueSimple(str(path)).count() == 0
    rejected = path.parent / "cloud.rejected"
    assert (rejected / big_name.replace("/", "-")).read_bytes() == big
    reason = (rejected / f"{big_name.replace('/', '-')}.reason").read_text()
    assert "refused by STOMP: broker refused message" in reason

    store = Store(tmp_path / "recv")
    Receiver(
        "127.0.0.1",
        small_broker.stomp_port,
        destination,
        MessageChecker(pki.capath, [pki.sender.dn]),
        store,
        use_ssl=False,
        vhost="/",
    ).drain(idle=1.5, max_time=60)
    assert sorted(store.accepted().values()) == sorted(small)

    # the next run has nothing left to send and ends OK
    assert main(["ssm", "send", "--once", "--config", str(cfg)]) == 0
