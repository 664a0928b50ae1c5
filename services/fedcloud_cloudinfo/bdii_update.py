"""The bdii-update job: keep the resource BDII (slapd, suffix o=glue) in sync with the latest snapshot.

cloud-info writes ``<state_dir>/cloud-info/snapshot.ldif`` atomically after each
successful collection; this job reads it and applies the difference to slapd
through :mod:`fedcloud_core.bdii.sync` (per DN, per attribute; zero writes when
nothing changed). A missing, unreadable or empty snapshot deletes nothing; a
stale one (older than ``bdii.snapshot_max_age``) is still served, without
deletes. The health is in the run report (``details.health``) and under o=infosys.

Modes:

- default: update the slapd at ``--ldap-url`` / ``bdii.ldap_url`` (root password
  from ``bdii.password_file``);
- ``--with-slapd``: start and supervise an own slapd from the template, then
  update it on the schedule (the resource-bdii container);
- ``--provider``: print the snapshot LDIF for a stock BDII's provider directory.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.bdii import infosys
from fedcloud_core.bdii.errors import BdiiError
from fedcloud_core.bdii.ldap import LdapUrl
from fedcloud_core.bdii.publish import Item, Prepared, prepare, publish, state_file
from fedcloud_core.bdii.service import Target, read_password, supervised_slapd
from fedcloud_core.bdii.slapd import Slapd, SlapdSettings, glue21_schema_file
from fedcloud_core.bdii.snapshot_reader import Health, Snapshot, load_snapshot
from fedcloud_core.bdii.sync import LdapTree, plan_sync
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import ConfigError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.ldif import Entry, Record, render
from fedcloud_core.report import RunReport, utcnow

log = logging.getLogger(__name__)

SUFFIX = "o=glue"
RESOURCE_BASE = "GLUE2GroupID=resource,o=glue"
JOB_KEY = "bdii-update"


@dataclass(frozen=True)
class BdiiUpdateDeps:
    """What a test may inject into ``bdii-update`` (``None``: the real one)."""

    trees: Mapping[str, LdapTree] | None = None  # else the slapd's trees (not closed if given)
    stdout: TextIO | None = None  # where --provider prints the LDIF


def base_entries() -> list[Entry]:
    """The suffix and the resource group (always present, whatever the snapshot says)."""
    return [
        Entry(SUFFIX).add("objectClass", "organization").add("o", "glue"),
        Entry(RESOURCE_BASE).add("objectClass", "GLUE2Group").add("GLUE2GroupID", "resource"),
    ]


def grid_entries() -> list[Entry]:
    """``mds-vo-name=resource,o=grid``: the classic resource BDII base, answered for old clients."""
    return [
        Entry("o=grid").add("objectClass", "organization").add("o", "grid"),
        Entry("mds-vo-name=resource,o=grid")
        .add("objectClass", "MdsVo")
        .add("mds-vo-name", "resource"),
    ]


def wanted_entries(snapshot: Snapshot) -> list[Item]:
    """Base entries plus the snapshot's (its own copies of the base entries are ignored)."""
    out: list[Item] = [*base_entries()]
    if not snapshot.usable:
        return out
    have = {dnlib.normalize(e.dn) for e in out}
    for e in snapshot.items:
        if e.dn.count(",") <= 1:  # only a DN of one or two RDNs can name a base entry
            try:
                if dnlib.normalize(e.dn) in have:
                    continue
            except dnlib.DnError:
                pass
        out.append(e)
    return out


def state_dir(cfg: AppConfig) -> Path:
    """Where the applied state of each suffix is kept (next to slapd's data)."""
    return cfg.bdii.resolved_data_dir(cfg.paths.state_dir) / "applied"


def provider_ldif(snapshot: Snapshot) -> str:
    """The entries below the resource group, for a stock BDII (which adds o=glue and the group)."""
    keep = []
    for e in snapshot.entries:
        try:
            if dnlib.is_under(e.dn, RESOURCE_BASE) and dnlib.normalize(e.dn) != dnlib.normalize(
                RESOURCE_BASE
            ):
                keep.append(e)
        except dnlib.DnError:
            continue
    return render(keep)


