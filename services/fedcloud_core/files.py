"""Durable file hand-offs: temp file in the same directory, fsync, atomic rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], *, mode: int = 0o644, binary: bool = False
) -> Iterator[IO]:
    """Yield a file object; on clean exit its content replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (all or nothing)."""
    with atomic_writer(path, mode=mode, binary=isinstance(data, bytes)) as fh:
        fh.write(data)
