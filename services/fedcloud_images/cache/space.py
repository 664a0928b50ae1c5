"""Free space shared by the writers of the image cache: a process-wide reservation ledger.

Parallel downloads (and conversions) each check the free space before they write; without
a ledger each sees the same free bytes and together they fill the disk. A writer holds a
:class:`Reservation` of the bytes it still has to write; a check counts the free bytes of
the filesystem minus what the *other* writers of that filesystem still hold, and resizes
the writer's own reservation in the same locked step, so two checks cannot both take the
same space. A writer lowers its reservation as it writes (its bytes are then on disk, no
longer free) and releases it when it ends, whatever the outcome.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

# errno values that mean "the filesystem (or the quota) is full"
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(exc: BaseException) -> bool:
    """True for an OSError that says the disk or the quota is full."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def disk_free(where: Path) -> int:
    return shutil.disk_usage(where).free


class NoRoom(Exception):
    """The bytes asked for do not fit (the message names the directory and the numbers)."""

    def __init__(self, where: Path, free: int, reserved: int, need: int, keep_free: int):
        self.where, self.free, self.reserved = where, free, reserved
        self.need, self.keep_free = need, keep_free
        super().__init__(
            f"not enough free space in {where}: {free} bytes free"
            + (f" of which {reserved} reserved by other downloads in progress" if reserved else "")
            + f", {need} needed plus {keep_free} kept free"
        )


class Reservation:
    """Bytes one writer may still write to one filesystem (0 until checked)."""

    def __init__(self, ledger: SpaceLedger, dev: int):
        self.ledger = ledger
        self.dev = dev
        self.remaining = 0  # set by the writer as it writes (a plain int: no lock needed)

    def release(self) -> None:
        self.ledger._drop(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SpaceLedger:
    def __init__(self) -> None:
        self._lock = threading.RLock()  # free_bytes may ask reserved() (tests)
        self._held: dict[int, list[Reservation]] = {}

    def open(self, where: Path) -> Reservation:
        """A reservation of 0 bytes on ``where``'s filesystem; size it with :meth:`claim`."""
        r = Reservation(self, os.stat(where).st_dev)
        with self._lock:
            self._held.setdefault(r.dev, []).append(r)
        return r

    def reserved(self, where: Path, *, exclude: Reservation | None = None) -> int:
        """Bytes the writers of ``where``'s filesystem (but ``exclude``) still hold."""
        dev = os.stat(where).st_dev
        with self._lock:
            return sum(max(0, r.remaining) for r in self._held.get(dev, []) if r is not exclude)

    def claim(
        self,
        res: Reservation,
        where: Path,
        need: int,
        *,
        keep_free: int = 0,
        free_bytes: Callable[[Path], int] = disk_free,
    ) -> None:
        """Size ``res`` to ``need`` bytes if they fit besides the others' reservations and
        ``keep_free``; else raise :class:`NoRoom` (``res`` is then left at 0)."""
        with self._lock:
            free = free_bytes(where)
            others = sum(max(0, r.remaining) for r in self._held.get(res.dev, []) if r is not res)
            if free - others < need + keep_free:
                res.remaining = 0
                raise NoRoom(where, free, others, need, keep_free)
            res.remaining = need

    def _drop(self, res: Reservation) -> None:
        with self._lock:
            held = self._held.get(res.dev, [])
            if res in held:
                held.remove(res)
            if not held:
                self._held.pop(res.dev, None)
            res.remaining = 0


LEDGER = SpaceLedger()  # the process's: every download and conversion of the cache uses it
