"""Versioned state: every state file and database says which format it holds.

A site upgrades in place (new images, same volumes), and may roll back. So each JSON
state file carries ``"version": N`` and each SQLite database ``PRAGMA user_version = N``:

- a state of an older version is migrated forward when it is opened (``migrations[n]``
  turns version ``n`` into ``n + 1``); files and databases of the release before versioned
  state have no version and count as version 1;
- a state of a newer version than the code is refused with :class:`StateVersionError`
  (a permanent error naming the file and both versions) before anything is read or
  written, so an old release never half-understands or overwrites newer state.

A JSON file migrated on load is written back in the new version only if the caller asks
(``persist=True``); the file as it was is kept next to it as ``<name>.v<old>`` for a
rollback. Databases are migrated in one transaction.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import StateVersionError
from .files import atomic_write

log = logging.getLogger(__name__)

VERSION_KEY = "version"
UNVERSIONED = 1  # what a state written before versioned state counts as

JsonMigration = Callable[[dict[str, Any]], dict[str, Any]]
SqlMigration = Callable[[sqlite3.Connection], None]


def _version_of(value: Any, path: Path, kind: str) -> int:
    if value is None:
        return UNVERSIONED
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path}: {kind}: not a state version: {value!r}")
    return value


def _check(path: Path, kind: str, found: int, current: int, migrations: Mapping[int, Any]) -> None:
    if found > current or any(v not in migrations for v in range(found, current)):
        raise StateVersionError(str(path), kind, found, current)


def migrate(
    doc: dict[str, Any],
    *,
    path: Path,
    kind: str,
    current: int,
    migrations: Mapping[int, JsonMigration] | None = None,
) -> tuple[dict[str, Any], int]:
    """``doc`` in version ``current`` and the version it had; refuses a newer one."""
    steps = migrations or {}
    found = _version_of(doc.get(VERSION_KEY), path, kind)
    _check(path, kind, found, current, steps)
    for v in range(found, current):
        doc = steps[v](dict(doc))
        doc[VERSION_KEY] = v + 1
    doc[VERSION_KEY] = current
    return doc, found


def load_versioned(
    path: str | Path,
    kind: str,
    current: int,
    migrations: Mapping[int, JsonMigration] | None = None,
    *,
    persist: bool = False,
) -> dict[str, Any] | None:
    """The JSON object in ``path`` migrated to ``current``; None when there is no file.

    Raises :class:`StateVersionError` for a newer version (or one without a migration
    path), ``ValueError`` / ``OSError`` when the file is not a readable JSON object (the
    caller decides whether that is fatal). ``persist``: write a migrated document back
    (after keeping the old file as ``<name>.v<old>``).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: {kind}: expected a JSON object, got {type(doc).__name__}")
    doc, found = migrate(doc, path=p, kind=kind, current=current, migrations=migrations)
    if found != current:
        log.info("%s: %s migrated from state version %d to %d", p, kind, found, current)
        if persist:
            keep = p.with_name(f"{p.name}.v{found}")
            if not keep.exists():
                shutil.copy2(p, keep)
            dump_versioned(p, doc, current, indent=2, sort_keys=True)
    return doc


def dump_versioned(
    path: str | Path, doc: Mapping[str, Any], current: int, *, mode: int = 0o644, **dumps: Any
) -> None:
    """Write ``doc`` atomically as version ``current`` (``dumps``: ``json.dumps`` options)."""
    out = {**doc, VERSION_KEY: current}
    atomic_write(path, json.dumps(out, **dumps) + "\n", mode=mode)


def sqlite_version(
    db: sqlite3.Connection,
    *,
    path: str | Path,
    kind: str,
    current: int,
    migrations: Mapping[int, SqlMigration] | None = None,
    fresh: bool,
) -> int:
    """Bring the database to ``PRAGMA user_version = current``; returns the version found.

    ``fresh``: the database had no tables before the caller created its schema (so it is
    stamped ``current``). An existing database with ``user_version`` 0 was written before
    versioned state and counts as version 1. A newer one is refused untouched.
    """
    steps = migrations or {}
    stored = int(db.execute("PRAGMA user_version").fetchone()[0])
    found = current if fresh and stored == 0 else (stored or UNVERSIONED)
    _check(Path(path), kind, found, current, steps)
    if stored == current:
        return found
    db.execute("BEGIN IMMEDIATE")  # the migration steps and the new version, or nothing
    try:
        for v in range(found, current):
            steps[v](db)
        db.execute(f"PRAGMA user_version = {int(current)}")
    except BaseException:
        db.rollback()
        raise
    db.commit()
    if found != current:
        log.info("%s: %s migrated from state version %d to %d", path, kind, found, current)
    return found


def sqlite_has_tables(db: sqlite3.Connection) -> bool:
    """Does the database hold any table yet (False: a new, empty file)?"""
    return (
        db.execute("SELECT 1 FROM sqlite_master WHERE type='table' LIMIT 1").fetchone() is not None
    )
