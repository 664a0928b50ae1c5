"""The error hierarchy of the appliance.

::

    FedcloudError                    root of every error raised on purpose; ``exit_code``
    +-- ConfigError                  the config file/env is wrong                      exit 2
    +-- LockHeldError                another run of the same job holds the lock        exit 4
    +-- TransientError               a later run may not see it (network, 5xx)         exit 75
    +-- PermanentError               retrying will not help without a human            exit 1
        +-- StateVersionError        a state file/database is newer than this release
        +-- ToolError                an external tool (openssl, qemu-img) failed
        +-- OpenStackError           an OpenStack call failed (classified by
            |                        :func:`fedcloud_core.openstack.classify_openstack_error`)
            +-- OpenStackRefused     401/403: the credentials were refused or may not
            |                        do this
            +-- OpenStackRequestFailed  any other 4xx, no endpoint in the catalog, no
            |                        usable API version: the request or the setup is wrong
            +-- OpenStackUnavailable no connection, timeout, 5xx, 408/429: also a
                                     TransientError                            exit 75

Every service's own errors hang under :class:`PermanentError` (``AccountingError``,
``ImagesError``, ``SsmError``, ...); those a retry may heal also derive from
:class:`TransientError`, listed first so that their exit code is 75. Transient is said
by the type only: ask :func:`is_transient`, never ``isinstance(exc, PermanentError)``. Library code raises; :func:`exit_code_for` and
:meth:`fedcloud_core.report.RunReport.fail` are the only places that turn an error into
an exit code. The scheduler retries a run that failed transient a bounded number of
times with backoff (:mod:`fedcloud_core.scheduler`); cron and one-shot runs exit 75.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every job command (documented in docs/adr/0003-cli.md)."""

    OK = 0
    FAILED = 1
    CONFIG = 2
    PARTIAL = 3
    LOCKED = 4
    TRANSIENT = 75


class FedcloudError(Exception):
    """Root of every error the appliance raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(FedcloudError):
    """The configuration is invalid; ``source`` names the file, ``key`` the key path."""

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ": ".join(p for p in (source, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class LockHeldError(FedcloudError):
    """Another run of the same job is in progress."""

    exit_code = ExitCode.LOCKED


class TransientError(FedcloudError):
    """A failure that a later retry may not see (network, timeouts, 5xx)."""

    exit_code = ExitCode.TRANSIENT


class PermanentError(FedcloudError):
    """A failure that needs a human (bad credentials, refused certificate, ...).

    A subclass that also derives from :class:`TransientError` is transient.
    """

    exit_code = ExitCode.FAILED


class StateVersionError(PermanentError):
    """A state file or database was written by a newer release (or has no migration path).

    Raised before anything is read from it or written to it: the operator upgrades again
    or restores the state backed up before the upgrade (docs/operations.md).
    """

    def __init__(self, path: str, kind: str, found: int, current: int):
        self.path = path
        self.kind = kind
        self.found = found
        self.current = current
        if found > current:
            why = (
                "it was written by a newer appliance: run that release again or restore the "
                "state saved before the upgrade"
            )
        else:
            why = "this release has no migration from that version: upgrade step by step"
        super().__init__(
            f"{path}: {kind} has state version {found}, this release reads versions up to "
            f"{current}; {why} (docs/operations.md, Upgrade and rollback)"
        )


class ToolError(PermanentError):
    """An external tool exited non-zero, timed out or could not be started."""

    def __init__(self, tool: str, message: str, *, returncode: int | None = None):
        self.tool = tool
        self.returncode = returncode
        super().__init__(f"{tool}: {message}")


class OpenStackError(PermanentError):
    """An OpenStack API call failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)


class OpenStackRefused(OpenStackError):
    """Keystone or a service refused the credentials (401) or the action (403)."""


class OpenStackRequestFailed(OpenStackError):
    """The request or the setup is wrong: a 4xx other than 401/403/408/429, a service
    missing from the catalog, no API version both sides speak."""


class OpenStackUnavailable(TransientError, OpenStackError):
    """OpenStack did not answer, timed out, or answered with a server error (5xx, 408, 429)."""


def is_transient(exc: BaseException) -> bool:
    """Whether a later run may succeed where this one failed: said by the type only."""
    return isinstance(exc, TransientError)


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map an exception to the process exit code (the CLI's job only)."""
    if isinstance(exc, FedcloudError):
        return exc.exit_code
    return ExitCode.FAILED
