"""Final records already queued, so that the changes-since overlap emits none of them twice.

Each run asks Nova for the servers deleted since the checkpoint *minus a safety margin*
(``accounting.changes_since_margin_minutes``): with the appliance clock ahead of Nova's, a
server deleted just before the checkpoint (by Nova's clock) was still alive for the
previous run and would otherwise never get its final record. A server deleted inside
that margin may also have had its final record queued by the previous run already;
this file remembers those, per project, so the overlap adds only the missing ones.

``<state_dir>/accounting/finals.json``::

    {"version": 1, "projects": {"<project id>": {"<server id>": "<deleted at>", ...}}}

Only servers deleted within the margin before a window end are kept (the next run's
overlap cannot reach older ones). Written atomically, just before the project's
checkpoint moves. Losing the file costs at most one duplicate final record per server
of the last margin (APEL keeps the last record of a VMUUID): an unreadable file is
reported and treated as empty. The version is the core's versioned state
(:mod:`fedcloud_core.statefile`): a file of a newer release is refused
(``StateVersionError``, the run fails) and never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from fedcloud_core.statefile import JsonMigration, dump_versioned, load_versioned

from .checkpoint import iso
from .extract.facts import parse_time

VERSION = 1
MIGRATIONS: dict[int, JsonMigration] = {}  # version n -> n + 1
KIND = "accounting final records"


class FinalsStore:
    """Project id -> {server id: deletion time} of final records already queued."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, datetime]]:
        """Empty when the file is missing; ValueError when it is unreadable or invalid;
        StateVersionError (not a ValueError) when a newer release wrote it."""
        try:
            doc = load_versioned(self.path, KIND, VERSION, MIGRATIONS, persist=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable ({exc})") from None
        if doc is None:
            return {}
        try:
            out: dict[str, dict[str, datetime]] = {}
            for project, servers in doc["projects"].items():
                entries = {}
                for sid, text in servers.items():
                    when = parse_time(text)
                    if when is None:
                        raise ValueError(f"empty time for server {sid}")
                    entries[str(sid)] = when
                out[str(project)] = entries
            return out
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{self.path}: invalid ({exc})") from None

    def save(
        self,
        project_id: str,
        sent: Mapping[str, datetime],
        keep_after: datetime,
        known: Mapping[str, Mapping[str, datetime]],
    ) -> None:
        """Record ``sent`` for one project, dropping its entries deleted before ``keep_after``."""
        doc = {p: dict(v) for p, v in known.items()}
        merged = {**doc.get(project_id, {}), **sent}
        kept = {sid: t for sid, t in merged.items() if t >= keep_after}
        if kept:
            doc[project_id] = kept
        else:
            doc.pop(project_id, None)
        if not doc and not self.path.exists():
            return
        text = {
            "projects": {
                p: {sid: iso(t) for sid, t in sorted(v.items())} for p, v in sorted(doc.items())
            },
        }
        dump_versioned(self.path, text, VERSION, indent=2, sort_keys=True)
