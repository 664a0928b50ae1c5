"""Instance actions kept between runs, so unchanged servers cost no API call.

A server's state history (``os-instance-actions``) is the one thing the extractor reads
per server: on a site with thousands of long-running servers it is most of a run's
API calls. The history only grows through state changes, and every state change
(suspend, stop, shelve, delete, ...) saves the instance, which moves the server's
``updated`` time. So the actions read once stay right for as long as the server shows
the same ``updated`` value.

``<state_dir>/accounting/actions/<project id>.json``::

    {"version": 1, "servers": {"<server id>": {"updated": "2026-11-01T10:00:00Z",
                                                "actions": [["create", "2026-..."], ...]}}}

Nova gives ``updated`` to the second, and its clock may differ from ours: a history
is kept only when it was read at least :data:`SETTLED` after the server's last
update, so a change in the same second (or hidden by clock skew) is never missed.
The cache is an optimisation only: a missing, unreadable or foreign file just means
the actions are read from the API again; a file that cannot be written is reported
as a warning. A file of a newer state version (a rollback without restoring the state)
is refused like every versioned state (:mod:`fedcloud_core.statefile`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from fedcloud_core.statefile import JsonMigration, dump_versioned, load_versioned

from .checkpoint import iso
from .extract.facts import Action, Server

VERSION = 1
MIGRATIONS: dict[int, JsonMigration] = {}  # version n -> n + 1
SETTLED = timedelta(minutes=5)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class ActionCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, project_id: str) -> Path | None:
        if not _SAFE_ID.match(project_id) or project_id.startswith("."):
            return None  # not a usable file name: no cache for this project
        return self.root / f"{project_id}.json"

    def load(self, project_id: str) -> dict[str, tuple[str, list[Action]]]:
        """Server id -> (its ``updated`` when read, its actions); empty when unusable."""
        path = self._path(project_id)
        if path is None:
            return {}
        try:
            doc = load_versioned(path, "accounting action cache", VERSION, MIGRATIONS)
            if doc is None:
                return {}
            out: dict[str, tuple[str, list[Action]]] = {}
            for sid, entry in doc["servers"].items():
                actions = [
                    Action(name=str(name), time=datetime.fromisoformat(when))
                    for name, when in entry["actions"]
                ]
                out[str(sid)] = (str(entry["updated"]), actions)
            return out
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    @staticmethod
    def hits(
        cached: Mapping[str, tuple[str, list[Action]]], servers: Iterable[Server]
    ) -> dict[str, list[Action]]:
        """The cached histories still valid: same server, same ``updated``."""
        out = {}
        for s in servers:
            entry = cached.get(s.id)
            if entry is not None and s.updated is not None and entry[0] == iso(s.updated):
                out[s.id] = entry[1]
        return out

    def save(
        self,
        project_id: str,
        servers: Iterable[Server],
        actions: Mapping[str, Sequence[Action]],
        read_at: datetime,
    ) -> bool:
        """Keep the histories of ``servers`` (only those; others are dropped).

        ``read_at``: a time before the actions were read. Histories of servers updated
        less than :data:`SETTLED` before it are not kept. Returns False when there is
        no usable file name for the project.
        """
        path = self._path(project_id)
        if path is None:
            return False
        entries = {}
        for s in servers:
            if s.id not in actions or s.updated is None or read_at - s.updated < SETTLED:
                continue
            entries[s.id] = {
                "updated": iso(s.updated),
                "actions": [[a.name, a.time.isoformat()] for a in actions[s.id]],
            }
        doc = {"servers": dict(sorted(entries.items()))}
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
                try:
                    f.unlink()
                except OSError:
                    pass  # an optimisation only: left for the next run
