"""A one-line progress display on a terminal (only when stderr is a TTY)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    def __init__(
        self, *, stream: TextIO | None = None, enabled: bool | None = None, interval: float = 0.5
    ):
        self.stream = stream or sys.stderr
        self.enabled = bool(self.stream.isatty()) if enabled is None else enabled
        self.interval = interval
        self.total = 0
        self.done = 0
        self.active: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last = 0.0
        self._started = time.monotonic()

    def expect(self, n: int | None) -> None:
        with self._lock:
            self.total += n or 0

    def update(self, name: str, n: int) -> None:
        with self._lock:
            self.done += n
            self.active[name] = self.active.get(name, 0) + n
            now = time.monotonic()
            if not self.enabled or now - self._last < self.interval:
                return
            self._last = now
            rate = self.done / max(now - self._started, 1e-6)
            total = f"/{_fmt(self.total)}" if self.total else ""
            self.stream.write(
                f"\rimages: {_fmt(self.done)}{total} at {_fmt(rate)}/s, "
                f"{len(self.active)} active   "
            )
            self.stream.flush()

    def finish(self, name: str) -> None:
        with self._lock:
            self.active.pop(name, None)
            if self.enabled and not self.active:
                self.stream.write("\n")
                self.stream.flush()
