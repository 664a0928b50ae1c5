"""cloud-info: OpenStack -> GLUE2 snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from .base import Section


class CloudInfoConfig(Section):
    format: Literal["glue20-ldif", "glue21-ldif", "glue21-json"] = Field(
        "glue20-ldif", description="snapshot format written by cloud-info"
    )
    output: Path | None = Field(None, description="snapshot file; default: <state_dir>/cloud-info/snapshot.<ext>")
    publish_all_images: bool = Field(
        False, description="publish every active image, not only those with marketplace metadata"
    )
    validity: int = Field(3600, gt=0, description="GLUE2EntityValidity in seconds")
    timeout: float = Field(300.0, gt=0, description="seconds the whole collection may take")
