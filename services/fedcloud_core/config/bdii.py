"""The resource BDII (slapd on port 2170, suffix o=glue) fed by bdii-update."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


class BdiiConfig(Section):
    host: str = Field("127.0.0.1", description="address slapd listens on")
    port: int = Field(2170, ge=1, le=65535, description="LDAP port")
    data_dir: Path | None = Field(
        None, description="slapd database directory; default: <state_dir>/bdii"
    )
    maxsize_mb: int = Field(
        1024, ge=16, description="mdb maxsize in MB (the 10 MB default drops entries)"
    )
    snapshot_max_age: int = Field(
        3600,
        gt=0,
        description="seconds after which a snapshot is stale: served, but health says so",
    )
    snapshot: Path | None = Field(
        None,
        description="the LDIF snapshot to publish; default: <state_dir>/cloud-info/snapshot.ldif",
    )
    ldap_url: str | None = Field(
        None,
        pattern=r"^ldaps?://",
        description="slapd to update when bdii-update does not run its own (--with-slapd); "
        "default: ldap://<host>:<port>",
    )
    password_file: Path | None = Field(
        None,
        description="root password of a slapd started elsewhere; default: <data_dir>/run/rootpw",
    )
    timeout: int = Field(30, ge=1, description="seconds for each LDAP connect/operation")
    log_level: str = Field(
        "0",
        pattern=r"^[A-Za-z0-9,]+$",
        description="slapd debug level (-d): 0 = errors only, 'stats' logs every operation",
    )
    infosys: bool = Field(True, description="publish update statistics under o=infosys")

    def resolved_data_dir(self, state_dir: Path) -> Path:
        return self.data_dir or state_dir / "bdii"

    def snapshot_path(self, state_dir: Path) -> Path:
        return self.snapshot or state_dir / "cloud-info" / "snapshot.ldif"
