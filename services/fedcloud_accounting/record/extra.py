"""Public-IP (v0.2) and accelerator (v0.1) JSON records.

Released APEL does not accept these yet (only unmerged proposals do): they are made
only when enabled in the config, and go to their own queues.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IP_TYPE, IP_VERSION = "APEL Public IP message", "0.2"
ACC_TYPE, ACC_VERSION = "APEL-accelerator-message", "0.1"


class _JsonRecord(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        return dict(sorted(self.model_dump(by_alias=True, exclude_none=True).items()))


class IPRecord(_JsonRecord):
    """Floating IPs of one project and IP version at the end of the window."""

    measurement_time: int = Field(alias="MeasurementTime")
    site_name: str = Field(alias="SiteName")
    cloud_compute_service: str | None = Field(None, alias="CloudComputeService")
    cloud_type: str | None = Field(None, alias="CloudType")
    local_user: str | None = Field(None, alias="LocalUser")
    local_group: str = Field(alias="LocalGroup")
    global_user_name: str | None = Field(None, alias="GlobalUserName")
    fqan: str = Field(alias="FQAN")
    ip_version: Literal[4, 6] = Field(alias="IPVersion")
    ip_count: int = Field(ge=0, alias="IPCount")


class AcceleratorRecord(_JsonRecord):
    """The accelerators (GPUs, ...) of one server in the month of the window end."""

    measurement_month: int = Field(ge=1, le=12, alias="MeasurementMonth")
    measurement_year: int = Field(alias="MeasurementYear")
    associated_record_type: Literal["cloud"] = Field("cloud", alias="AssociatedRecordType")
    associated_record: str = Field(alias="AssociatedRecord")
    global_user_name: str | None = Field(None, alias="GlobalUserName")
    fqan: str = Field(alias="FQAN")
    site_name: str = Field(alias="SiteName")
    count: int = Field(ge=1, alias="Count")
    type: str = Field("GPU", alias="Type")
    model: str | None = Field(None, alias="Model")
    vendor: str | None = Field(None, alias="Vendor")
    active_duration: int = Field(ge=0, alias="ActiveDuration")
    available_duration: int = Field(ge=0, alias="AvailableDuration")
    benchmark_type: str | None = Field(None, alias="BenchmarkType")
    benchmark: float | None = Field(None, alias="Benchmark")
