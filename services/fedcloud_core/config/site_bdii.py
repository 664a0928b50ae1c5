"""The site BDII: aggregates resource BDIIs under GLUE2DomainID=<site>,o=glue."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class SiteBdiiConfig(Section):
    resource_bdiis: list[str] = Field(
        default_factory=lambda: ["ldap://127.0.0.1:2170"],
        description="LDAP URLs of the resource BDIIs to aggregate",
    )
    host: str = Field("127.0.0.1", description="address the site slapd listens on")
    port: int = Field(2171, ge=1, le=65535, description="LDAP port of the site BDII")
    public_hostname: str | None = Field(
        None, description="host name published in the bdii_site endpoint URL", examples=["bdii.example.org"]
    )
    keep_missing_for: int = Field(
        600, ge=0, description="seconds a silent resource BDII's last data is kept (health: unknown)"
    )
