"""Job wiring of the cloud-info service (stub until the information system lands)."""

from __future__ import annotations

from fedcloud_core.errors import PermanentError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport

from .bdii_update import JOB as BDII_UPDATE_JOB


def _not_yet(ctx: JobContext) -> RunReport:
    raise PermanentError("not implemented yet")


JOBS = [
    JobSpec(name="cloud-info", help="collect OpenStack into a GLUE2 snapshot", run=_not_yet,
            interval=lambda c: c.scheduler.cloud_info),
    BDII_UPDATE_JOB,
]
TOOLS: list = []
