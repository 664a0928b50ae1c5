from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest

from fedcloud_cloudinfo import snapshot_files
from fedcloud_cloudinfo.collect import CollectOptions, CollectTimeout, collect
from fedcloud_cloudinfo.jobs import CLOUD_INFO_JOB, CloudInfoDeps
from fedcloud_core import ldif
from fedcloud_core.config import parse_config
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.report import RunReport, RunStatus
from unit.cloudinfo.cloudinfo_fakes import NOW, FakeSource

pytestmark = pytest.mark.unit

CFG = "site: {name: TEST-SITE}\nvos: {ops: {projects: [ops-project]}, fedcloud.egi.eu: {projects: [p-fc]}}\n"


def _cfg(tmp_path: Path, extra: str = ""):
    return parse_config(
        CFG + f"paths: {{state_dir: {tmp_path}}}\n" + extra, source="test", environ={}
    )


def _collect(tmp_path: Path, source: FakeSource | None = None, **kw):
    report = RunReport(job="cloud-info")
    site = collect(source or FakeSource(), _cfg(tmp_path), report, CollectOptions(**kw), now=NOW)
    return site, report


def test_projects_by_name_and_id_become_shares(tmp_path: Path) -> None:
    site, report = _collect(tmp_path)
    assert [(s.vo, s.project_id, s.project_name) for s in site.shares] == [
        ("fedcloud.egi.eu", "p-fc", "fedcloud"),
        ("ops", "p-ops", "ops-project"),
    ]
    assert report.errors == []


def test_unknown_project_is_reported_and_rest_goes_on(tmp_path: Path) -> None:
    cfg = parse_config(
        CFG.replace("[p-fc]", "[p-fc, nope]") + f"paths: {{state_dir: {tmp_path}}}\n",
        source="t",
        environ={},
    )
    report = RunReport(job="cloud-info")
    site = collect(FakeSource(), cfg, report, CollectOptions(), now=NOW)
    assert len(site.shares) == 2
    assert any("'nope' not found" in e for e in report.errors)


def test_flavors_access_accelerator_benchmark(tmp_path: Path) -> None:
    site, _ = _collect(tmp_path)
    assert [f.id for f in site.flavors] == ["f1", "f2"]  # f3 is private to an unmapped project
    gpu = site.flavor("f2")
    assert gpu is not None
    assert gpu.accelerator is not None
    assert (gpu.accelerator.type, gpu.accelerator.number, gpu.accelerator.model) == ("GPU", 2, "T4")
    assert gpu.infiniband
    # accounting:benchmark_type HEPSPEC06 is published as the GLUE2 Benchmark_t hep-spec06
    assert gpu.benchmarks == (("hep-spec06", "10.5"), ("hepscore23", "42.1"))
    shares = {s.project_id: s for s in site.shares}
    assert shares["p-fc"].flavor_ids == ("f1", "f2")
    assert shares["p-ops"].flavor_ids == ("f1",)


def test_images_marketplace_only_and_visibility(tmp_path: Path) -> None:
    site, report = _collect(tmp_path)
    assert [i.id for i in site.images] == ["i-comm", "i-pub", "i-reg", "i-shared"]
    shares = {s.project_id: s for s in site.shares}
    assert shares["p-ops"].image_ids == ("i-comm", "i-pub", "i-reg")
    assert shares["p-fc"].image_ids == ("i-comm", "i-pub", "i-reg", "i-shared")
    pub = next(i for i in site.images if i.id == "i-pub")
    assert (pub.os_name, pub.os_version, pub.platform, pub.version) == (
        "ubuntu",
        "22.04",
        "x86_64",
        "2024.1",
    )
    assert pub.description == "Ubuntu title"
    assert pub.disk_size == 3
    assert pub.min_ram == 1024
    assert dict(pub.other_info) == {
        "ad:base_mpuri": "https://base/1",
        "base_mpuri": "https://base/1",
        "hv:version": "2024.1",
    }
    assert any("i-comm" in w and "not JSON" in w for w in report.warnings)
    assert report.counts["images_skipped_no_marketplace"] == 1


def test_all_images_publishes_own_private_snapshot_only_to_owner(tmp_path: Path) -> None:
    site, _ = _collect(tmp_path, publish_all_images=True)
    shares = {s.project_id: s for s in site.shares}
    assert "i-snap" in shares["p-ops"].image_ids
    assert "i-snap" not in shares["p-fc"].image_ids
    assert "i-priv-other" not in {i.id for i in site.images}


def test_quotas_and_server_states(tmp_path: Path) -> None:
    site, _ = _collect(tmp_path)
    ops = next(s for s in site.shares if s.vo == "ops")
    # ACTIVE 2 -> running; BUILD -> waiting; SUSPENDED + PAUSED -> suspended;
    # SHUTOFF + SHELVED_OFFLOADED -> halted; ERROR in no state and so not in the total
    assert (ops.running, ops.waiting, ops.suspended, ops.halted) == (2, 1, 2, 2)
    assert ops.total == 7
    assert (ops.max_instances, ops.max_cores, ops.max_ram) == (10, 20, 51200)
    assert (ops.used_cores, ops.free_cores) == (5, 15)
    fc = next(s for s in site.shares if s.vo == "fedcloud.egi.eu")
    assert fc.free_cores is None  # unlimited quota
    assert (site.total_logical_cpus, site.total_physical_cpus) == (96, 48)


