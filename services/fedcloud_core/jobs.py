"""The one service shape: ``cli -> load config -> build clients -> run(ctx) -> RunReport``.

A service describes each of its jobs with a :class:`JobSpec`; :func:`execute` runs one
job once under its run lock, turns errors into a failed report (:meth:`RunReport.fail`:
the error's type says transient, exit 75, or a :class:`ConfigError`, exit 2), stores the report
(``status`` reads it), appends it to the job's run history (:mod:`.history`) and touches
the heartbeat after a successful run.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from .config import AppConfig
from .errors import ConfigError, FedcloudError, LockHeldError, StateVersionError
from .history import append_run
from .lock import RunLock
from .report import RunReport, store_report

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """What a job run gets: the validated config, the CLI options, and wired dependencies."""

    config: AppConfig
    dry_run: bool = False
    options: argparse.Namespace = field(default_factory=argparse.Namespace)
    deps: dict[str, Any] = field(default_factory=dict)  # injected fakes in tests

    def option(self, name: str, default: Any = None) -> Any:
        return getattr(self.options, name, default)


@dataclass(frozen=True)
class JobSpec:
    """A job the CLI, the scheduler and cron can run."""

    name: str  # e.g. "accounting extract"; also the lock and report name
    help: str
    run: Callable[[JobContext], RunReport]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    interval: Callable[[AppConfig], int] | None = None  # minutes between scheduled runs
    description: str | None = None
    # the config keys whose secret files (x_file) the job reads, e.g. ("images",); None: all.
    # The CLI reads only those: the job's container may not see the other jobs' secrets
    secrets: Callable[[AppConfig], Collection[str]] | None = None

    @property
    def key(self) -> str:
        return self.name.replace(" ", "-")


def execute(
    spec: JobSpec, ctx: JobContext, *, lock_wait: float = 0.0, store: bool = True
) -> RunReport:
    """Run ``spec`` once under its lock. Raises only :class:`LockHeldError`."""
    paths = ctx.config.paths
    lock = RunLock(paths.locks, spec.key, wait=lock_wait)
    lock.acquire()  # LockHeldError propagates: the caller decides (exit 4 / skip)
    try:
        try:
            report = spec.run(ctx)
        except LockHeldError:
            raise
        except ConfigError as exc:
            # found only once the run looked at it (e.g. an option given on the command line):
            # a failed run like any other, marked so the CLI exits 2 (CONFIG)
            report = RunReport(job=spec.key, dry_run=ctx.dry_run)
            report.fail(exc, f"config error: {exc}")
            log.error("%s: config error: %s", spec.name, exc)
        except FedcloudError as exc:
            # transient or not is said by the type only (RunReport.fail): exit 75 / 1
            report = RunReport(job=spec.key, dry_run=ctx.dry_run)
            report.fail(exc)
            log.error("%s failed: %s", spec.name, exc)
        except Exception as exc:
            report = RunReport(
                job=spec.key, dry_run=ctx.dry_run, fatal=f"unexpected error: {exc!r}"
            )
            log.exception("%s failed with an unexpected error", spec.name)
        report.job = spec.key
        report.finish()
        if store and not ctx.dry_run:
            try:
                store_report(paths.state_dir, report)
            except OSError as exc:
                log.warning("could not store the run report in %s: %s", paths.state_dir, exc)
            try:
                append_run(
                    paths.state_dir,
                    report,
                    days=paths.history_days,
                    max_bytes=paths.history_max_bytes,
                )
            except (OSError, ValueError, TypeError, StateVersionError) as exc:
                # the history is for the eyes: it never fails a run
                log.warning("could not add the run to the history in %s: %s", paths.state_dir, exc)
        log.info("%s", report.summary())
        return report
    finally:
        lock.release()
