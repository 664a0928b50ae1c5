"""The built-in scheduler (APScheduler): every job on its interval, never overlapping.

``max_instances=1`` and ``coalesce=True`` keep one run per job at a time inside the
process, and the per-job file lock keeps cron-started runs and scheduler runs apart.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .errors import LockHeldError
from .jobs import JobContext, JobSpec, execute

log = logging.getLogger(__name__)


def _runner(spec: JobSpec, make_ctx: Callable[[], JobContext]) -> Callable[[], None]:
    def run() -> None:
        try:
            execute(spec, make_ctx())
        except LockHeldError as exc:
            log.info("skipping %s: %s", spec.name, exc)

    return run


def build_scheduler(
    jobs: Sequence[tuple[JobSpec, int]],
    make_ctx: Callable[[], JobContext],
    *,
    jitter: int = 0,
    run_now: bool = True,
) -> BlockingScheduler:
    """A scheduler with each ``(spec, minutes)``; minutes <= 0 disables the job."""
    sched = BlockingScheduler(
        timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}
    )
    start = datetime.now(UTC) + timedelta(seconds=1)
    for spec, minutes in jobs:
        if minutes <= 0:
            log.info("%s: disabled in the scheduler", spec.name)
            continue
        sched.add_job(
            _runner(spec, make_ctx),
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