def slapd_settings(cfg: AppConfig) -> SlapdSettings:
    b = cfg.bdii
    shipped = Path(__file__).with_name("GLUE21-cloud.schema")  # cloud-info's GLUE 2.1 classes
    glue21 = glue21_schema_file() or (shipped if shipped.is_file() else None)
    return SlapdSettings(
        role="resource BDII",
        host=b.host,
        port=b.port,
        data_dir=b.resolved_data_dir(cfg.paths.state_dir),
        maxsize_mb=b.maxsize_mb,
        loglevel=b.log_level,
        extra_schemas=(glue21,) if glue21 else (),
    )


Preload = Callable[[], Mapping[str, Sequence[Entry | Record]]]


def _target(
    ctx: JobContext, report: RunReport, preload: Preload | None = None
) -> tuple[Target, Slapd | None]:
    """Where to write; with ``--with-slapd`` also the slapd when it was (re)started now
    (and bulk-loaded through ``preload``)."""
    cfg = ctx.config
    if ctx.option("with_slapd"):
        slapd, started = supervised_slapd(slapd_settings(cfg), preload)
        if started:
            report.count("slapd_starts")
        assert slapd.password is not None
        return Target(url=slapd.url, password=slapd.password), slapd if started else None
    url = ctx.option("ldap_url") or cfg.bdii.ldap_url or f"ldap://{cfg.bdii.host}:{cfg.bdii.port}"
    try:
        LdapUrl.parse(url)
    except ValueError as exc:
        raise ConfigError(str(exc), key="bdii.ldap_url") from None
    pw_file = (
        cfg.bdii.password_file or cfg.bdii.resolved_data_dir(cfg.paths.state_dir) / "run" / "rootpw"
    )
    return Target(url=url, password=read_password(pw_file)), None


def _trees(
    ctx: JobContext, report: RunReport, preload: Preload | None = None
) -> tuple[dict[str, LdapTree], Slapd | None]:
    injected = ctx.deps_as(BdiiUpdateDeps).trees
    if injected is not None:
        return dict(injected), None
    target, started = _target(ctx, report, preload)
    timeout = ctx.config.bdii.timeout
    trees: dict[str, LdapTree] = {SUFFIX: target.tree(SUFFIX, timeout=timeout)}
    if ctx.option("with_slapd"):
        trees["o=grid"] = target.tree("o=grid", timeout=timeout)
        if ctx.config.bdii.infosys:
            trees[infosys.BASE] = target.tree(infosys.BASE, timeout=timeout)
    return trees, started


def check_options(ctx: JobContext) -> None:
    if ctx.option("with_slapd") and ctx.option("ldap_url"):
        raise BdiiError("--with-slapd and --ldap-url exclude each other")


