"""A run lock per job, shared by cron, the scheduler and manual runs.

Uses ``flock`` on ``<lock_dir>/<job>.lock``: the kernel releases it when the
process dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from .errors import LockHeldError


class RunLock:
    """Exclusive lock for one job. ``wait`` seconds to wait for a running job (0 = fail fast)."""

    def __init__(self, lock_dir: str | os.PathLike[str], job: str, *, wait: float = 0.0):
        self.path = Path(lock_dir) / f"{job.replace(' ', '-')}.lock"
        self.job = job
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise LockHeldError(
                        f"another '{self.job}' run is in progress (pid {holder}, lock {self.path})"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
