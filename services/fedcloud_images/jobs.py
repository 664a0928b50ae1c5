"""Job wiring of the image replicator (stub until it lands)."""

from __future__ import annotations

import argparse

from fedcloud_core.errors import PermanentError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport
from fedcloud_core.tools import ToolSpec


def _not_yet(ctx: JobContext) -> RunReport:
    raise PermanentError("not implemented yet")


def _sign_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("description", help="YAML/JSON description of the list and its images")


def _sign(args: argparse.Namespace) -> int:
    raise PermanentError("not implemented yet")


JOBS = [
    JobSpec(name="images sync", help="replicate subscribed image lists into Glance", run=_not_yet,
            interval=lambda c: c.scheduler.images),
]
TOOLS = [
    ToolSpec(name="imagelist sign", help="build and sign a HEPiX image list", add_arguments=_sign_args,
             main=_sign),
]
