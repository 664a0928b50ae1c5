"""Persistent state of the replicator (SQLite in the cache directory).

Per source: the last accepted list version and content hash. Per image: the digest
of the cached file, the file that goes to Glance (after conversion) and its format,
the Glance id, and how many download attempts the current digest took. Per shared
Glance image: the member projects the last run made accepted members, and when (an
unchanged run lists the members only where this differs from what is wanted now, or
is older than ``images.members_recheck_hours``). Per source: what the last run saw of
its images in Glance (``glance_scans``), so that the next one lists only what changed
since (``images.glance_full_scan_hours``).

Versioned with ``PRAGMA user_version`` (:mod:`fedcloud_core.statefile`): an older
database is migrated when opened, a newer one refused untouched.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedcloud_core.statefile import SqlMigration, sqlite_has_tables, sqlite_version

SCHEMA_VERSION = 3
MEMBERS_TABLE = """
CREATE TABLE IF NOT EXISTS members (
    glance_id TEXT PRIMARY KEY, source TEXT NOT NULL, projects TEXT NOT NULL,
    checked_at TEXT NOT NULL
);
"""
SCANS_TABLE = """
CREATE TABLE IF NOT EXISTS glance_scans (
    source TEXT PRIMARY KEY, scope TEXT NOT NULL, full_at TEXT NOT NULL, since TEXT NOT NULL,
    images TEXT NOT NULL
);
"""


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Version 2 adds the members table (empty: the next run lists every shared image once)."""
    db.execute(MEMBERS_TABLE)


def _v2_to_v3(db: sqlite3.Connection) -> None:
    """Version 3 adds the Glance scans (empty: the next run lists every source in full)."""
    db.execute(SCANS_TABLE)


MIGRATIONS: dict[int, SqlMigration] = {1: _v1_to_v2, 2: _v2_to_v3}  # version n -> n + 1
SCHEMA = (
    MEMBERS_TABLE
    + SCANS_TABLE
    + """
CREATE TABLE IF NOT EXISTS lists (
    source TEXT PRIMARY KEY, version TEXT NOT NULL, content_hash TEXT NOT NULL,
    list_id TEXT, accepted_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    source TEXT NOT NULL, identifier TEXT NOT NULL, image_hash TEXT NOT NULL,
    path TEXT, upload_path TEXT, upload_format TEXT, upload_size INTEGER, virtual_size INTEGER,
    glance_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (source, identifier)
);
"""
)


@dataclass
class ListState:
    version: str
    content_hash: str
    list_id: str | None


@dataclass
class ImageState:
    source: str
    identifier: str
    image_hash: str
    path: str | None = None
    upload_path: str | None = None
    upload_format: str | None = None
    upload_size: int | None = None
    virtual_size: int | None = None
    glance_id: str | None = None
    attempts: int = 0
    last_error: str | None = None

    def cached(self, image_hash: str) -> bool:
        """The prepared file for this digest is on disk (checked by size, no re-hashing)."""
        if self.image_hash != image_hash or not self.upload_path or self.upload_size is None:
            return False
        p = Path(self.upload_path)
        try:
            return p.is_file() and p.stat().st_size == self.upload_size
        except OSError:
            return False


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class ScanState:
    """What a run saw of one source's images in Glance (plain dicts, as listed).

    ``scope``: the Glance endpoint, project and tag it was listed with (another scope is
    not used); ``full_at``: when the last complete listing began; ``since``: where the
    next run's listing of changes starts (ISO 8601 UTC, Glance's ``updated_at`` form)."""

    scope: str
    full_at: datetime
    since: str
    managed: list[dict[str, Any]]
    foreign: list[dict[str, Any]]


@dataclass
class MembersState:
    projects: tuple[str, ...]
    checked_at: datetime


