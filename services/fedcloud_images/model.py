"""What a source produces: an accepted image list and its image entries (source neutral)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ImageEntry:
    """One image of a list, normalised; ``attributes`` is what goes to APPLIANCE_ATTRIBUTES."""

    identifier: str  # the sync key (appdb_id)
    title: str
    uri: str
    digest_algo: str  # "sha512" (HEPiX) or "sha256" (OCI)
    digest: str  # lower-case hex
    size: int | None = None
    format_hint: str | None = None  # lower case, as announced (may be wrong)
    description: str = ""
    version: str = ""
    mpuri: str | None = None
    os_distro: str | None = None
    os_version: str | None = None
    architecture: str | None = None
    ram_min: int | None = None
    expires: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False, hash=False, compare=False)

    @property
    def image_hash(self) -> str:
        return f"{self.digest_algo}:{self.digest}"

    @property
    def safe_id(self) -> str:
        """The identifier as a file-system-safe name (cache directory)."""
        return re.sub(r"[^A-Za-z0-9._-]", "_", self.identifier)[:200].lstrip(".") or "_"


@dataclass
class ImageList:
    source: str  # subscription name
    identifier: str
    version: str
    content_hash: str  # sha256 of the verified content
    images: list[ImageEntry] = field(default_factory=list)
    title: str = ""
    expires: datetime | None = None
    invalid: dict[str, str] = field(default_factory=dict)  # identifier (or index) -> problem
