"""The error hierarchy of the appliance.

::

    FedcloudError                  root; carries ``transient`` and ``exit_code``
    +-- ConfigError                the config file/env is wrong (exit 2, permanent)
    +-- LockHeldError              another run of the same job holds the lock (exit 4)
    +-- TransientError             worth retrying later (network, 5xx, broker down) (exit 75)
    |   +-- OpenStackUnavailable   the cloud did not answer
    +-- PermanentError             retrying will not help without a human (exit 1)
    |   +-- StateVersionError      a state file/database is newer than this release
    +-- ToolError                  an external tool (openssl, qemu-img) failed (exit 1)
    +-- <Service>Error             one per service package (cloud-info, accounting, ...);
                                   a service mixes in TransientError where it applies

Only the CLI maps errors to exit codes (:func:`exit_code_for`); library code raises.
The scheduler retries jobs whose error is ``transient``.
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

    transient: bool = False
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

    transient = True
    exit_code = ExitCode.TRANSIENT


class PermanentError(FedcloudError):
    """A failure that needs a human (bad credentials, refused certificate, ...)."""


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


class OpenStackUnavailable(TransientError):
    """OpenStack did not answer or answered with a server error."""


class ToolError(FedcloudError):
    """An external tool exited non-zero, timed out or could not be started."""

    def __init__(self, tool: str, message: str, *, returncode: int | None = None):
        self.tool = tool
        self.returncode = returncode
        super().__init__(f"{tool}: {message}")


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map an exception to the process exit code (the CLI's job only)."""
    if isinstance(exc, FedcloudError):
        return exc.exit_code
    return ExitCode.FAILED
