"""bdii-update against a real slapd (project template, Debian GLUE20 schema) on 127.0.0.1."""

from __future__ import annotations

import argparse
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from fedcloud_cloudinfo import bdii_update
from fedcloud_core.bdii.ldap import Ldap3Tree, connect
from fedcloud_core.bdii.slapd import Slapd
from fedcloud_core.config import AppConfig, parse_config
from fedcloud_core.jobs import JobContext
from fedcloud_core.ldif import Entry, parse, render
from fedcloud_core.report import RunReport
from integration.bdii.bdii_testlib import (
    by_dn,
    context_csn,
    example_text,
    free_port,
    ldapsearch,
    logged_writes,
)

pytestmark = pytest.mark.integration

SERVICE = (
    "GLUE2ServiceID=https://keystone.example.org:5000/v3_cloud.compute,GLUE2GroupID=resource,o=glue"
)


def make_config(state_dir: Path, **bdii: Any) -> AppConfig:
    import yaml

    data = {"site": {"name": "TEST-SITE"}, "paths": {"state_dir": str(state_dir)}, "bdii": bdii}
    return parse_config(yaml.safe_dump(data), environ={})


def write_snapshot(state_dir: Path, entries: list[Entry] | str) -> Path:
    p = state_dir / "cloud-info" / "snapshot.ldif"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(entries if isinstance(entries, str) else render(entries), encoding="utf-8")
    return p


class Run:
    """One bdii-update run against ``slapd`` with a counting writer connection."""

    def __init__(self, slapd: Slapd, state_dir: Path, **bdii: Any):
        self.slapd = slapd
        self.cfg = make_config(state_dir, **bdii)

    def __call__(self, **options: Any) -> tuple[RunReport, Ldap3Tree]:
        tree = Ldap3Tree(
            connect(self.slapd.url, bind_dn=self.slapd.rootdn(), password=self.slapd.password)
        )
        ctx = JobContext(
            config=self.cfg,
            options=argparse.Namespace(**options),
            deps=bdii_update.BdiiUpdateDeps(trees={"o=glue": tree}),
        )
        try:
            return bdii_update.run(ctx), tree
        finally:
            tree.close()


@pytest.fixture
def loaded(resource_slapd: Slapd, state_dir: Path) -> Run:
    """The example tree loaded (whatever an earlier test left is replaced)."""
    write_snapshot(state_dir, example_text())
    run = Run(resource_slapd, state_dir)
    report, _ = run()
    assert report.errors == [], report.errors
    return run


def test_example_loads_with_zero_failures_and_ldapsearch_returns_it(
    resource_slapd: Slapd, loaded: Run
) -> None:
    want = by_dn(parse(example_text()))
    got = by_dn(ldapsearch(resource_slapd.url, "o=glue"))
    assert set(got) == set(want)
    for dn, attrs in want.items():
        assert got[dn] == attrs, dn
    assert len(got) == 13


def test_second_sync_without_change_writes_nothing(resource_slapd: Slapd, loaded: Run) -> None:
    csn, ops = context_csn(resource_slapd.url), logged_writes(resource_slapd)
    report, tree = loaded()
    assert report.errors == []
    assert tree.writes == 0
    assert tree.ops["search"] == 0  # the applied state and the contextCSN: no read of the tree
    assert report.details["publish"] == "unchanged"
    assert (report.counts["added"], report.counts["modified"], report.counts["deleted"]) == (
        0,
        0,
        0,
    )
    assert report.counts["unchanged"] == 13
    assert context_csn(resource_slapd.url) == csn  # slapd's own record: nothing written
    assert logged_writes(resource_slapd) == ops


