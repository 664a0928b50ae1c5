"""AMS (ARGO Messaging Service) transport of the SSM sender: the core's AMS client
(:mod:`fedcloud_core.ams`) with one topic per outgoing queue and the SSM error classes.

Each message goes out with the attribute ``empaid`` (its outbox id); the answer's message
id is the receipt. The token never appears in logs or errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from fedcloud_core.ams import (
    AmsClient,
    AmsDeliveryError,
    AmsMessageRefused,
    AmsMessageTooLarge,
    AmsRefused,
    AmsUnavailable,
)

from .errors import (
    BrokerRefused,
    BrokerUnavailable,
    DeliveryError,
    MessageRefused,
    MessageTooLarge,
)

log = logging.getLogger(__name__)


@contextmanager
def _ssm_errors() -> Iterator[None]:
    """The core AMS errors as the SSM classes the sender and its tests know."""
    try:
        yield
    except AmsMessageTooLarge as exc:
        raise MessageTooLarge(str(exc)) from None
    except AmsMessageRefused as exc:  # a 4xx about this one message: the sender sets it aside
        raise MessageRefused(str(exc)) from None
    except AmsRefused as exc:
        raise BrokerRefused(str(exc)) from None
    except AmsUnavailable as exc:
        raise BrokerUnavailable(str(exc)) from None
    except AmsDeliveryError as exc:
        raise DeliveryError(str(exc)) from None


class AmsTransport:
    """Publishes signed messages to AMS topics, one topic per queue. Constructor does no I/O."""

    kind = "AMS"

    def __init__(
        self,
        host: str,
        *,
        port: int = 443,
        auth_port: int = 8443,
        project: str = "accounting",
        topics: Mapping[str, str],
        cert: Path,
        key: Path,
        capath: Path,
        token: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 2.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.topics = dict(topics)
        self.client = AmsClient(
            host,
            port=port,
            auth_port=auth_port,
            project=project,
            cert=cert,
            key=key,
            capath=capath,
            token=token,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            backoff=backoff,
            session=session,
            sleep=sleep,
            credential_hint="the token (ssm.ams_token)",
        )

    @property
    def base(self) -> str:
        return self.client.base

    def topic(self, queue: str) -> str:
        try:
            return self.topics[queue]
        except KeyError:
            raise BrokerRefused(
                f"no AMS topic configured for queue {queue!r} (ssm.ams_topics)"
            ) from None

    def describe(self, queue: str) -> str:
        return self.client.topic_url(self.topic(queue))

    def open(self) -> None:
        with _ssm_errors():
            self.client.open()

    def send(self, queue: str, msgid: str, text: str) -> None:
        topic = self.topic(queue)
        with _ssm_errors():
            self.client.publish(topic, text.encode("utf-8"), {"empaid": msgid}, label=msgid)

    def close(self) -> None:
        self.client.close()
