"""Reading the snapshot a BDII publishes, with its health.

A snapshot that is missing, unreadable, empty or stale is never a reason to delete
published data: the caller keeps what is in LDAP (and may still add/modify from a
stale snapshot) and reports the health.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..ldif import Entry, LdifError, parse
from . import dn as dnlib


class Health(StrEnum):
    OK = "ok"
    MISSING = "missing"  # no snapshot yet (cloud-info never succeeded)
    INVALID = "invalid"  # unreadable or not LDIF
    EMPTY = "empty"  # no entries below the resource base
    STALE = "stale"  # older than the allowed age: served, no deletes


@dataclass
class Snapshot:
    path: Path
    health: Health
    entries: list[Entry] = field(default_factory=list)
    age: float | None = None  # seconds
    problem: str | None = None

    @property
    def usable(self) -> bool:
        """Entries may be added/modified from it."""
        return self.health in (Health.OK, Health.STALE)

    @property
    def authoritative(self) -> bool:
        """Entries it lacks may be deleted."""
        return self.health is Health.OK


def load_snapshot(path: Path, *, max_age: float, base: str, now: float | None = None) -> Snapshot:
    """Read ``path``; ``base`` is the DN below which a snapshot must have entries to be non-empty."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Snapshot(
            path, Health.MISSING, problem=f"{path}: no snapshot (has cloud-info run yet?)"
        )
    except (OSError, UnicodeDecodeError) as exc:
        return Snapshot(path, Health.INVALID, problem=f"{path}: cannot read: {exc}")
    age = max(0.0, (time.time() if now is None else now) - st.st_mtime)
    try:
        entries = parse(text)
    except LdifError as exc:
        return Snapshot(path, Health.INVALID, age=age, problem=f"{path}: {exc}")
    below = [e for e in entries if _strictly_below(e.dn, base)]
    if not below:
        return Snapshot(path, Health.EMPTY, entries, age, f"{path}: no entries below {base}")
    if age > max_age:
        return Snapshot(
            path,
            Health.STALE,
            entries,
            age,
            f"{path}: snapshot is {age / 60:.0f} min old (limit {max_age / 60:.0f} min); kept, not refreshed",
        )
    return Snapshot(path, Health.OK, entries, age)


def _strictly_below(dn: str, base: str) -> bool:
    try:
        return dnlib.is_under(dn, base) and dnlib.normalize(dn) != dnlib.normalize(base)
    except dnlib.DnError:
        return True  # counted as content; the updater reports the bad DN
