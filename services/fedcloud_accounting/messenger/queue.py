"""The outgoing queue: one dirq ``QueueSimple`` per record type, as the real ssmsend reads it.

``<root>/<name>/<8 hex minute>/<14 hex element>``, written as ``.tmp`` and linked
into place by dirq itself. After dirq's add the element is fsynced (file and
directory) so that "in the queue" means "on disk" before a checkpoint moves.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol

from dirq.QueueSimple import QueueSimple


class QueueWriter(Protocol):
    def add(self, queue: str, body: bytes) -> str:
        """Store one message durably in ``queue``; return its element name. Raises OSError."""
        ...


def _fsync(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirqWriter:
    """Writes messages into ``<root>/<queue>`` with dirq. The queues are opened on first use."""

    def __init__(self, root: str | os.PathLike[str], *, umask: int = 0o022):
        self.root = Path(root)
        self.umask = umask
        self._queues: dict[str, QueueSimple] = {}

    def _queue(self, name: str) -> QueueSimple:
        if name not in self._queues:
            self._queues[name] = QueueSimple(str(self.root / name), umask=self.umask)
        return self._queues[name]

    def add(self, queue: str, body: bytes) -> str:
        q = self._queue(queue)
        name: str = q.add(body)
        path = os.path.join(q.path, name)
        _fsync(path)
        with contextlib.suppress(OSError):
            _fsync(os.path.dirname(path), directory=True)
        return name
