"""Plain, typed usage facts read from OpenStack; every time is timezone-aware UTC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def parse_time(value: object) -> datetime | None:
    """An OpenStack timestamp (``...Z``, ``+00:00`` or naive, meaning UTC) -> aware UTC datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # Nova and Cinder store UTC without an offset
    return dt.astimezone(UTC)


def epoch(dt: datetime) -> int:
    """Seconds since 1970 of an aware datetime (never the host time zone)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime refused: accounting times must be timezone-aware")
    return int(dt.timestamp())


@dataclass(frozen=True)
class Flavor:
    id: str | None
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int = 0
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    id: str
    name: str = ""
    mpuri: str | None = None  # vmcatcher_event_ad_mpuri: the marketplace URI


@dataclass(frozen=True)
class Action:
    """One entry of os-instance-actions: what was requested and when."""

    name: str
    time: datetime


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    project_id: str
    user_id: str | None
    status: str  # Nova status: ACTIVE, SHUTOFF, SUSPENDED, DELETED, ERROR, ...
    created: datetime
    terminated: datetime | None = None  # OS-SRV-USG:terminated_at
    launched: datetime | None = None  # OS-SRV-USG:launched_at; None: never ran (e.g. ERROR at boot)
    updated: datetime | None = None
    task_state: str | None = None  # OS-EXT-STS:task_state: an operation in progress
    image_id: str | None = None
    flavor: Flavor | None = None  # embedded flavor (microversion >= 2.47)
    flavor_ref: str | None = None  # flavor id or original name, to look it up otherwise


@dataclass(frozen=True)
class FloatingIP:
    id: str
    address: str
    project_id: str
    port_id: str | None = None
    device_id: str | None = None  # the server the port belongs to, when known

    @property
    def version(self) -> int:
        return 6 if ":" in self.address else 4


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    project_id: str
    user_id: str | None
    size_gb: int
    created: datetime
    status: str = ""


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
