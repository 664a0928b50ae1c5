"""Where the repository ends: tests may read only files inside it (or of the machine)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_PARENT = str(REPO.parent) + os.sep
_REPO = str(REPO) + os.sep


def outside_repository(path: str) -> bool:
    """True for a path beside the repository (under its parent folder, not inside it)."""
    full = os.path.abspath(path)
    return full.startswith(_PARENT) and not (full + os.sep).startswith(_REPO)
