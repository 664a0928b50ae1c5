"""The resource BDII (slapd on port 2170, suffix o=glue) fed by bdii-update."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


class BdiiConfig(Section):
    host: str = Field("127.0.0.1", description="address slapd listens on")
    port: int = Field(2170, ge=1, le=65535, description="LDAP port")
    data_dir: Path | None = Field(None, description="slapd database directory; default: <state_dir>/bdii")
    maxsize_mb: int = Field(1024, ge=16, description="mdb maxsize in MB (the 10 MB default drops entries)")
    snapshot_max_age: int = Field(
        3600, gt=0, description="seconds after which a snapshot is stale: served, but health says so"
    )
