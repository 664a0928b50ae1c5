"""The APEL cloud record, v0.4: Python names, APEL wire names as aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..extract.facts import epoch
from .sanitize import clean

HEADER = "APEL-cloud-message: v0.4"
Status = Literal["started", "completed", "suspended", "paused", "error", "unknown"]


class CloudRecord(BaseModel):
    """One VM's cumulative usage up to the end of the extraction window."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    vm_uuid: str = Field(alias="VMUUID")
    site_name: str = Field(alias="SiteName")
    cloud_compute_service: str | None = Field(None, alias="CloudComputeService")
    machine_name: str | None = Field(None, alias="MachineName")
    local_user_id: str | None = Field(None, alias="LocalUserId")
    local_group_id: str | None = Field(None, alias="LocalGroupId")
    global_user_name: str | None = Field(None, alias="GlobalUserName")
    fqan: str | None = Field(None, alias="FQAN")
    status: Status = Field(alias="Status")
    start_time: datetime = Field(alias="StartTime")
    end_time: datetime | None = Field(None, alias="EndTime")  # None: still running -> 0
    suspend_duration: int | None = Field(None, alias="SuspendDuration")
    wall_duration: int = Field(alias="WallDuration")
    cpu_duration: int = Field(alias="CpuDuration")
    cpu_count: int = Field(alias="CpuCount")
    network_type: str | None = Field(None, alias="NetworkType")
    network_inbound: int | None = Field(None, alias="NetworkInbound")
    network_outbound: int | None = Field(None, alias="NetworkOutbound")
    public_ip_count: int | None = Field(None, alias="PublicIPCount")
    memory: int = Field(alias="Memory")  # MB
    disk: int = Field(alias="Disk")  # GB
    benchmark_type: str | None = Field(None, alias="BenchmarkType")
    benchmark: float | None = Field(None, alias="Benchmark")
    storage_record_id: str | None = Field(None, alias="StorageRecordId")
    image_id: str | None = Field(None, alias="ImageId")
    cloud_type: str | None = Field(None, alias="CloudType")

    @field_validator("start_time", "end_time")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("times must be timezone-aware (UTC)")
        return v

    def to_wire(self) -> dict[str, str]:
        """APEL field name -> text, sorted by name; unset optional fields are left out."""
        out: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            key = info.alias or name
            if name == "end_time":
                out[key] = str(epoch(value)) if value is not None else "0"
            elif value is None:
                continue
            elif isinstance(value, datetime):
                out[key] = str(epoch(value))
            elif isinstance(value, float):
                out[key] = repr(value)
            elif isinstance(value, str):
                out[key] = clean(value)
            else:
                out[key] = str(value)
        return dict(sorted(out.items()))


def render_record(wire: dict[str, str]) -> str:
    """One record block: ``Key: value`` lines, keys sorted, no trailing newline."""
    return "\n".join(f"{k}: {wire[k]}" for k in sorted(wire))
