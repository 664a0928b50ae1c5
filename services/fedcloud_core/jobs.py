"""The one service shape: ``cli -> load config -> build clients -> run(ctx) -> RunReport``.

The job contract, the same for every service:

- ``JobSpec.run(ctx: JobContext) -> RunReport``: the job function builds its service's
  runner from ``ctx.config``, the CLI options and its typed dependencies
  (``ctx.deps_as(ServiceDeps)``: a frozen dataclass per service, every field ``None``
  unless a test injects a fake; ``None`` means "build the real one");
- the runner (:class:`Runner`: ``Extractor``, ``ImageSync``, ``Sender``, ...) gets every
  input at construction and fills one report: ``runner.run(report) -> report``;
- a job whose option makes it print data (``bdii-update --provider``) names that option in
  ``JobSpec.stdout_data_option``: such a run is one-shot and its report goes to stderr.

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
from typing import Any, Protocol, TypeVar

from .config import AppConfig
from .errors import ConfigError, FedcloudError, LockHeldError, StateVersionError
from .history import append_run
from .lock import RunLock
from .report import RunReport, store_report

log = logging.getLogger(__name__)


D = TypeVar("D")


class Runner(Protocol):
    """A service's runner: wired with every input at construction, it fills ``report``."""

    def run(self, report: RunReport) -> RunReport: ...


@dataclass
class JobContext:
    """What a job run gets: the validated config, the CLI options, and the service's typed
    dependencies (``None``: build the real ones; tests inject fakes)."""

    config: AppConfig
    dry_run: bool = False
    options: argparse.Namespace = field(default_factory=argparse.Namespace)
    deps: object | None = None

    def option(self, name: str, default: Any = None) -> Any:
        return getattr(self.options, name, default)

    def deps_as(self, kind: type[D]) -> D:
        """The injected dependencies, which must be a ``kind``; else ``kind()`` (all real)."""
        if self.deps is None:
            return kind()
        if not isinstance(self.deps, kind):
            raise TypeError(
                f"this job takes {kind.__name__} dependencies, not {type(self.deps).__name__}"
            )
        return self.deps


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
    # the option (its argparse dest) that turns a run into one whose stdout carries data: the
    # run is one-shot and its report goes to stderr (e.g. bdii-update's "provider")
    stdout_data_option: str | None = None

    @property
    def key(self) -> str:
        return self.name.replace(" ", "-")

    def stdout_is_data(self, options: argparse.Namespace) -> bool:
        """Whether this run prints data on stdout (then one-shot, report on stderr)."""
        return bool(self.stdout_data_option and getattr(options, self.stdout_data_option, False))


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
