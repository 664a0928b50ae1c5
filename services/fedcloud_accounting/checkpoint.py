"""Per-project checkpoints: the end of the last window whose messages are safely queued.

``<state_dir>/accounting/checkpoints.json``::

    {"version": 1, "projects": {"<project id>": "2024-05-01T12:00:00Z", ...}}

Written atomically (temp file + rename). A checkpoint only moves forward. Versioned
(:mod:`fedcloud_core.statefile`): an older file is migrated when loaded, a newer one refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fedcloud_core.statefile import JsonMigration, dump_versioned, load_versioned

from .errors import AccountingError
from .extract.facts import parse_time

VERSION = 1
MIGRATIONS: dict[int, JsonMigration] = {}  # version n -> n + 1


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CheckpointStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, datetime]:
        """Project id -> checkpoint; empty when there is no file yet."""
        try:
            doc = load_versioned(
                self.path, "accounting checkpoints", VERSION, MIGRATIONS, persist=True
            )
        except (OSError, ValueError) as exc:
            raise AccountingError(
                f"{self.path}: unreadable checkpoint file ({exc}); fix or remove it "
                "(without it the next run extracts the first-run window again)"
            ) from None
        if doc is None:
            return {}
        try:
            out = {}
            for project, text in doc["projects"].items():
                when = parse_time(text)
                if when is None:
                    raise ValueError(f"empty checkpoint for {project}")
                out[str(project)] = when
            return out
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise AccountingError(f"{self.path}: invalid checkpoint file: {exc}") from None

    def advance(self, project_id: str, when: datetime) -> bool:
        """Move one project's checkpoint to ``when`` (never backwards); True if it moved."""
        current = self.load()
        if project_id in current and current[project_id] >= when:
            return False
        current[project_id] = when
        doc = {"projects": {k: iso(v) for k, v in sorted(current.items())}}
        dump_versioned(self.path, doc, VERSION, indent=2, sort_keys=True)
        return True
