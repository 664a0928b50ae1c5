"""The site BDII: aggregates resource BDIIs under GLUE2DomainID=<site>,o=glue."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from .base import Section


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

    @field_validator("resource_bdiis")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("ldap://", "ldaps://")):
                raise ValueError(f"not an ldap:// URL: {url!r}")
        return v

    def resolved_data_dir(self, state_dir: Path) -> Path:
        return self.data_dir or state_dir / "site-bdii"
