"""Job wiring of the accounting service: ``fedcloud-appliance accounting extract``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.openstack import OpenStackClients
from fedcloud_core.report import RunReport

from .action_cache import ActionCache
from .checkpoint import CheckpointStore
from .extract.openstack import OpenStackUsageSource
from .extract.source import UsageSource
from .extractor import (
    JOB,
    Extractor,
    Window,
    action_cache_dir,
    checkpoint_path,
    server_cache_dir,
)
from .messenger.queue import DirqWriter, QueueWriter
from .server_cache import ServerCache


@dataclass(frozen=True)
class AccountingDeps:
    """What a test may inject into ``accounting extract`` (``None``: the real one)."""

    source: UsageSource | None = None  # else Nova/Keystone/Glance/Neutron/Cinder
    writer: QueueWriter | None = None  # else the outgoing dirq
    checkpoints: CheckpointStore | None = None
    out: TextIO | None = None  # where --dry-run prints the records
    now: Callable[[], datetime] | None = None


def utc_time(text: str) -> datetime:
    """``--extract-from/--extract-to``: ISO 8601; no offset means UTC."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="write the queues under DIR instead of the outgoing dir; checkpoints are not "
        "moved (so the real queue misses nothing)",
    )
    p.add_argument(
        "--extract-from",
        type=utc_time,
        metavar="TIME",
        help="window start for every project (ISO 8601, UTC), instead of the checkpoints",
    )
    p.add_argument(
        "--extract-to",
        type=utc_time,
        metavar="TIME",
        help="window end (ISO 8601, UTC); default: now",
    )


def run(ctx: JobContext) -> RunReport:
    cfg = ctx.config
    output_dir = ctx.option("output_dir")
    deps = ctx.deps_as(AccountingDeps)
    source = deps.source or OpenStackUsageSource(OpenStackClients.from_config(cfg.openstack))
    writer = deps.writer or DirqWriter(output_dir or cfg.outgoing_dir)
    extractor = Extractor(
        cfg,
        source,
        writer,
        deps.checkpoints or CheckpointStore(checkpoint_path(cfg)),
        dry_run=ctx.dry_run,
        advance_checkpoints=output_dir is None,
        out=deps.out,
        now=deps.now or _now,
        action_cache=ActionCache(action_cache_dir(cfg)) if cfg.accounting.cache_actions else None,
        server_cache=ServerCache(server_cache_dir(cfg)) if cfg.accounting.cache_actions else None,
        window=Window(ctx.option("extract_from"), ctx.option("extract_to")),
    )
    return extractor.run(RunReport(job=JOB, dry_run=ctx.dry_run))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


JOBS = [
    JobSpec(
        name="accounting extract",
        help="extract usage into APEL records in the outgoing queue",
        description="For each project mapped to a VO: read servers, flavors, images, instance actions, "
        "floating IPs and volumes; write APEL cloud (and StAR storage) records into the outgoing dirq; "
        "move the project's checkpoint once its messages are queued.",
        run=run,
        add_arguments=add_arguments,
        interval=lambda c: c.scheduler.accounting,
    ),
]
COMMANDS: list = []
