"""Reading the snapshot a BDII publishes, with its health.

A snapshot that is missing, unreadable, empty or stale is never a reason to delete
published data: the caller keeps what is in LDAP (and may still add/modify from a
stale snapshot) and reports the health.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from ..ldif import Entry, LdifError, Record, parse, split_records
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
    records: list[Record] = field(default_factory=list)  # records=True: not parsed yet
    digest: str = ""  # of the file's bytes and the health (same: nothing to publish again)
    file_digest: str = ""
    has_content: bool = False  # entries below the base

    def copy_for(self, mtime: float, now: float | None) -> Snapshot:
        """This snapshot as read again now (same content, new age)."""
        age = max(0.0, (time.time() if now is None else now) - mtime)
        return replace(self, age=age)

    @property
    def items(self) -> list[Entry | Record]:
        """The snapshot's entries, or its records when it was read with ``records=True``."""
        return [*self.records] if self.records else [*self.entries]

    @property
    def usable(self) -> bool:
        """Entries may be added/modified from it."""
        return self.health in (Health.OK, Health.STALE)

    @property
    def authoritative(self) -> bool:
        """Entries it lacks may be deleted."""
        return self.health is Health.OK


def load_snapshot(
    path: Path, *, max_age: float, base: str, now: float | None = None, records: bool = False
) -> Snapshot:
    """Read ``path``; ``base`` is the DN below which a snapshot must have entries to be non-empty.

    ``records``: keep the entries as unparsed LDIF records when the file is written the
    way the project writes LDIF (the publish path parses only what changed); anything
    else is parsed as usual."""
    try:
        st = path.stat()
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        hit = _seen.get(path) if records else None
        if hit is not None and hit[0] == stamp:  # the same file as last cycle: not read again
            return _health(hit[1].copy_for(st.st_mtime, now), base, max_age)
        data = path.read_bytes()
        text = data.decode("utf-8")
    except FileNotFoundError:
        return Snapshot(
            path, Health.MISSING, problem=f"{path}: no snapshot (has cloud-info run yet?)"
        )
    except (OSError, UnicodeDecodeError) as exc:
        return Snapshot(path, Health.INVALID, problem=f"{path}: cannot read: {exc}")
    age = max(0.0, (time.time() if now is None else now) - st.st_mtime)
    digest = hashlib.sha256(data).hexdigest()
    if hit is not None and hit[1].file_digest == digest:  # rewritten with the same content
        _seen[path] = (stamp, hit[1])
        return _health(hit[1].copy_for(st.st_mtime, now), base, max_age)
    recs = split_records(text) if records else None
    entries: list[Entry] = []
    if recs is None:
        try:
            entries = parse(text)
        except LdifError as exc:
            return Snapshot(path, Health.INVALID, age=age, problem=f"{path}: {exc}")
    dns = [r.dn for r in recs] if recs is not None else [e.dn for e in entries]
    snap = Snapshot(path, Health.OK, entries, age, records=recs or [])
    snap.file_digest = digest
    snap.has_content = any(_strictly_below(dn, base) for dn in dns)
    if records:
        _seen[path] = (stamp, snap)
    return _health(snap, base, max_age)


# the last snapshot read per path (records=True: the job's loop), by device, inode, mtime
# and size: cloud-info replaces the file atomically, so an unchanged stamp is the same file
_seen: dict[Path, tuple[tuple[int, int, int, int], Snapshot]] = {}


def _health(snap: Snapshot, base: str, max_age: float) -> Snapshot:
    age = snap.age or 0.0
    snap.health, snap.problem = Health.OK, None
    if not snap.has_content:
        snap.health, snap.problem = Health.EMPTY, f"{snap.path}: no entries below {base}"
    elif age > max_age:
        snap.health = Health.STALE
        snap.problem = (
            f"{snap.path}: snapshot is {age / 60:.0f} min old (limit {max_age / 60:.0f} min); "
            "kept, not refreshed"
        )
    snap.digest = f"{snap.file_digest}:{snap.health.value}"
    return snap


def _strictly_below(dn: str, base: str) -> bool:
    try:
        return dnlib.is_under(dn, base) and dnlib.normalize(dn) != dnlib.normalize(base)
    except dnlib.DnError:
        return True  # counted as content; the updater reports the bad DN
