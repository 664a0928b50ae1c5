"""Commands that are not scheduled jobs (e.g. ``imagelist sign``): no lock, no report."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    main: Callable[[argparse.Namespace], int]  # returns the exit code
    description: str | None = None