def test_change_is_applied_as_minimal_operations(
    resource_slapd: Slapd, loaded: Run, state_dir: Path
) -> None:
    entries = parse(example_text())
    image = next(e for e in entries if e.dn.startswith("GLUE2ApplicationEnvironmentID="))
    entries.remove(image)
    service = next(e for e in entries if e.dn == SERVICE)
    service.attrs["GLUE2ComputingServiceRunningJobs"] = ["5"]
    flavor = Entry(f"GLUE2ResourceID=new-flavor-id,{SERVICE}")
    flavor.add("objectClass", "GLUE2Entity", "GLUE2Resource", "GLUE2ExecutionEnvironment")
    flavor.add("GLUE2ResourceID", "new-flavor-id").add("GLUE2EntityName", "m1.huge")
    flavor.add(
        "GLUE2ResourceManagerForeignKey",
        "https://keystone.example.org:5000/v3_cloud.compute_manager",
    )
    flavor.add(
        "GLUE2ExecutionEnvironmentComputingManagerForeignKey",
        "https://keystone.example.org:5000/v3_cloud.compute_manager",
    )
    flavor.add("GLUE2ExecutionEnvironmentPlatform", "x86_64")
    flavor.add("GLUE2ExecutionEnvironmentMainMemorySize", 262144)
    flavor.add("GLUE2ExecutionEnvironmentOSFamily", "linux")
    flavor.add("GLUE2ExecutionEnvironmentConnectivityIn", "undefined")
    flavor.add("GLUE2ExecutionEnvironmentConnectivityOut", "true")
    flavor.add("GLUE2ExecutionEnvironmentTotalInstances", 0)
    flavor.add("GLUE2ExecutionEnvironmentCPUMultiplicity", "singlecpu-multicore")
    flavor.add("GLUE2ExecutionEnvironmentVirtualMachine", "true")
    entries.append(flavor)
    write_snapshot(state_dir, entries)
    ops_before = logged_writes(resource_slapd)

    report, tree = loaded()

    assert report.errors == []
    # the applied state says what changed: no read of the tree, one read of the modified entry
    assert tree.ops["search"] == 0
    assert (tree.ops["add"], tree.ops["modify"], tree.ops["delete"]) == (1, 1, 1)
    assert tree.ops["read_entry"] == 1
    assert logged_writes(resource_slapd) - ops_before == 3
    got = by_dn(ldapsearch(resource_slapd.url, "o=glue"))
    assert got == by_dn(entries)
    assert len(got) == 13


@pytest.mark.parametrize("content", [None, "", "# nothing yet\n", "base-only"])
def test_missing_or_empty_snapshot_deletes_nothing(
    resource_slapd: Slapd, loaded: Run, state_dir: Path, content: str | None
) -> None:
    path = state_dir / "cloud-info" / "snapshot.ldif"
    if content is None:
        path.unlink()
    elif content == "base-only":
        write_snapshot(state_dir, bdii_update.base_entries())
    else:
        path.write_text(content, encoding="utf-8")
    csn = context_csn(resource_slapd.url)
    report, tree = loaded()
    assert report.details["health"] == ("missing" if content is None else "empty")
    assert tree.writes == 0
    assert report.counts["deleted"] == 0
    assert report.counts["deletes_suppressed"] == 11
    assert len(ldapsearch(resource_slapd.url, "o=glue")) == 13
    assert context_csn(resource_slapd.url) == csn
    assert report.warnings


def test_stale_snapshot_is_served_without_deletes(
    resource_slapd: Slapd, loaded: Run, state_dir: Path
) -> None:
    entries = [
        e for e in parse(example_text()) if not e.dn.startswith("GLUE2ApplicationEnvironmentID=")
    ]
    service = next(e for e in entries if e.dn == SERVICE)
    service.attrs["GLUE2ComputingServiceTotalJobs"] = ["4"]
    path = write_snapshot(state_dir, entries)
    old = path.stat().st_mtime - 7200
    os.utime(path, (old, old))
    report, tree = loaded()
    assert report.details["health"] == "stale"
    # modified, the missing image kept
    assert (tree.ops["search"], tree.writes, tree.ops["modify"]) == (0, 1, 1)
    assert report.counts["deletes_suppressed"] == 1
    assert any("old" in w for w in report.warnings)
    assert len(ldapsearch(resource_slapd.url, "o=glue")) == 13


def test_unreadable_snapshot_is_an_error_and_deletes_nothing(
    resource_slapd: Slapd, loaded: Run, state_dir: Path
) -> None:
    write_snapshot(state_dir, "dn: o=glue\nno colon on this line\n")
    report, tree = loaded()
    assert report.details["health"] == "invalid"
    assert tree.writes == 0
    assert report.errors
    assert "line 2" in report.errors[0]
    assert len(ldapsearch(resource_slapd.url, "o=glue")) == 13


