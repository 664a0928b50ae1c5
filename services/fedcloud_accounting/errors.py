"""Errors of the accounting service (see :mod:`fedcloud_core.errors` for the hierarchy).

::

    PermanentError
    +-- AccountingError        accounting went wrong for a reason a human must fix  exit 1
        +-- InvalidRecord      a record breaks one of APEL's parsing rules
        +-- RecordTooLarge     one record alone does not fit in a message (also a
                               ValueError)

An OpenStack call for usage data that fails raises the core's
:class:`~fedcloud_core.errors.OpenStackError` (``OpenStackRefused``: 401/403, exit 1;
``OpenStackRequestFailed``, exit 1; ``OpenStackUnavailable``: transient, exit 75), as in
every service (:func:`fedcloud_core.openstack.classify_openstack_error`).
"""

from __future__ import annotations

from fedcloud_core.errors import PermanentError


class AccountingError(PermanentError):
    """A permanent accounting failure (bad mapping, bad record, queue not writable)."""


class InvalidRecord(AccountingError):
    """A record (or message) breaks APEL's rules; ``problems`` lists each broken rule."""

    def __init__(self, what: str, problems: list[str]):
        self.what = what
        self.problems = problems
        super().__init__(f"{what}: " + "; ".join(problems))


class RecordTooLarge(AccountingError, ValueError):
    """One record alone does not fit in a message of the maximum size."""