class State:
    """Opened lazily (the constructor does no I/O)."""

    def __init__(self, path: Path):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._batch: list[int] | None = None  # [writes since the last commit, commit every]

    @contextmanager
    def batch(self, every: int = 25) -> Iterator[None]:
        """Group the writes inside into transactions of ``every`` writes (each commit is an
        fsync: one per image would dominate a first run of many small images). A crash
        loses at most the last group; the next run finds those images in Glance and the
        cached files by their digest."""
        if self._batch is not None:
            yield
            return
        self._batch = [0, max(1, every)]
        try:
            yield
        finally:
            self._batch = None
            if self._db is not None and self._db.in_transaction:
                self._db.commit()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        if self._batch is None:
            with self.db:
                yield
            return
        db = self.db
        yield  # a failed statement undoes itself; the group's other writes stay
        self._batch[0] += 1
        if self._batch[0] >= self._batch[1]:
            db.commit()
            self._batch[0] = 0

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            try:
                sqlite_version(
                    db,
                    path=self.path,
                    kind="images state database",
                    current=SCHEMA_VERSION,
                    migrations=MIGRATIONS,
                    fresh=not sqlite_has_tables(db),
                )
                db.executescript(SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def open(self) -> State:
        """Open (and migrate) the database now: a newer state is refused before any work."""
        _ = self.db
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def last_list(self, source: str) -> ListState | None:
        row = self.db.execute(
            "SELECT version, content_hash, list_id FROM lists WHERE source=?", (source,)
        ).fetchone()
        return ListState(*row) if row else None

    def accept_list(
        self, source: str, version: str, content_hash: str, list_id: str | None
    ) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO lists(source, version, content_hash, list_id, accepted_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(source) DO UPDATE SET version=excluded.version, "
                "content_hash=excluded.content_hash, list_id=excluded.list_id, accepted_at=excluded.accepted_at",
                (source, version, content_hash, list_id, _now()),
            )

    def image(self, source: str, identifier: str) -> ImageState | None:
        row = self.db.execute(
            "SELECT source, identifier, image_hash, path, upload_path, upload_format, upload_size, "
            "virtual_size, glance_id, attempts, last_error FROM images WHERE source=? AND identifier=?",
            (source, identifier),
        ).fetchone()
        return ImageState(*row) if row else None

    def images(self, source: str) -> list[ImageState]:
        rows = self.db.execute(
            "SELECT source, identifier, image_hash, path, upload_path, upload_format, upload_size, "
            "virtual_size, glance_id, attempts, last_error FROM images WHERE source=?",
            (source,),
        ).fetchall()
        return [ImageState(*r) for r in rows]

    def save_image(self, st: ImageState) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO images(source, identifier, image_hash, path, upload_path, upload_format, "
                "upload_size, virtual_size, glance_id, attempts, last_error, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(source, identifier) DO UPDATE SET "
                "image_hash=excluded.image_hash, path=excluded.path, upload_path=excluded.upload_path, "
                "upload_format=excluded.upload_format, upload_size=excluded.upload_size, "
                "virtual_size=excluded.virtual_size, glance_id=excluded.glance_id, "
                "attempts=excluded.attempts, last_error=excluded.last_error, updated_at=excluded.updated_at",
                (
                    st.source,
                    st.identifier,
                    st.image_hash,
                    st.path,
                    st.upload_path,
                    st.upload_format,
                    st.upload_size,
                    st.virtual_size,
                    st.glance_id,
                    st.attempts,
                    st.last_error,
                    _now(),
                ),
            )

    def forget_image(self, source: str, identifier: str) -> None:
        with self._tx():
            self.db.execute(
                "DELETE FROM images WHERE source=? AND identifier=?", (source, identifier)
            )

    def members(self, source: str) -> dict[str, MembersState]:
        """Glance image id -> the members the last run left accepted, for ``source``."""
        rows = self.db.execute(
            "SELECT glance_id, projects, checked_at FROM members WHERE source=?", (source,)
        ).fetchall()
        return {
            gid: MembersState(
                tuple(p for p in projects.split(",") if p), datetime.fromisoformat(at)
            )
            for gid, projects, at in rows
        }

    def save_members(self, source: str, glance_id: str, projects: list[str]) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO members(glance_id, source, projects, checked_at) VALUES (?,?,?,?) "
                "ON CONFLICT(glance_id) DO UPDATE SET source=excluded.source, "
                "projects=excluded.projects, checked_at=excluded.checked_at",
                (glance_id, source, ",".join(sorted(projects)), _now()),
            )

    def forget_members(self, source: str, keep: set[str]) -> None:
        """Drop the member records of ``source``'s images other than ``keep`` (Glance ids)."""
        with self._tx():
            for (gid,) in self.db.execute(
                "SELECT glance_id FROM members WHERE source=?", (source,)
            ).fetchall():
                if gid not in keep:
                    self.db.execute("DELETE FROM members WHERE glance_id=?", (gid,))

    def glance_scan(self, source: str) -> ScanState | None:
        row = self.db.execute(
            "SELECT scope, full_at, since, images FROM glance_scans WHERE source=?", (source,)
        ).fetchone()
        if not row:
            return None
        try:
            images = json.loads(row[3])
            return ScanState(
                row[0],
                datetime.fromisoformat(row[1]),
                row[2],
                list(images["managed"]),
                list(images["foreign"]),
            )
        except (ValueError, KeyError, TypeError):  # unreadable: list in full, as if none
            return None

    def save_glance_scan(self, source: str, scan: ScanState) -> None:
        images = json.dumps({"managed": scan.managed, "foreign": scan.foreign}, default=str)
        with self._tx():
            self.db.execute(
                "INSERT INTO glance_scans(source, scope, full_at, since, images) VALUES (?,?,?,?,?) "
                "ON CONFLICT(source) DO UPDATE SET scope=excluded.scope, full_at=excluded.full_at, "
                "since=excluded.since, images=excluded.images",
                (source, scan.scope, scan.full_at.isoformat(), scan.since, images),
            )

    def forget_glance_scan(self, source: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM glance_scans WHERE source=?", (source,))
