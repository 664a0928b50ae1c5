"""Job wiring of the accounting service (stub until it lands)."""

from __future__ import annotations

from fedcloud_core.errors import PermanentError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport


def _not_yet(ctx: JobContext) -> RunReport:
    raise PermanentError("not implemented yet")


JOBS = [
    JobSpec(name="accounting extract", help="extract usage into APEL records in the outgoing queue",
            run=_not_yet, interval=lambda c: c.scheduler.accounting),
]
TOOLS: list = []