def test_failed_operations_are_counted_and_reported(
    resource_slapd: Slapd, loaded: Run, state_dir: Path
) -> None:
    entries = parse(example_text())
    bad = Entry(f"GLUE2ResourceID=bad-flavor,{SERVICE}")
    bad.add("objectClass", "GLUE2Entity", "GLUE2Resource", "GLUE2ExecutionEnvironment")
    bad.add("GLUE2ResourceID", "bad-flavor").add("GLUE2ResourceManagerForeignKey", "x")
    bad.add("GLUE2ExecutionEnvironmentComputingManagerForeignKey", "x")
    bad.add("GLUE2ExecutionEnvironmentPlatform", "x86_64").add(
        "GLUE2ExecutionEnvironmentOSFamily", "linux"
    )
    bad.add("GLUE2ExecutionEnvironmentConnectivityIn", "undefined")
    bad.add("GLUE2ExecutionEnvironmentConnectivityOut", "true")
    bad.add("GLUE2ExecutionEnvironmentTotalInstances", 0)
    bad.add("GLUE2ExecutionEnvironmentCPUMultiplicity", "singlecpu-multicore")
    bad.add("GLUE2ExecutionEnvironmentVirtualMachine", "true")
    bad.add("GLUE2ExecutionEnvironmentMainMemorySize", "UNKNOWN")  # INTEGER: rejected by slapd
    child = Entry(f"GLUE2BenchmarkID=b1,GLUE2ResourceID=bad-flavor,{SERVICE}")
    child.add("objectClass", "GLUE2Entity", "GLUE2Benchmark").add("GLUE2BenchmarkID", "b1")
    cloudy = Entry(f"GLUE2ResourceID=glue21,{SERVICE}").add(
        "objectClass", "GLUE2CloudComputingInstanceType"
    )
    entries += [bad, child, cloudy]
    write_snapshot(state_dir, entries)

    report, tree = loaded()

    assert report.counts["failed"] == 3
    assert report.counts["added"] == 0
    assert len(report.errors) == 3
    msgs = {
        next(e.dn for e in (bad, child, cloudy) if err.startswith(f"add {e.dn}: ")): err
        for err in report.errors
    }
    assert "21 invalidAttributeSyntax" in msgs[bad.dn]
    assert "parent entry could not be added" in msgs[child.dn]
    assert "objectClass" in msgs[cloudy.dn]
    assert tree.ops["add"] == 2  # the child of the rejected entry is not even tried
    assert len(ldapsearch(resource_slapd.url, "o=glue")) == 13


def test_provider_mode_prints_entries_below_the_resource_group(state_dir: Path) -> None:
    import io

    write_snapshot(state_dir, example_text())
    out = io.StringIO()
    ctx = JobContext(
        config=make_config(state_dir),
        options=argparse.Namespace(provider=True),
        deps=bdii_update.BdiiUpdateDeps(stdout=out),
    )
    report = bdii_update.run(ctx)
    printed = parse(out.getvalue())
    assert report.errors == []
    assert len(printed) == 11
    assert {e.dn for e in printed}.isdisjoint({"o=glue", "GLUE2GroupID=resource,o=glue"})


def test_with_slapd_starts_supervises_and_serves(
    state_dir: Path, supervised_cleanup: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    write_snapshot(state_dir, example_text())
    port = free_port()
    cfg = make_config(state_dir, port=port, maxsize_mb=64)
    opts = argparse.Namespace(with_slapd=True)
    report = bdii_update.run(JobContext(config=cfg, options=opts))
    assert report.errors == []
    assert report.counts["slapd_starts"] == 1
    assert report.counts["added"] == 13
    assert report.details["publish"] == "loaded"  # slapadd before slapd served
    url = f"ldap://127.0.0.1:{port}"
    assert len(ldapsearch(url, "o=glue")) == 13
    assert (
        ldapsearch(url, "mds-vo-name=resource,o=grid", "-s", "base")[0].first("mds-vo-name")
        == "resource"
    )
    stats = ldapsearch(url, "o=infosys", "(ou=bdii-update)")[0].get("description")
    assert {"entries=13", "failed=0", "health=ok"} <= set(stats)

    run_dir = state_dir / "bdii" / "run"
    pw_file = run_dir / "rootpw"
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((run_dir / "slapd.conf").stat().st_mode) == 0o600
    password = pw_file.read_text().strip()
    conf = (run_dir / "slapd.conf").read_text()
    assert password not in conf
    assert "rootpw          {SSHA}" in conf
    assert "maxsize         67108864" in conf
    assert password not in caplog.text

    stats_csn = context_csn(url, "o=infosys")
    again = bdii_update.run(
        JobContext(config=cfg, options=opts)
    )  # the same slapd, nothing to write
    assert context_csn(url, "o=infosys") == stats_csn  # the statistics did not change either
    assert "slapd_starts" not in again.counts
    assert again.details["publish"] == "unchanged"
    assert again.counts["unchanged"] == 13
    assert (again.counts["added"], again.counts["modified"], again.counts["deleted"]) == (0, 0, 0)

    # the supervised slapd dies: the next cycle restarts it (new password) and reloads the snapshot
    from fedcloud_core.bdii import service

    slapd = next(iter(service._supervised.values()))
    assert slapd.proc is not None
    slapd.proc.kill()
    slapd.proc.wait(10)
    third = bdii_update.run(JobContext(config=cfg, options=opts))
    assert third.counts["slapd_starts"] == 1
    assert third.counts["added"] == 13
    assert third.details["publish"] == "loaded"
    assert pw_file.read_text().strip() != password
