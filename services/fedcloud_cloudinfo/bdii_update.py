"""The bdii-update job: keep the resource BDII (slapd) in sync with the latest snapshot (stub)."""

from __future__ import annotations

from fedcloud_core.errors import PermanentError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport


def run(ctx: JobContext) -> RunReport:
    raise PermanentError("not implemented yet")


JOB = JobSpec(name="bdii-update", help="sync the resource BDII (slapd) with the latest snapshot",
              run=run, interval=lambda c: c.scheduler.cloud_info)