def run(ctx: JobContext) -> RunReport:
    cfg = ctx.config
    check_options(ctx)
    report = RunReport(job=JOB_KEY, dry_run=ctx.dry_run)
    path = Path(ctx.option("snapshot") or cfg.bdii.snapshot_path(cfg.paths.state_dir))
    # records: the publish path parses only the snapshot's records that changed
    lazy = not (ctx.option("provider") or ctx.dry_run)
    snap = load_snapshot(path, max_age=cfg.bdii.snapshot_max_age, base=RESOURCE_BASE, records=lazy)
    report.details.update(health=snap.health.value, snapshot=str(path))
    if snap.age is not None:
        report.details["snapshot_age"] = round(snap.age)
    if snap.problem:
        # a missing/empty/stale snapshot is a health state; an unreadable one is an error
        (report.error if snap.health is Health.INVALID else report.warn)(snap.problem)

    if ctx.option("provider"):
        out = ctx.deps_as(BdiiUpdateDeps).stdout or sys.stdout
        if snap.usable:
            out.write(provider_ldif(snap))
            report.count("entries", len(snap.entries))
        else:
            report.error(f"nothing to provide: snapshot {snap.health.value}")
        return report

    wanted = wanted_entries(snap)
    allow_delete = snap.authoritative
    prepared: list[Prepared] = []

    def preload() -> dict[str, list[Entry | Record]]:  # a new slapd: bulk-load first
        prep = prepare(wanted, base=SUFFIX)
        prepared.append(prep)
        return {SUFFIX: prep.loadable()}

    trees, started = _trees(ctx, report, None if ctx.dry_run else preload)
    try:
        glue = trees[SUFFIX]
        if ctx.dry_run:
            entries = [e for e in wanted if isinstance(e, Entry)]
            plan = plan_sync(glue.read(SUFFIX), entries, base=SUFFIX, allow_delete=allow_delete)
            report.counts.update(
                would_add=len(plan.adds),
                would_modify=len(plan.modifies),
                would_delete=len(plan.deletes),
                unchanged=plan.unchanged,
                deletes_suppressed=plan.suppressed_deletes,
            )
            for f in plan.rejected:
                report.error(str(f))
            return report
        sdir = state_dir(cfg)
        loaded = started.loaded.get(SUFFIX) if started and prepared else None
        res = publish(
            glue,
            SUFFIX,
            wanted,
            allow_delete=allow_delete,
            state_path=state_file(sdir, SUFFIX),
            source=snap.digest,
            loaded=loaded,
            prepared=prepared[0] if loaded is not None else None,
        )
        report.counts.update(res.counts())
        report.details["publish"] = res.mode
        if res.reason:
            report.details["resync_reason"] = res.reason
        for f in res.failures:
            report.error(str(f))
        if res.suppressed_deletes:
            report.warn(
                f"{res.suppressed_deletes} entries kept although not in the snapshot "
                f"(snapshot {snap.health.value})"
            )
        if "o=grid" in trees:
            g = publish(
                trees["o=grid"], "o=grid", grid_entries(), state_path=state_file(sdir, "o=grid")
            )
            for f in g.failures:
                report.error(str(f))
        if infosys.BASE in trees:
            _publish_stats(
                trees[infosys.BASE], snap, res.writes, res.entries, res.failed, report, sdir
            )
    finally:
        for t in trees.values():
            close = getattr(t, "close", None)
            if close and ctx.deps_as(BdiiUpdateDeps).trees is None:
                close()
    return report


def _publish_stats(
    tree: LdapTree,
    snap: Snapshot,
    writes: int,
    entries: int,
    failed: int,
    report: RunReport,
    sdir: Path,
) -> None:
    last = infosys.previous_value(tree, "bdii-update", "last-change")
    if writes or last is None:
        last = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    figures = {
        "entries": entries,
        "failed": failed,
        "health": snap.health.value,
        "last-change": last,
    }
    res = infosys.publish(tree, "bdii-update", figures, state_path=state_file(sdir, infosys.BASE))
    for f in res.failures:
        report.error(f"o=infosys: {f}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--with-slapd",
        action="store_true",
        help="start and supervise an own slapd from the template, then keep it updated",
    )
    p.add_argument("--ldap-url", metavar="URL", help="slapd to update (default: bdii.ldap_url)")
    p.add_argument(
        "--provider",
        action="store_true",
        help="print the snapshot LDIF once (for a stock BDII's /var/lib/bdii/gip/provider/); "
        "the run report goes to stderr",
    )
    p.add_argument(
        "--snapshot", metavar="FILE", help="snapshot to publish (default: bdii.snapshot)"
    )


JOB = JobSpec(
    name="bdii-update",
    help="sync the resource BDII (slapd) with the latest snapshot",
    run=run,
    add_arguments=add_arguments,
    interval=lambda c: c.scheduler.cloud_info,
    description=__doc__.split("\n\n")[0] if __doc__ else None,
    stdout_data_option="provider",
)
