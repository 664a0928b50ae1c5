"""ssm send: signed accounting messages to APEL over STOMP or AMS."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from .base import Section


class SsmConfig(Section):
    protocol: Literal["STOMP", "AMS"] = Field("AMS", description="transport to the APEL repository")
    host: str = Field("msg.argo.grnet.gr", description="broker or AMS host")
    port: int = Field(443, ge=1, le=65535, description="broker or AMS port")
    use_ssl: bool = Field(True, description="TLS to the broker (always on for AMS)")
    destination: str = Field(
        "/queue/global.accounting.cloudtest.APEL",
        description="STOMP destination (production value per EGI instructions)",
    )
    ams_project: str = Field("accounting", description="AMS project")
    ams_token: SecretStr | None = Field(None, description="AMS token, skipping the X.509 exchange (or ams_token_file)")
    certificate: Path = Field(Path("/etc/grid-security/hostcert.pem"), description="host certificate")
    key: Path = Field(Path("/etc/grid-security/hostkey.pem"), description="host key")
    capath: Path = Field(Path("/etc/grid-security/certificates"), description="CA directory")
    server_cert: Path | None = Field(None, description="encrypt messages to this certificate")
    queues: list[str] = Field(
        default_factory=lambda: ["cloud"], description="outgoing queue names under <spool_dir>/outgoing"
    )
    timeout: float = Field(60.0, gt=0, description="seconds to wait for a receipt / HTTP answer")
