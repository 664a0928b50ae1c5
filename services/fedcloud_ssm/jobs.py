"""Job wiring of the SSM sender (stub until it lands)."""

from __future__ import annotations

from fedcloud_core.errors import PermanentError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport


def _not_yet(ctx: JobContext) -> RunReport:
    raise PermanentError("not implemented yet")


JOBS = [
    JobSpec(name="ssm send", help="sign and send the outgoing accounting messages", run=_not_yet,
            interval=lambda c: c.scheduler.ssm),
]
TOOLS: list = []
