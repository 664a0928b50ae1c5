"""accounting extract: OpenStack usage -> APEL records in the outgoing dirq."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


class AccountingConfig(Section):
    outgoing_dir: Path | None = Field(None, description="outgoing queue root; default: <spool_dir>/outgoing")
    first_run_window_days: int = Field(
        30, ge=1, description="how far back the first run (no checkpoint) extracts"
    )
    records_per_message: int = Field(500, ge=1, le=5000, description="max records in one message")
    max_message_bytes: int = Field(
        700_000, ge=10_000, description="max message body size before signing (signed+base64 stays < 1 MB)"
    )
    storage_records: bool = Field(True, description="also extract StAR storage records for volumes")
    ip_records: bool = Field(False, description="public-IP records (not accepted by released APEL)")
    accelerator_records: bool = Field(False, description="accelerator records (not accepted by released APEL)")
