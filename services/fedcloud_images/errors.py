"""Errors of the image replicator (see :mod:`fedcloud_core.errors` for the hierarchy).

::

    PermanentError
    +-- ImagesError             the image replicator's root                          exit 1
        +-- ListRejected        a list was not accepted (fetch failed, bad signature, expired,
        |                       downgraded, unreadable); its ``reason`` goes into the report
        +-- DownloadError       an image cannot be fetched: refused (4xx), larger than
        |   |                   the maximum size, no room in the cache
        |   +-- ImageCorrupt    the bytes do not match the list's size or digest
        |   +-- DownloadUnavailable  the server did not answer or kept failing (network,
        |                       5xx, 408/429) through the bounded retries: also a
        |                       TransientError                                     exit 75
        +-- ConversionError     the image format is unsafe or qemu-img could not convert it
        +-- GlanceSyncError     Glance stored something else than was uploaded

A failed Glance call raises the core's ``OpenStackError``
(:func:`fedcloud_core.openstack.classify_openstack_error`), as in every service.
"""

from __future__ import annotations

from fedcloud_core.errors import PermanentError, TransientError


class ImagesError(PermanentError):
    """Root of the image replicator's errors."""


class ListRejected(ImagesError):
    """An image list was not accepted; nothing in Glance or the cache changes."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"list {source} rejected: {reason}")


class DownloadError(ImagesError):
    """An image cannot be fetched (refused, larger than the maximum, no room in the cache)."""

    bytes_received = 0  # what the failed download's attempts received (set by the downloader)


class ImageCorrupt(DownloadError):
    """The bytes do not match the list's size or digest (after the bounded retries)."""


class DownloadUnavailable(TransientError, DownloadError):
    """The image server did not answer or kept failing through the bounded retries."""


class ConversionError(ImagesError):
    """The image format is unsafe or qemu-img could not convert it."""


class GlanceSyncError(ImagesError):
    """Glance stored something else than was uploaded (status, size, checksum)."""
