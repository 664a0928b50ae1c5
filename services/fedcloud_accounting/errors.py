"""Errors of the accounting service (see :mod:`fedcloud_core.errors` for the hierarchy).

::

    FedcloudError
    +-- AccountingError            accounting went wrong for a reason a human must fix
    |   +-- InvalidRecord          a record breaks one of APEL's parsing rules
    +-- TransientError
        +-- OpenStackUnavailable
            +-- UsageSourceError   an OpenStack API call for usage data failed
"""

from __future__ import annotations

from fedcloud_core.errors import FedcloudError, OpenStackUnavailable


class AccountingError(FedcloudError):
    """A permanent accounting failure (bad mapping, bad record, queue not writable)."""


class InvalidRecord(AccountingError):
    """A record (or message) breaks APEL's rules; ``problems`` lists each broken rule."""

    def __init__(self, what: str, problems: list[str]):
        self.what = what
        self.problems = problems
        super().__init__(f"{what}: " + "; ".join(problems))


class UsageSourceError(OpenStackUnavailable):
    """An OpenStack call for usage data failed (network, 5xx, refused)."""
