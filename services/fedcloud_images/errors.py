"""Errors of the image replicator.

::

    ImagesError (FedcloudError)
    +-- ListRejected        a list was not accepted (fetch failed, bad signature, expired,
    |                       downgraded, unreadable); its ``reason`` goes into the report
    +-- DownloadError       an image could not be fetched after the bounded retries
    |   +-- ImageCorrupt    the bytes do not match the list's size or digest
    +-- ConversionError     the image format is unsafe or qemu-img could not convert it
    +-- GlanceSyncError     Glance refused or lost an upload
"""

from __future__ import annotations

from fedcloud_core.errors import FedcloudError


class ImagesError(FedcloudError):
    """Root of the image replicator's errors."""


class ListRejected(ImagesError):
    """An image list was not accepted; nothing in Glance or the cache changes."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"list {source} rejected: {reason}")


class DownloadError(ImagesError):
    transient = True


class ImageCorrupt(DownloadError):
    pass


class ConversionError(ImagesError):
    pass


class GlanceSyncError(ImagesError):
    pass
