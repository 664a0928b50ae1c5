"""Session fixtures of the SSM integration tests: a test PKI and a private RabbitMQ STOMP broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support.pki import Pki, make_pki
from support.rabbitmq import RabbitNode


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ssm-pki"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RabbitNode]:
    node = RabbitNode(
        tmp_path_factory.mktemp("ssm-rabbit"),
        cacert=pki.cafile,
        certfile=pki.broker.cert,
        keyfile=pki.broker.key,
    )
    node.start()
    yield node
    node.stop()


@pytest.fixture
def destination() -> str:
    return f"/queue/ssm-test-{uuid.uuid4().hex[:10]}"
