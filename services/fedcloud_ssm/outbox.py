"""The outgoing queue: a ``dirq`` ``QueueSimple`` written by the accounting extractor.

Layout (shared with the real ssmsend): ``<outgoing>/<name>/<8 hex>/<14 hex>``, locks are
``.lck`` hard links, temporary files ``.tmp``. Messages that cannot be sent are moved
to ``<outgoing>/<name>.rejected/`` with a ``.reason`` file next to them.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dirq.QueueSimple import QueueSimple

from fedcloud_core.files import atomic_write

log = logging.getLogger(__name__)

STALE_TEMP = 300  # seconds before a .tmp file is removed by purge
STALE_LOCK = 600  # seconds before a .lck is released by purge


@dataclass(frozen=True)
class Rejected:
    message: Path
    reason: Path


class Outbox:
    """One outgoing queue. The constructor does no I/O; :meth:`open` creates the queue."""

    def __init__(self, path: Path, name: str):
        self.path = path
        self.name = name
        self._q: QueueSimple | None = None

    @property
    def rejected_dir(self) -> Path:
        return self.path.parent / f"{self.path.name}.rejected"

    def open(self) -> Outbox:
        if self._q is None:
            self._q = QueueSimple(str(self.path))
        return self

    @property
    def q(self) -> QueueSimple:
        if self._q is None:
            self.open()
        assert self._q is not None
        return self._q

    def names(self) -> list[str]:
        """The element names now in the queue (oldest first), locked or not."""
        return list(iter(self.q))

    def count(self) -> int:
        return int(self.q.count())

    def lock(self, name: str) -> bool:
        """True when we hold the element now; False when another process holds it or it went away."""
        return bool(self.q.lock(name, permissive=True))

    def read(self, name: str) -> bytes:
        data = self.q.get(name)
        return data if isinstance(data, bytes) else str(data).encode("utf-8")

    def remove(self, name: str) -> None:
        self.q.remove(name)

    def unlock(self, name: str) -> None:
        self.q.unlock(name, permissive=True)

    def set_aside(self, name: str, reason: str) -> Rejected:
        """Move the locked element ``name`` to the rejected folder with a reason file."""
        base = name.replace("/", "-")
        target = self.rejected_dir / base
        note = self.rejected_dir / f"{base}.reason"
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
        atomic_write(
            note, f"queue: {self.name}\nelement: {name}\nset aside: {stamp}\nreason: {reason}\n"
        )
        src = Path(self.path) / name
        try:
            os.link(src, target)
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            target.write_bytes(src.read_bytes())
        self.remove(name)
        log.warning("queue %s: message %s set aside in %s: %s", self.name, name, target, reason)
        return Rejected(target, note)

    def purge(self, maxtemp: int = STALE_TEMP, maxlock: int = STALE_LOCK) -> int:
        """Release stale locks, delete stale temporary files and empty directories.

        Returns how many stale files were found (and handled).
        """
        stale = self._stale(maxtemp, maxlock)
        self.q.purge(maxtemp=maxtemp, maxlock=maxlock)
        return stale

    def _stale(self, maxtemp: int, maxlock: int) -> int:
        now = datetime.now(UTC).timestamp()
        n = 0
        for sub in self.path.iterdir() if self.path.is_dir() else ():
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                try:
                    age = now - f.stat().st_mtime
                except FileNotFoundError:
                    continue
                if (f.suffix == ".tmp" and maxtemp and age > maxtemp) or (
                    f.suffix == ".lck" and maxlock and age > maxlock
                ):
                    n += 1
        return n