def test_registry_image_keeps_egi_keys(tmp_path: Path) -> None:
    site, _ = _collect(tmp_path)
    reg = next(i for i in site.images if i.id == "i-reg")
    assert dict(reg.other_info) == {
        "eu.egi.cloud.image_ref": "egi_vm_images/ubuntu:22.04",
        "eu.egi.cloud.tag": "2025-09-04-4d7122d6",
        "org.openstack.glance.os_distro": "ubuntu",
        "sl:checksum": '{"sha512":"ab"}',
    }
    assert reg.version == "2025-09-04-4d7122d6"


def test_unreadable_hypervisors_give_placeholders_not_errors(tmp_path: Path) -> None:
    src = FakeSource()
    src.hypervisors_forbidden = True  # a reader: Nova answers 403
    site, report = _collect(tmp_path, src)
    assert (site.total_logical_cpus, site.total_physical_cpus) == (None, None)
    assert report.errors == []
    assert report.counts["servers_not_counted"] == 1  # the ERROR server


def test_api_cost_is_flat(tmp_path: Path) -> None:
    src = FakeSource()
    _collect(tmp_path, src)
    names = [c[0] for c in src.calls]
    for once in ("versions", "projects", "flavors", "images"):
        assert names.count(once) == 1
    assert names.count("quotas") == names.count("server_states") == 2  # per mapped project
    assert names.count("flavor_projects") == 2  # per private flavor, not per VO
    assert names.count("image_members") == 1  # per shared candidate image
    assert names.count("capacity") == 1  # hypervisor totals: one call for the cloud
    # ten more public images and flavors cost nothing extra
    src2 = FakeSource()
    src2.image_list += [
        type(src2.image_list[0])(f"x{n}", "x", "public", None, {"marketplace": "https://m/"})
        for n in range(10)
    ]
    src2.flavor_list += [type(src2.flavor_list[0])(f"fx{n}", "x", 1, 512, 1) for n in range(10)]
    _collect(tmp_path, src2)
    assert src2.api_calls == src.api_calls


def test_one_failing_project_call_is_reported(tmp_path: Path) -> None:
    src = FakeSource()
    src.fail.add(("quotas", "p-ops"))
    site, report = _collect(tmp_path, src)
    ops = next(s for s in site.shares if s.vo == "ops")
    assert ops.max_instances is None
    assert ops.total == 7
    assert len(report.errors) == 1
    assert "quotas of p-ops" in report.errors[0]


def test_timeout(tmp_path: Path) -> None:
    src = FakeSource()
    src.delay = 0.2
    with pytest.raises(CollectTimeout):
        _collect(tmp_path, src, timeout=0.5)


def _ctx(tmp_path: Path, src: FakeSource, **opts) -> JobContext:
    ns = argparse.Namespace(format=None, output=None, all_images=None, **opts)
    return JobContext(
        config=_cfg(tmp_path),
        options=ns,
        deps=CloudInfoDeps(cloud_source=src, now=NOW),
        dry_run=opts.get("dry_run", False),
    )


def test_job_writes_snapshot_and_keeps_it_on_failure(tmp_path: Path) -> None:
    report = execute(CLOUD_INFO_JOB, _ctx(tmp_path, FakeSource()))
    assert report.status is RunStatus.OK, report.render_text()
    path = snapshot_files.ldif_path(_cfg(tmp_path))
    first = path.read_text()
    assert len(ldif.parse(first)) == report.counts["entries"]
    assert report.counts["api_calls"] == 12  # 4 lists + 2x2 per project + 2 + 1 + capacity
    broken = FakeSource()
    broken.fail.add(("images", ""))
    report = execute(CLOUD_INFO_JOB, _ctx(tmp_path, broken))
    assert report.status is RunStatus.FAILED
    assert "images" in (report.fatal or "")
    assert path.read_text() == first


def test_unchanged_cloud_gives_identical_snapshot(tmp_path: Path) -> None:
    from datetime import timedelta

    execute(CLOUD_INFO_JOB, _ctx(tmp_path, FakeSource()))
    path = snapshot_files.ldif_path(_cfg(tmp_path))
    first = path.read_text()
    later = _ctx(tmp_path, FakeSource())
    later.deps = replace(later.deps, now=NOW + timedelta(minutes=10))
    execute(CLOUD_INFO_JOB, later)
    assert path.read_text() == first
    changed = FakeSource()
    changed.quota["p-ops"] = {"instances": 11, "cores": 20, "ram": 51200}
    ctx = _ctx(tmp_path, changed)
    ctx.deps = replace(ctx.deps, now=NOW + timedelta(minutes=20))
    execute(CLOUD_INFO_JOB, ctx)
    new = ldif.parse(path.read_text())
    times = {
        e.first("GLUE2EntityCreationTime")
        for e in new
        if e.first("GLUE2ComputingShareMaxRunningJobs")
    }
    assert times == {"2026-11-21T10:00:00Z", "2026-11-21T10:20:00Z"}


def test_dry_run_prints_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = _ctx(tmp_path, FakeSource(), dry_run=True)
    ctx.options.format = "glue21-json"
    report = execute(CLOUD_INFO_JOB, ctx)
    assert report.status is RunStatus.DRY_RUN
    assert '"CloudComputingService"' in capsys.readouterr().out
    assert not snapshot_files.ldif_path(_cfg(tmp_path)).exists()


def test_json_format_also_writes_glue20_snapshot_and_output(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, FakeSource())
    ctx.options.format = "glue21-json"
    ctx.options.output = tmp_path / "out.json"
    execute(CLOUD_INFO_JOB, ctx)
    cfg = _cfg(tmp_path)
    assert "GLUE2ComputingService" in snapshot_files.ldif_path(cfg).read_text()
    assert (tmp_path / "out.json").read_text() == snapshot_files.json_path(cfg).read_text()
