"""Job wiring of the cloud-info service: ``cloud-info`` (collect + render + snapshot),
the ``cloud-info-snapshot`` provider tool, and ``bdii-update`` (its own module)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fedcloud_core import __version__, ldif
from fedcloud_core.ams import AmsClient
from fedcloud_core.commands import CommandSpec
from fedcloud_core.config import load_config
from fedcloud_core.errors import ExitCode
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport

from . import publish as ams_publish
from . import snapshot_files
from .bdii_update import JOB as BDII_UPDATE_JOB
from .collect import collect, options_from
from .render.glue20 import glue20_entries
from .render.glue21 import glue21_entries
from .render.json21 import render_json
from .source import CloudSource, OpenStackSource

FORMATS = ("glue20-ldif", "glue21-ldif", "glue21-json")


@dataclass(frozen=True)
class CloudInfoDeps:
    """What a test may inject into ``cloud-info`` (``None``: the real one)."""

    cloud_source: CloudSource | None = None  # else the site's OpenStack
    now: datetime | None = None  # the collection time (else the clock)
    ams_client: AmsClient | None = None  # else from cloud_info.ams


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="snapshot format (default: cloud_info.format, glue20-ldif)",
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        default=None,
        help="also write the rendered snapshot to FILE (atomically)",
    )
    p.add_argument(
        "--all-images",
        action="store_true",
        default=None,
        help="publish every active image, not only those with marketplace metadata",
    )
    p.add_argument(
        "--publish",
        choices=("ams",),
        default=None,
        help="also send the GLUE 2.1 JSON to AMS (cloud_info.ams), as EGI's cloud-info-provider; "
        "with --dry-run, print the AMS request instead (default: cloud_info.publish)",
    )


def _source(ctx: JobContext) -> CloudSource:
    injected = ctx.deps_as(CloudInfoDeps).cloud_source
    if injected is not None:
        return injected
    from fedcloud_core.openstack import OpenStackClients

    clients = OpenStackClients.from_config(ctx.config.openstack)
    return OpenStackSource(clients, endpoint_url=ctx.config.cloud_info.endpoint_url)


def run(ctx: JobContext) -> RunReport:
    cfg = ctx.config
    report = RunReport(job="cloud-info", dry_run=ctx.dry_run)
    fmt = ctx.option("format") or cfg.cloud_info.format
    output = ctx.option("output") or cfg.cloud_info.output
    opts = options_from(
        cfg, publish_all_images=ctx.option("all_images") or None, provider_version=__version__
    )
    publish_to = ctx.option("publish") or cfg.cloud_info.publish
    if publish_to == "ams":
        ams_publish.ams_topic(cfg)  # a missing gocdb_id is a config error before any work
    source = _source(ctx)
    items_file = snapshot_files.items_path(cfg)
    memory, problem = snapshot_files.read_items(items_file)  # answers reused for failed calls
    if problem:
        report.warn(problem)
    started = time.monotonic()
    try:
        now = ctx.deps_as(CloudInfoDeps).now
        site = collect(source, cfg, report, opts, now=now, memory=memory)
    finally:
        report.count("api_calls", source.api_calls)
        report.count("collect_seconds", round(time.monotonic() - started, 3))
    started = time.monotonic()
    entries = glue21_entries(site) if fmt == "glue21-ldif" else glue20_entries(site)
    target = snapshot_files.ldif_path(cfg)
    entries = snapshot_files.stabilise(entries, snapshot_files.read_previous(target))
    ldif_text = ldif.render(entries)
    chosen = render_json(site) if fmt == "glue21-json" else ldif_text
    report.count("entries", len(entries))
    report.count("render_seconds", round(time.monotonic() - started, 3))
    report.details["format"] = fmt
    if fmt == "glue21-json" and not site.gocdb_id:
        report.warn("cloud_info.gocdb_id is not set: cloud-info-api reads OtherInfo.gocdb_id")
    pub = None
    if publish_to == "ams":
        pub = ams_publish.prepare(cfg, chosen if fmt == "glue21-json" else render_json(site))
        report.details["ams_topic"] = pub.topic
    if ctx.dry_run:
        sys.stdout.write(pub.dry_run_text() if pub is not None else chosen)
        sys.stdout.flush()
        return report
    snapshot_files.write_text(target, ldif_text)
    snapshot_files.write_items(items_file, memory)  # the answers behind this snapshot
    report.details["snapshot"] = str(target)
    if fmt == "glue21-json":
        snapshot_files.write_text(snapshot_files.json_path(cfg), chosen)
        report.details["snapshot_json"] = str(snapshot_files.json_path(cfg))
    if output:
        snapshot_files.write_text(output, chosen)
        report.details["output"] = str(output)
    if pub is not None:
        client = ctx.deps_as(CloudInfoDeps).ams_client or ams_publish.build_client(cfg)
        pub = ams_publish.publish(pub, client)
        report.details["ams_message_id"] = pub.message_id
    return report


def _snapshot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="appliance config file")


def snapshot_main(args: argparse.Namespace) -> int:
    """Print the last good snapshot LDIF (an executable for a stock BDII's provider dir)."""
    cfg = load_config(args.config)
    path = snapshot_files.ldif_path(cfg)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"cloud-info-snapshot: no snapshot at {path}: {exc.strerror}", file=sys.stderr)
        return int(ExitCode.FAILED)
    sys.stdout.write(text)
    return int(ExitCode.OK)


CLOUD_INFO_JOB = JobSpec(
    name="cloud-info",
    help="collect OpenStack into a GLUE2 snapshot",
    run=run,
    add_arguments=_arguments,
    interval=lambda c: c.scheduler.cloud_info,
    description="Collect Keystone projects of the configured VOs, Nova flavors, quotas and server "
    "states, Glance images and API versions into a site model; render GLUE 2.0 LDIF (default), GLUE "
    "2.1 LDIF or GLUE 2.1 JSON; write <state_dir>/cloud-info/snapshot.ldif atomically; with --publish "
    "ams (or cloud_info.publish: ams) send the GLUE 2.1 JSON to AMS as EGI's cloud-info-provider.",
)

JOBS = [CLOUD_INFO_JOB, BDII_UPDATE_JOB]
COMMANDS: list[Any] = [
    CommandSpec(
        name="cloud-info-snapshot",
        help="print the last good cloud-info snapshot (LDIF provider)",
        add_arguments=_snapshot_arguments,
        main=snapshot_main,
    ),
]
