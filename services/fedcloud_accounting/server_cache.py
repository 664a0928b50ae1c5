"""The servers listed by the last run, so that the next run asks Nova only for changes.

Every run reports every server of a project, but an hourly run sees few changes:
listing all servers again makes Nova render each of them (most of an hourly run on a
big site, and the cloud's time, not ours). Nova saves the instance - moving its
``updated`` time - whenever anything the records use changes (state, name, flavor,
image, deletion), and ``changes-since`` lists exactly the servers updated since a time,
deleted ones included. So a run that has the servers of its last listing only asks for
those changed since then and takes the others as they were.

``<state_dir>/accounting/servers/<project id>.json``::

    {"version": 1, "listed_at": "...", "full_at": "...", "servers": {"<id>": {...}, ...}}

``listed_at`` is when the listing began (our clock), ``full_at`` when the last complete
listing began. A run lists changes only when its ``changes-since`` is at least the
clock-skew margin before ``listed_at`` (no change can fall between the two listings)
and the last complete listing is less than :data:`FULL_EVERY` old (a server removed
from Nova's database without a trace - archived deleted rows - is dropped within a
day). Otherwise, and whenever the file is missing or unreadable, it lists every server.
A file of a newer state version is refused like every versioned state.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fedcloud_core.statefile import JsonMigration, dump_versioned, load_versioned

from .extract.facts import Flavor, Server

VERSION = 1
MIGRATIONS: dict[int, JsonMigration] = {}  # version n -> n + 1
FULL_EVERY = timedelta(hours=24)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_TIMES = ("created", "terminated", "launched", "updated")


@dataclass(frozen=True)
class Listing:
    listed_at: datetime
    full_at: datetime
    servers: dict[str, Server]


def _to_json(s: Server) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": s.name,
        "project_id": s.project_id,
        "user_id": s.user_id,
        "status": s.status,
        "task_state": s.task_state,
        "image_id": s.image_id,
        "flavor_ref": s.flavor_ref,
        "flavor": None,
    }
    for k in _TIMES:
        t = getattr(s, k)
        out[k] = t.isoformat() if t is not None else None
    if s.flavor is not None:
        f = s.flavor
        out["flavor"] = [f.id, f.name, f.vcpus, f.ram_mb, f.disk_gb, f.ephemeral_gb, f.extra_specs]
    return out


def _from_json(sid: str, d: dict[str, Any]) -> Server:
    times = {k: datetime.fromisoformat(d[k]) if d[k] is not None else None for k in _TIMES}
    created = times.pop("created")
    if created is None or any(t is not None and t.tzinfo is None for t in times.values()):
        raise ValueError(f"server {sid}: bad times")
    f = d["flavor"]
    flavor = None
    if f is not None:
        fid, name, vcpus, ram, disk, eph, specs = f
        flavor = Flavor(
            None if fid is None else str(fid),
            str(name),
            int(vcpus),
            int(ram),
            int(disk),
            int(eph),
            {str(k): str(v) for k, v in specs.items()},
        )
    return Server(
        id=sid,
        name=str(d["name"]),
        project_id=str(d["project_id"]),
        user_id=d["user_id"],
        status=str(d["status"]),
        created=created,
        terminated=times["terminated"],
        launched=times["launched"],
        updated=times["updated"],
        task_state=d["task_state"],
        image_id=d["image_id"],
        flavor=flavor,
        flavor_ref=d["flavor_ref"],
    )


class ServerCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, project_id: str) -> Path | None:
        if not _SAFE_ID.match(project_id) or project_id.startswith("."):
            return None
        return self.root / f"{project_id}.json"

    def has(self, project_id: str) -> bool:
        """Whether there is a listing file for the project (usable or not)."""
        path = self._path(project_id)
        return path is not None and path.exists()

    def load(self, project_id: str) -> Listing | None:
        """The last listing of the project; ``None`` when there is none usable."""
        path = self._path(project_id)
        if path is None:
            return None
        try:
            doc = load_versioned(path, "accounting server list", VERSION, MIGRATIONS)
            if doc is None:
                return None
            servers = {str(k): _from_json(str(k), v) for k, v in doc["servers"].items()}
            listed_at = datetime.fromisoformat(doc["listed_at"])
            full_at = datetime.fromisoformat(doc["full_at"])
            if listed_at.tzinfo is None or full_at.tzinfo is None:
                return None
            if any(s.project_id != project_id for s in servers.values()):
                return None
            return Listing(listed_at, full_at, servers)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def save(
        self, project_id: str, servers: Iterable[Server], listed_at: datetime, full_at: datetime
    ) -> bool:
        """Keep the servers not deleted of a listing that began at ``listed_at``."""
        path = self._path(project_id)
        if path is None:
            return False
        alive = {
            s.id: _to_json(s) for s in servers if s.terminated is None and s.status != "DELETED"
        }
        doc = {
            "listed_at": listed_at.isoformat(),
            "full_at": full_at.isoformat(),
            "servers": dict(sorted(alive.items())),
        }
        dump_versioned(path, doc, VERSION, separators=(",", ":"))
        return True

    def prune(self, keep: Iterable[str]) -> None:
        """Remove the files of projects not in ``keep`` (no longer accounted)."""
        wanted = set(keep)
        try:
            files = sorted(self.root.glob("*.json"))
        except OSError:
            return
        for f in files:
            if f.stem not in wanted:
                with contextlib.suppress(OSError):
                    f.unlink()
