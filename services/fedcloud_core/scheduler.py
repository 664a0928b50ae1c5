"""The built-in scheduler (APScheduler): every job on its interval, never overlapping.

``max_instances=1`` and ``coalesce=True`` keep one run per job at a time inside the
process, and the per-job file lock keeps cron-started runs and scheduler runs apart.

A run that fails transient (:class:`~fedcloud_core.errors.TransientError`, exit 75: the
cloud, the broker or the network did not answer) is run again a bounded number of times
with a doubling backoff (:class:`RetryPolicy`: ``scheduler.retries``, default 3, after
``scheduler.retry_backoff`` seconds, default 60: 1, 2 and 4 minutes), as long as the retry
comes before the job's next regular run. A permanent failure is not retried.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .errors import LockHeldError
from .jobs import JobContext, JobSpec, execute

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Re-runs of a run that failed transient: ``retries`` at most, the first after
    ``backoff`` seconds, each next one after twice the previous delay."""

    retries: int = 3
    backoff: float = 60.0

    def delay(self, attempt: int, interval: float) -> float | None:
        """Seconds before retry number ``attempt`` (1, 2, ...), or None: no retry. All the
        retries of a run fit before the job's next regular run, ``interval`` seconds later."""
        if attempt < 1 or attempt > self.retries:
            return None
        delay = self.backoff * 2 ** (attempt - 1)
        if self.backoff * (2**attempt - 1) >= interval:  # the delays up to this one
            return None
        return delay


def _now() -> datetime:
    return datetime.now(UTC)


def _runner(
    spec: JobSpec,
    make_ctx: Callable[[], JobContext],
    sched: BlockingScheduler | None = None,
    *,
    interval: float = 0.0,
    retry: RetryPolicy | None = None,
    clock: Callable[[], datetime] = _now,
) -> Callable[..., None]:
    def run(attempt: int = 0) -> None:
        try:
            report = execute(spec, make_ctx())
        except LockHeldError as exc:
            log.info("skipping %s: %s", spec.name, exc)
            return
        if not report.transient or sched is None or retry is None:
            return
        delay = retry.delay(attempt + 1, interval)
        if delay is None:
            log.warning(
                "%s failed transient; no retry left before its next run (%d retries done)",
                spec.name,
                attempt,
            )
            return
        when = clock() + timedelta(seconds=delay)
        sched.add_job(
            run,
            DateTrigger(run_date=when, timezone=UTC),
            kwargs={"attempt": attempt + 1},
            id=f"{spec.key}-retry",
            name=f"{spec.name} (retry {attempt + 1})",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
        )
        log.warning(
            "%s failed transient: retry %d of %d at %s",
            spec.name,
            attempt + 1,
            retry.retries,
            when.isoformat(timespec="seconds"),
        )

    return run


def build_scheduler(
    jobs: Sequence[tuple[JobSpec, int]],
    make_ctx: Callable[[], JobContext],
    *,
    jitter: int = 0,
    run_now: bool = True,
    retry: RetryPolicy | None = None,
    clock: Callable[[], datetime] = _now,
) -> BlockingScheduler:
    """A scheduler with each ``(spec, minutes)``; minutes <= 0 disables the job. A run that
    fails transient is retried by ``retry`` (default :class:`RetryPolicy`); ``clock`` gives
    the time retries are counted from (tests pass a fake one)."""
    retry = RetryPolicy() if retry is None else retry
    sched = BlockingScheduler(
        timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}
    )
    start = clock() + timedelta(seconds=1)
    for spec, minutes in jobs:
        if minutes <= 0:
            log.info("%s: disabled in the scheduler", spec.name)
            continue
        sched.add_job(
            _runner(spec, make_ctx, sched, interval=minutes * 60, retry=retry, clock=clock),
            IntervalTrigger(minutes=minutes, jitter=jitter or None, timezone=UTC),
            id=spec.key,
            name=spec.name,
            next_run_time=start if run_now else None,
            max_instances=1,
            coalesce=True,
        )
        log.info("%s: every %d min", spec.name, minutes)
    return sched


def run_forever(sched: BlockingScheduler) -> None:
    """Block until SIGTERM/SIGINT; a running job finishes before the process exits."""

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the scheduler after running jobs finish", signum)
        sched.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sched.start()
