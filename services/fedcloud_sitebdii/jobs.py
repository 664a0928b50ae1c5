"""Job wiring of the site BDII service (stub until it lands)."""

from __future__ import annotations

from fedcloud_core.errors import PermanentError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport


def _not_yet(ctx: JobContext) -> RunReport:
    raise PermanentError("not implemented yet")


JOBS = [
    JobSpec(name="site-bdii", help="aggregate the resource BDIIs into the site BDII", run=_not_yet,
            interval=lambda c: c.scheduler.site_bdii),
]
TOOLS: list = []
