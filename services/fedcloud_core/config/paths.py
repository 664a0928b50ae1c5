"""Where the appliance keeps its state, spool and caches."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


class PathsConfig(Section):
    state_dir: Path = Field(
        Path("/var/lib/fedcloud-appliance"),
        description="job state: checkpoints, snapshots, last run reports, heartbeats",
    )
    lock_dir: Path | None = Field(None, description="run locks; default: <state_dir>/locks")
    spool_dir: Path = Field(
        Path("/var/spool/apel"), description="APEL spool (outgoing queues live below it)"
    )
    image_dir: Path = Field(Path("/image_data"), description="image replication cache")
    history_days: int = Field(
        14, ge=1, le=366, description="keep each job's run history (<state_dir>/history) N days"
    )
    history_max_bytes: int = Field(
        1_000_000,
        ge=10_000,
        description="size cap of one job's history file; the oldest runs go first",
    )

    @property
    def locks(self) -> Path:
        return self.lock_dir or self.state_dir / "locks"
