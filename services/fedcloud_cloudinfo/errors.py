"""Errors of cloud-info (see :mod:`fedcloud_core.errors` for the hierarchy).

::

    PermanentError
    +-- CloudInfoError             cloud-info's own errors
        +-- CollectTimeout         the collection did not finish within
                                   cloud_info.timeout (also a TransientError)   exit 75

A failed OpenStack call raises the core's ``OpenStackError``
(:func:`fedcloud_core.openstack.classify_openstack_error`): ``OpenStackRefused``
(401/403) and ``OpenStackRequestFailed`` are permanent, so nothing is reused for that
item; ``OpenStackUnavailable`` is transient, so the item's previous answer is reused
(:mod:`fedcloud_cloudinfo.snapshot_files`). bdii-update raises the core's ``BdiiError`` family
(:mod:`fedcloud_core.bdii.errors`).
"""

from __future__ import annotations

from fedcloud_core.errors import PermanentError, TransientError


class CloudInfoError(PermanentError):
    """Root of cloud-info's own errors."""


class CollectTimeout(TransientError, CloudInfoError):
    """The collection did not finish within cloud_info.timeout."""
