"""The site-bdii job: resource BDIIs + static site info -> the site slapd, base GLUE2DomainID=<SITE>,o=glue.

Each cycle queries every configured resource BDII (anonymous LDAP, timeouts),
re-homes its entries from ``GLUE2GroupID=resource,o=glue`` to
``GLUE2GroupID=resource,GLUE2DomainID=<SITE>,o=glue`` (every class, images
included), adds the domain, location, contacts and this BDII's own ``bdii_site``
endpoint, and syncs the site slapd through the shared updater (zero writes when
nothing changed). A resource BDII that does not answer keeps its last data for
``site_bdii.keep_missing_for`` seconds with endpoint health ``unknown``; after that
its entries are dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.bdii import infosys
from fedcloud_core.bdii.ldap import LdapUrl
from fedcloud_core.bdii.publish import Prepared, prepare, publish, state_file
from fedcloud_core.bdii.service import Target, read_password, supervised_slapd
from fedcloud_core.bdii.slapd import Slapd, SlapdSettings
from fedcloud_core.bdii.sync import LdapTree, plan_sync
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import ConfigError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.ldif import Entry, LdifError, Record, render
from fedcloud_core.report import RunReport, utcnow

from . import source, tree

log = logging.getLogger(__name__)

JOB_KEY = "site-bdii"


@dataclass(frozen=True)
class SiteBdiiDeps:
    """What a test may inject into ``site-bdii`` (``None``: the real one)."""

    fetch: source.Fetcher | None = None  # else an LDAP search of each resource BDII
    trees: Mapping[str, LdapTree] | None = None  # else the supervised slapd's trees


SUFFIX = tree.SUFFIX


def data_dir(cfg: AppConfig) -> Path:
    return cfg.site_bdii.resolved_data_dir(cfg.paths.state_dir)


def slapd_settings(cfg: AppConfig) -> SlapdSettings:
    s = cfg.site_bdii
    return SlapdSettings(
        role="site BDII",
        host=s.host,
        port=s.port,
        data_dir=data_dir(cfg) / "slapd",
        maxsize_mb=s.maxsize_mb,
        loglevel=s.log_level,
    )


def public_hostname(cfg: AppConfig) -> str:
    """The host name published in the bdii_site endpoint URL; ConfigError (exit 2) when it
    would be a loopback name (an unset public_hostname on a host whose FQDN is localhost)."""
    return cfg.site_bdii.published_host(socket.getfqdn)


def _parsed(items: Iterable[Entry | Record]) -> list[Entry]:
    out = []
    for i in items:
        try:
            out.append(i.entry() if isinstance(i, Record) else i)
        except LdifError as exc:
            log.warning("%s: not LDIF: %s", i.dn, exc)
    return out


def rehome(
    items: Sequence[Entry | Record], site: str, old_base: str
) -> tuple[list[Entry | Record], int]:
    """:func:`tree.rehome` that keeps records unparsed (only their DN line is rewritten)."""
    entries = [i for i in items if isinstance(i, Entry)]
    out: list[Entry | Record] = []
    skipped = 0
    if entries:
        moved, skipped = tree.rehome(entries, site, old_base)
        out.extend(moved)
    new_base = tree.group_dn(site)
    new_key = dnlib.normalize(new_base)
    tail = "," + old_base
    for r in items:
        if not isinstance(r, Record):
            continue
        head = r.dn[: -len(tail)]
        if r.dn.endswith(tail) and head and "\\" not in r.dn:  # spelt like the base
            out.append(r.with_dn(f"{head},{new_base}"))
            continue
        try:
            new: str | None = dnlib.rehome(r.dn, old_base, new_base)
        except dnlib.DnError:
            new = None
        if new is None or dnlib.normalize(new) == new_key:
            skipped += 1  # outside the resource group, or the group itself (we publish our own)
            continue
        out.append(r.with_dn(new))
    return out, skipped


def build_tree(
    cfg: AppConfig, results: list[source.SourceResult], report: RunReport
) -> list[Entry | Record]:
    """The whole wanted o=glue tree from the sources' results (a resource BDII's answer
    stays as unparsed LDIF records: the publish path parses only what changed)."""
    site = cfg.site.name
    wanted: list[Entry | Record] = [*tree.static_entries(cfg.site)]
    wanted += tree.bdii_site_entries(
        cfg.site, public_hostname(cfg), cfg.site_bdii.public_port, quality=cfg.site.production_level
    )
    seen = {dnlib.normalize(e.dn) for e in wanted}
    for r in results:
        if r.state is source.SourceState.DROPPED:
            continue
        moved, _skipped = rehome(r.entries, site, r.base)
        if r.state is source.SourceState.KEPT:
            moved = [*tree.mark_unknown(_parsed(moved))]
        dup = 0
        for e in moved:
            key = dnlib.normalize(e.dn)
            if key in seen:
                dup += 1
                continue
            seen.add(key)
            wanted.append(e)
        if dup:
            report.warn(f"{r.url}: {dup} entries already published by another source (first kept)")
        report.count("resource_entries", len(moved) - dup)
        services = _parsed(
            e
            for e in moved
            if not isinstance(e, Record) or "serviceadmindomainforeignkey:" in e.text.lower()
        )
        for other in sorted(tree.foreign_domains(services, site)):
            report.warn(f"{r.url}: services name admin domain {other!r}, not the site {site!r}")
    return wanted


def source_key(cfg: AppConfig, results: list[source.SourceResult]) -> str:
    """A digest of this cycle's input: the site's own entries and, per resource BDII, the
    ``contextCSN`` its answer was read at. '' (never equal) when a source's content is
    not known by its ``contextCSN`` (kept data, a server without one)."""
    h = hashlib.sha256()
    own = tree.static_entries(cfg.site) + tree.bdii_site_entries(
        cfg.site, public_hostname(cfg), cfg.site_bdii.public_port, quality=cfg.site.production_level
    )
    h.update(render(own).encode("utf-8"))
    for r in results:
        if r.state is source.SourceState.OK and not r.mark:
            return ""
        if r.state is source.SourceState.KEPT:
            return ""
        h.update(f"\0{r.url}\0{r.base}\0{r.state.value}\0{r.mark}".encode())
    return h.hexdigest()


def state_dir(cfg: AppConfig) -> Path:
    """Where the applied state of each suffix is kept."""
    return data_dir(cfg) / "applied"


def _target(
    ctx: JobContext,
    report: RunReport,
    preload: Callable[[], Mapping[str, Sequence[Entry | Record]]] | None = None,
) -> tuple[Target, Slapd | None]:
    """Where to write; with ``--with-slapd`` also the slapd when it was (re)started now."""
    cfg = ctx.config
    if ctx.option("with_slapd"):
        slapd, started = supervised_slapd(slapd_settings(cfg), preload)
        if started:
            report.count("slapd_starts")
        assert slapd.password is not None
        return Target(url=slapd.url, password=slapd.password), slapd if started else None
    url = ctx.option("ldap_url") or f"ldap://{cfg.site_bdii.host}:{cfg.site_bdii.port}"
    try:
        LdapUrl.parse(url)
    except ValueError as exc:
        raise ConfigError(str(exc), key="--ldap-url") from None
    pw = read_password(data_dir(cfg) / "slapd" / "run" / "rootpw")
    return Target(url=url, password=pw), None


def run(ctx: JobContext) -> RunReport:
    cfg = ctx.config
    report = RunReport(job=JOB_KEY, dry_run=ctx.dry_run)
    deps = ctx.deps_as(SiteBdiiDeps)
    fetch = deps.fetch or source.ldap_fetch
    results = []
    for url in cfg.site_bdii.resource_bdiis:
        r = source.query(
            url,
            cache_dir=data_dir(cfg) / "cache",
            keep_for=cfg.site_bdii.keep_missing_for,
            timeout=cfg.site_bdii.timeout,
            fetch=fetch,
        )
        results.append(r)
        report.count(f"sources_{r.state.value}")
        if r.unchanged:
            report.count("sources_unchanged")  # its contextCSN did not move: not read again
        if r.state is source.SourceState.KEPT:
            report.warn(
                f"{r.problem}; last data kept ({r.silent_for:.0f}s old), endpoints marked unknown"
            )
        elif r.problem:
            report.error(r.problem)
    report.details["sources"] = {r.url: r.state.value for r in results}
    wanted = build_tree(cfg, results, report)

    trees: dict[str, LdapTree] = dict(deps.trees or {})
    own = not trees
    prepared: list[Prepared] = []

    def preload() -> dict[str, list[Entry | Record]]:  # a new slapd: bulk-load first
        prep = prepare(wanted, base=SUFFIX)
        prepared.append(prep)
        return {SUFFIX: prep.loadable()}

    started: Slapd | None = None
    if own:
        target, started = _target(ctx, report, None if ctx.dry_run else preload)
        trees[SUFFIX] = target.tree(SUFFIX, timeout=cfg.site_bdii.timeout)
        if cfg.site_bdii.grid_compat:
            trees["o=grid"] = target.tree("o=grid", timeout=cfg.site_bdii.timeout)
        trees[infosys.BASE] = target.tree(infosys.BASE, timeout=cfg.site_bdii.timeout)
    try:
        glue = trees[SUFFIX]
        if ctx.dry_run:
            plan = plan_sync(glue.read(SUFFIX), _parsed(wanted), base=SUFFIX)
            report.counts.update(
                would_add=len(plan.adds),
                would_modify=len(plan.modifies),
                would_delete=len(plan.deletes),
                unchanged=plan.unchanged,
            )
            return report
        sdir = state_dir(cfg)
        loaded = started.loaded.get(SUFFIX) if started and prepared else None
        res = publish(
            glue,
            SUFFIX,
            wanted,
            state_path=state_file(sdir, SUFFIX),
            source=source_key(cfg, results),
            loaded=loaded,
            prepared=prepared[0] if loaded is not None else None,
        )
        report.counts.update(res.counts())
        report.details["publish"] = res.mode
        if res.reason:
            report.details["resync_reason"] = res.reason
        for f in res.failures:
            report.error(str(f))
        if "o=grid" in trees:
            grid = tree.grid_entries(cfg.site.name)
            g = publish(trees["o=grid"], "o=grid", grid, state_path=state_file(sdir, "o=grid"))
            for f in g.failures:
                report.error(str(f))
        if infosys.BASE in trees:
            last = infosys.previous_value(trees[infosys.BASE], JOB_KEY, "last-change")
            if res.writes or last is None:
                last = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
            figures = {
                "entries": res.entries,
                "failed": res.failed,
                "last-change": last,
                **{f"sources-{r.url}": r.state.value for r in results},
            }
            stats = infosys.publish(
                trees[infosys.BASE], JOB_KEY, figures, state_path=state_file(sdir, infosys.BASE)
            )
            for f in stats.failures:
                report.error(f"o=infosys: {f}")
    finally:
        if own:
            for t in trees.values():
                close = getattr(t, "close", None)
                if close:
                    close()
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--with-slapd",
        action="store_true",
        help="start and supervise an own slapd from the template, then keep it updated",
    )
    p.add_argument(
        "--ldap-url",
        metavar="URL",
        help="site slapd to update (default: ldap://<site_bdii.host>:<site_bdii.port>)",
    )


JOBS = [
    JobSpec(
        name="site-bdii",
        help="aggregate the resource BDIIs into the site BDII",
        run=run,
        add_arguments=add_arguments,
        interval=lambda c: c.scheduler.site_bdii,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    ),
]
COMMANDS: list = []
