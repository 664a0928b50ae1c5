"""Suite-wide guard: a test may read only files of this repository or of the machine.

A user's clone has nothing beside it (CI has ``../shared`` there, a user does not), so any
file a test opens under the repository's parent folder but outside the repository itself
fails that test. The audit hook sees every ``open()`` in the pytest process; subprocesses
are covered by the static check in ``tests/unit/test_project_rooms.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from support.repo_paths import outside_repository

_outside: list[str] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if isinstance(path, str) and outside_repository(path):
        _outside.append(path)


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def _reads_only_the_repository() -> Iterator[None]:
    start = len(_outside)
    yield
    read = _outside[start:]
    del _outside[start:]
    if read:
        pytest.fail(f"the test read files outside the repository: {sorted(set(read))}")
