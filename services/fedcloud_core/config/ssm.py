"""ssm send: signed accounting messages to APEL over STOMP or AMS."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from .base import Section

DEFAULT_TOPICS = {
    "cloud": "eu-egi-cloud-accounting",
    "storage": "eu-egi-storage-accounting",
}


class SsmConfig(Section):
    protocol: Literal["STOMP", "AMS"] = Field("AMS", description="transport to the APEL repository")
    host: str = Field("msg.argo.grnet.gr", description="broker or AMS host")
    port: int = Field(
        443, ge=1, le=65535, description="broker port (STOMP, e.g. 61613/6162) or AMS HTTPS port"
    )
    use_ssl: bool = Field(True, description="TLS to the STOMP broker (AMS always uses HTTPS)")
    destination: str = Field(
        "/queue/global.accounting.cloudtest.APEL",
        description="STOMP destination (production value per EGI instructions)",
    )
    stomp_vhost: str | None = Field(
        None,
        description="STOMP 'host' header of CONNECT (virtual host); default: the broker host name. "
        "RabbitMQ maps it to a vhost, e.g. '/'",
    )
    ams_project: str = Field("accounting", description="AMS project")
    ams_auth_port: int = Field(
        8443, ge=1, le=65535, description="AMS port of the X.509 token exchange (authn service)"
    )
    ams_topics: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_TOPICS),
        description="AMS topic per outgoing queue name (a queue without a topic is an error at start)",
    )
    ams_token: SecretStr | None = Field(
        None, description="AMS token, skipping the X.509 exchange (or ams_token_file)"
    )
    certificate: Path = Field(
        Path("/etc/grid-security/hostcert.pem"), description="host certificate"
    )
    key: Path = Field(Path("/etc/grid-security/hostkey.pem"), description="host key")
    capath: Path = Field(
        Path("/etc/grid-security/certificates"),
        description="CA directory (hashed, 'openssl rehash'): verifies the broker / AMS certificate",
    )
    server_cert: Path | None = Field(None, description="encrypt messages to this certificate")
    queues: list[str] | None = Field(
        None,
        description="outgoing queue names (directories) under <spool_dir>/outgoing, sent in this order; "
        "default: the queues of the record types the accounting job extracts (accounting.queues of "
        "cloud, and of storage/ip/accelerator when enabled)",
        examples=[["cloud", "storage"]],
    )
    signer: Literal["builtin", "openssl"] = Field(
        "builtin",
        description="how messages are signed: 'builtin' in-process (cryptography), 'openssl' one "
        "'openssl smime -sign -text' process per message (as ssmsend); both give the same signed part",
    )
    window: int = Field(
        16,
        ge=1,
        le=256,
        description="STOMP: messages sent before their receipts arrived (each is removed from the "
        "queue only after its own receipt); 1 = wait for each receipt. AMS sends one at a time",
    )
    timeout: float = Field(60.0, gt=0, description="seconds to wait for a receipt / HTTP answer")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")
    retries: int = Field(
        3,
        ge=0,
        le=20,
        description="reconnects (STOMP) / retries (AMS 408/502/503/504) before giving up",
    )
    backoff: float = Field(
        2.0, ge=0, description="first backoff delay in seconds (doubles each time)"
    )
    ascii_only: bool = Field(
        True,
        description="set aside messages with non-ASCII bytes (APEL's parser rejects them whole) "
        "instead of sending them",
    )
    min_cert_validity_hours: float = Field(
        24.0, ge=0, description="refuse to start when the host certificate expires sooner than this"
    )

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for name in v:
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"a queue name is one directory name, not {name!r}")
        if len(set(v)) != len(v):
            raise ValueError("a queue is listed twice")
        return v

    @model_validator(mode="after")
    def _topics_for_queues(self) -> SsmConfig:
        # the default queues are derived in AppConfig (from the accounting record types)
        if self.queues is not None:
            self.check_topics(self.queues)
        return self

    def check_topics(self, queues: list[str]) -> None:
        if self.protocol == "AMS":
            missing = [q for q in queues if q not in self.ams_topics]
            if missing:
                raise ValueError(
                    f"protocol AMS: no topic in 'ams_topics' for queue(s) {', '.join(missing)}"
                )

    @property
    def send_queues(self) -> list[str]:
        """The queues to send (set by AppConfig from the record types when not configured)."""
        return list(self.queues) if self.queues is not None else ["cloud"]
