"""Image sources: each turns a remote catalogue into a verified :class:`ImageList`.

A source raises :class:`~fedcloud_images.errors.ListRejected` when its list cannot be
trusted; the sync then changes nothing for it.
"""

from __future__ import annotations

from typing import Protocol

from ..model import ImageList


class Source(Protocol):
    name: str  # the subscription name (scope of cleanup)

    def fetch(self) -> ImageList:
        """Fetch and verify the current list. Raises ListRejected."""
        ...
