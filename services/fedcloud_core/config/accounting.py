"""accounting extract: OpenStack usage -> APEL records in the outgoing dirq."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from .base import Section

# Message size is counted as S/MIME will sign it (LF -> CRLF). Signing adds a few KiB
# (headers, PKCS#7 signature, certificate chain); base64 with 76-character lines grows the
# result by 4/3 x 77/76. A body of at most 680 000 such bytes stays under the 1 MB AMS limit.
MAX_BODY_BYTES = 680_000


class QueueNames(Section):
    cloud: str = Field("cloud", description="queue (directory under outgoing_dir) of cloud records")
    storage: str = Field("storage", description="queue of StAR storage records")
    ip: str = Field("ip", description="queue of public-IP records")
    accelerator: str = Field("accelerator", description="queue of accelerator records")

    @field_validator("*")
    @classmethod
    def _simple(cls, v: str) -> str:
        if not v or "/" in v or v in (".", ".."):
            raise ValueError(f"a queue name is one directory name, not {v!r}")
        return v


RECORD_TYPES = ("cloud", "storage", "ip", "accelerator")


class AccountingConfig(Section):
    outgoing_dir: Path | None = Field(
        None, description="outgoing queue root; default: <spool_dir>/outgoing"
    )
    queues: QueueNames = Field(
        default_factory=QueueNames, description="queue name (directory) per record type"
    )
    first_run_window_days: int = Field(
        30, ge=1, description="how far back the first run (no checkpoint) extracts"
    )
    changes_since_margin_minutes: int = Field(
        10,
        ge=0,
        le=1440,
        description="also ask Nova for servers deleted this long before the checkpoint (clock skew "
        "between the appliance and Nova); final records already queued are not queued again",
    )
    records_per_message: int = Field(500, ge=1, le=5000, description="max records in one message")
    max_message_bytes: int = Field(
        650_000,
        ge=10_000,
        le=MAX_BODY_BYTES,
        description="max message size in bytes as signed (newlines count twice); signed+base64 stays < 1 MB",
    )
    storage_records: bool = Field(True, description="also extract StAR storage records for volumes")
    ip_records: bool = Field(False, description="public-IP records (not accepted by released APEL)")
    accelerator_records: bool = Field(
        False, description="accelerator records (not accepted by released APEL)"
    )
    discover_vo_property: str | None = Field(
        None,
        description="also account every Keystone project carrying this property (its value is the VO), "
        "e.g. 'egi.VO'; empty: only the projects listed in 'vos'",
        examples=["egi.VO"],
    )
    discover_vo_tag_prefix: str | None = Field(
        None,
        description="also account every Keystone project with a tag '<prefix><VO>', e.g. prefix 'VO:' "
        "and tag 'VO:ops'; empty: no tag discovery",
        examples=["VO:"],
    )
    cache_actions: bool = Field(
        True,
        description="keep each server's instance actions in <state_dir>/accounting/actions and read them "
        "again only when the server's 'updated' time moves (one API call per changed server, not per server); "
        "also keep the last server listing in <state_dir>/accounting/servers, so that the next run asks Nova "
        "only for the servers changed since (a complete listing at least daily)",
    )
    max_build_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="a server ACTIVE whose 'updated' time is its 'launched_at' (within 2 s), launched at "
        "most this long after its creation, has run untouched since its first launch: its instance "
        "actions are not read. Nova also resets 'launched_at' on rebuild, unshelve and resize, hence "
        "the bound: set it above this site's usual build time, 0 to read every server's actions",
    )
    shutoff_is_suspended: bool = Field(
        True,
        description="count time a server spent stopped (SHUTOFF), like suspended/shelved/paused time, "
        "as SuspendDuration instead of WallDuration",
    )

    def extracted_queues(self) -> dict[str, str]:
        """Record type -> queue name, for the record types this config extracts."""
        enabled = {
            "cloud": True,
            "storage": self.storage_records,
            "ip": self.ip_records,
            "accelerator": self.accelerator_records,
        }
        return {kind: getattr(self.queues, kind) for kind in RECORD_TYPES if enabled[kind]}
