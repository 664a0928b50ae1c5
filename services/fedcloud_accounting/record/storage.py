"""EMI StAR storage records (XML) for Cinder volumes."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from pydantic import BaseModel, ConfigDict, Field

from .sanitize import clean

STAR_NS = "http://eu-emi.eu/namespaces/2011/02/storagerecord"
XML_PREFIX = (
    f'<?xml version="1.0" encoding="UTF-8"?>\n<sr:StorageUsageRecords xmlns:sr="{STAR_NS}">\n'
)
XML_SUFFIX = "</sr:StorageUsageRecords>\n"


def star_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StorageRecord(BaseModel):
    """A volume's size at the end of the window (``record_id`` = volume id: the last one wins)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    record_id: str = Field(alias="RecordId")
    create_time: datetime = Field(alias="CreateTime")
    storage_system: str = Field(alias="StorageSystem")
    site: str = Field(alias="Site")
    storage_media: str = Field("disk", alias="StorageMedia")
    local_user: str | None = Field(None, alias="LocalUser")
    local_group: str | None = Field(None, alias="LocalGroup")
    user_identity: str | None = Field(None, alias="UserIdentity")
    group: str | None = Field(None, alias="Group")
    start_time: datetime = Field(alias="StartTime")
    end_time: datetime = Field(alias="EndTime")
    capacity_bytes: int = Field(ge=0, alias="ResourceCapacityUsed")

    def to_xml(self) -> str:
        """One ``<sr:StorageUsageRecord>`` element (elements in the StAR schema's order)."""

        def el(tag: str, value: str | None, indent: str = "  ") -> str:
            return f"{indent}<sr:{tag}>{escape(clean(value))}</sr:{tag}>\n" if value else ""

        subject = "".join(
            el(t, v, "    ")
            for t, v in (
                ("LocalUser", self.local_user),
                ("LocalGroup", self.local_group),
                ("UserIdentity", self.user_identity),
                ("Group", self.group),
            )
        )
        return (
            "<sr:StorageUsageRecord>\n"
            f"  <sr:RecordIdentity sr:createTime={quoteattr(star_time(self.create_time))} "
            f"sr:recordId={quoteattr(clean(self.record_id))}/>\n"
            + el("StorageSystem", self.storage_system)
            + el("Site", self.site)
            + el("StorageMedia", self.storage_media)
            + (f"  <sr:SubjectIdentity>\n{subject}  </sr:SubjectIdentity>\n" if subject else "")
            + el("StartTime", star_time(self.start_time))
            + el("EndTime", star_time(self.end_time))
            + el("ResourceCapacityUsed", str(self.capacity_bytes))
            + "</sr:StorageUsageRecord>\n"
        )
