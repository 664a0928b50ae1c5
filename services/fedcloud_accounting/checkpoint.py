"""Per-project checkpoints: the end of the last window whose messages are safely queued.

``<state_dir>/accounting/checkpoints.json``::

    {"version": 1, "projects": {"<project id>": "2024-05-01T12:00:00Z", ...}}

Written atomically (temp file + rename). A checkpoint only moves forward.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fedcloud_core.files import atomic_write

from .errors import AccountingError
from .extract.facts import parse_time

VERSION = 1


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CheckpointStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, datetime]:
        """Project id -> checkpoint; empty when there is no file yet."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AccountingError(
                f"{self.path}: unreadable checkpoint file ({exc}); fix or remove it "
                "(without it the next run extracts the first-run window again)"
            ) from None
        try:
            if doc.get("version") != VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
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
        doc = {"version": VERSION, "projects": {k: iso(v) for k, v in sorted(current.items())}}
        atomic_write(self.path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return True
