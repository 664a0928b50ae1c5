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
reported and treated as empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from fedcloud_core.files import atomic_write

from .checkpoint import iso
from .extract.facts import parse_time

VERSION = 1


class FinalsStore:
    """Project id -> {server id: deletion time} of final records already queued."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, datetime]]:
        """Empty when the file is missing; ValueError when it is unreadable or invalid."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable ({exc})") from None
        try:
            if doc.get("version") != VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
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
            "version": VERSION,
            "projects": {
                p: {sid: iso(t) for sid, t in sorted(v.items())} for p, v in sorted(doc.items())
            },
        }
        atomic_write(self.path, json.dumps(text, indent=2, sort_keys=True) + "\n")
