"""The site BDII: aggregates resource BDIIs under GLUE2DomainID=<site>,o=glue."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, field_validator

from ..errors import ConfigError
from .base import Section

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback_host(host: str) -> bool:
    """True for a name or address that only this machine reaches (localhost, 127.x, ::1)."""
    h = host.strip().strip("[]").rstrip(".").lower()
    if not h or h in LOOPBACK_NAMES or h.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


class SiteBdiiConfig(Section):
    resource_bdiis: list[str] = Field(
        default_factory=lambda: ["ldap://127.0.0.1:2170"],
        description="LDAP URLs of the resource BDIIs to aggregate (a path selects the base; default o=glue)",
        examples=[["ldap://cloud-bdii.example.org:2170"]],
    )
    host: str = Field("127.0.0.1", description="address the site slapd listens on")
    port: int = Field(2171, ge=1, le=65535, description="LDAP port of the site BDII")
    public_hostname: str | None = Field(
        None,
        description="host name published in the bdii_site endpoint URL (default: this host's FQDN)",
        examples=["bdii.example.org"],
    )
    public_port: int = Field(
        2170, ge=1, le=65535, description="port published in the bdii_site endpoint URL"
    )
    keep_missing_for: int = Field(
        600,
        ge=0,
        description="seconds a silent resource BDII's last data is kept (health: unknown)",
    )
    timeout: int = Field(30, ge=1, description="seconds for each LDAP connect/search")
    data_dir: Path | None = Field(
        None,
        description="site BDII state (slapd database, resource BDII cache); default: <state_dir>/site-bdii",
    )
    maxsize_mb: int = Field(1024, ge=16, description="mdb maxsize in MB of the site slapd")
    log_level: str = Field("0", pattern=r"^[A-Za-z0-9,]+$", description="slapd debug level (-d)")
    grid_compat: bool = Field(
        True, description="also answer base mds-vo-name=<site>,o=grid (GOCDB's site BDII URL)"
    )

    @field_validator("public_hostname")
    @classmethod
    def _public(cls, v: str | None) -> str | None:
        if v is not None and is_loopback_host(v):
            raise ValueError(
                f"{v!r} is a loopback name: the site BDII would publish an endpoint URL only "
                "this machine can reach; give the public host name"
            )
        return v

    def published_host(self, fqdn: Callable[[], str] | None = None) -> str:
        """``public_hostname``, else this machine's FQDN; ConfigError if that is a loopback name."""
        if self.public_hostname:
            return self.public_hostname
        host = (fqdn or socket.getfqdn)()
        if is_loopback_host(host):
            raise ConfigError(
                f"site_bdii.public_hostname: not set, and this machine's FQDN is {host!r}: the "
                "site BDII would publish ldap://" + host + ":... as its endpoint; set "
                "site_bdii.public_hostname to the public host name"
            )
        return host

    @field_validator("resource_bdiis")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("ldap://", "ldaps://")):
                raise ValueError(f"not an ldap:// URL: {url!r}")
        return v

    def resolved_data_dir(self, state_dir: Path) -> Path:
        return self.data_dir or state_dir / "site-bdii"
