"""accounting extract against the real local OpenStack (fixture ``testbed``).

Expected values are computed here from the seed manifest's per-server timeline
(client-side request times), independently of the extractor; Nova's own
timestamps lag the requests by a few seconds, hence the tolerance.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting import jobs
from fedcloud_accounting.extract.openstack import OpenStackUsageSource
from fedcloud_accounting.extract.timeline import history_matters
from fedcloud_accounting.record.validate import (
    check_cloud_message,
    check_storage_message,
    parse_cloud_message,
)
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import ExitCode
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.openstack import OpenStackClients

pytestmark = pytest.mark.integration
TOL = 15  # seconds between the seed's request times and Nova's timestamps
OFF = {"stop", "suspend", "shelve", "pause"}
ON = {"start", "resume", "unshelve", "unpause"}
STATUS = {
    "ACTIVE": "started",
    "SHUTOFF": "suspended",
    "SUSPENDED": "suspended",
    "SHELVED_OFFLOADED": "suspended",
    "SHELVED": "suspended",
    "PAUSED": "paused",
    "ERROR": "error",
    "DELETED": "completed",
}


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def config_dict(testbed: Any, tmp: Path, vo_map: dict[str, str] | None = None) -> dict[str, Any]:
    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in (vo_map or testbed.seed["vo_map"]).items():
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    return {
        "site": {"name": "TESTBED-SITE"},
        "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(testbed.clouds_yaml)},
        "vos": vos,
        "paths": {"state_dir": str(tmp / "state"), "spool_dir": str(tmp / "spool")},
    }


def run_job(cfg: AppConfig, end: datetime | None, **deps: Any) -> Any:
    ns = argparse.Namespace(output_dir=None, extract_from=None, extract_to=end)
    return execute(
        jobs.JOBS[0], JobContext(config=cfg, options=ns, deps=jobs.AccountingDeps(**deps))
    )


def queued(root: Path, name: str = "cloud") -> list[str]:
    q = QueueSimple(str(root / name))
    out = []
    for elt in q:
        if q.lock(elt):
            out.append(q.get(elt).decode("ascii"))
            q.unlock(elt)
    return out


def records(root: Path) -> dict[str, dict[str, str]]:
    out = {}
    for text in queued(root):
        assert check_cloud_message(text) == []
        for rec in parse_cloud_message(text)[1]:
            out[rec["VMUUID"]] = rec
    return out


def expected(seed: dict[str, Any], name: str, end: int) -> dict[str, Any]:
    s = seed["servers"][name]
    tl = s["timeline"]
    start = ts(tl[0]["requested_at"])
    stop = end
    suspended, off_since = 0, None
    for step in tl[1:]:
        t = ts(step["requested_at"])
        if step["action"] == "delete":
            stop = t
            break
        if step["action"] in OFF and off_since is None:
            off_since = t
        elif step["action"] in ON and off_since is not None:
            suspended += t - off_since
            off_since = None
    if off_since is not None:
        suspended += stop - off_since
    never_ran = tl[0]["status"] == "ERROR"
    wall = 0 if never_ran else stop - start - suspended
    flavor = seed["flavors"][s["flavor"]["name"]]
    image = seed["images"].get(s["image"], {})
    mpuri = image.get("properties", {}).get("vmcatcher_event_ad_mpuri")
    return {
        "start": start,
        "end": stop if s["status"] == "DELETED" else 0,
        "wall": wall,
        "suspend": 0 if never_ran else suspended,
        "cpus": flavor["vcpus"],
        "memory": flavor["ram"],
        "disk": flavor["disk"] + flavor["ephemeral"],
        "status": STATUS[s["status"]],
        "vo": s["vo"],
        "image": mpuri or s["image_id"],
        "bench": flavor["extra_specs"].get("accounting:benchmark_value"),
        "ips": sum(1 for f in seed["floating_ips"] if f["server"] == name),
    }


@pytest.fixture
def madrid(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Madrid")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_records_of_the_seeded_servers_match_their_timelines(testbed, tmp_path, madrid):
    assert time.localtime().tm_gmtoff != 0
    seed = testbed.seed
    end = datetime.fromisoformat(seed["window"]["end"].replace("Z", "+00:00")) + timedelta(
        minutes=10
    )
    cfg = AppConfig.model_validate(config_dict(testbed, tmp_path))
    report = run_job(cfg, end)
    assert report.exit_code == ExitCode.OK, report.render_text()
    got = records(tmp_path / "spool" / "outgoing")
    mapped = [n for n, s in seed["servers"].items() if s["vo"]]
    assert mapped
    for name in mapped:
        s, want = seed["servers"][name], expected(seed, name, int(end.timestamp()))
        rec = got.get(s["id"])
        assert rec is not None, f"no record for {name}"
        where = f"{name}: {rec}"
        assert abs(int(rec["StartTime"]) - want["start"]) <= TOL, where
        if want["end"]:
            assert abs(int(rec["EndTime"]) - want["end"]) <= TOL, where
        else:
            assert rec["EndTime"] == "0", where
        assert abs(int(rec["WallDuration"]) - want["wall"]) <= TOL, where
        assert abs(int(rec["SuspendDuration"]) - want["suspend"]) <= TOL, where
        assert int(rec["CpuDuration"]) == int(rec["WallDuration"]) * want["cpus"], where
        stop = int(rec["EndTime"]) or int(end.timestamp())
        if want["wall"]:  # cumulative parts add up to the lifetime
            assert int(rec["WallDuration"]) + int(rec["SuspendDuration"]) == stop - int(
                rec["StartTime"]
            )
        assert (rec["CpuCount"], rec["Memory"], rec["Disk"]) == (
            str(want["cpus"]),
            str(want["memory"]),
            str(want["disk"]),
        ), where
        assert (rec["Status"], rec["FQAN"], rec["ImageId"]) == (
            want["status"],
            want["vo"],
            want["image"],
        )
        assert rec.get("Benchmark") == (str(float(want["bench"])) if want["bench"] else None), where
        assert rec["PublicIPCount"] == str(want["ips"]), where
        assert rec["MachineName"] == name
        assert rec["SiteName"] == "TESTBED-SITE"
    unmapped = {s["id"] for s in seed["servers"].values() if not s["vo"]}
    assert not unmapped & set(got)
    storage = queued(tmp_path / "spool" / "outgoing", "storage")
    assert storage
    assert all(check_storage_message(t) == [] for t in storage)
    vols = {v["id"] for v in seed["volumes"].values() if v["vo"]}
    assert all(any(f'recordId="{v}"' in t for t in storage) for v in vols)


class _Unreachable(OpenStackUsageSource):
    """The real source, except that one project's Nova is behind an endpoint that refuses."""

    def __init__(
        self, clients: OpenStackClients, broken_project: str, broken: OpenStackUsageSource
    ):
        super().__init__(clients)
        self.broken_project = broken_project
        self.broken = broken

    def servers(self, project_id, deleted_since):
        if project_id == self.broken_project:
            return self.broken.servers(project_id, deleted_since)
        return super().servers(project_id, deleted_since)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: connections are refused


def test_openstack_down_for_one_project_keeps_its_checkpoint_and_a_rerun_completes(
    testbed, tmp_path
):
    cfg = AppConfig.model_validate(config_dict(testbed, tmp_path))
    pids = sorted(testbed.seed["vo_map"])
    second = pids[1]
    good = OpenStackClients.from_config(cfg.openstack)
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    dead = ks_session.Session(
        auth=v3.Password(
            auth_url=f"http://127.0.0.1:{_closed_port()}/v3",
            username="x",
            password="y",
            user_domain_name="Default",
            project_name="x",
            project_domain_name="Default",
        ),
        timeout=5,
    )
    broken = OpenStackUsageSource(OpenStackClients(dead, good.region_name))
    end = datetime.now(UTC).replace(microsecond=0)
    report = run_job(cfg, end, source=_Unreachable(good, second, broken))
    assert report.exit_code == ExitCode.PARTIAL, report.render_text()
    assert any(second in e and "OpenStack failed" in e for e in report.errors)
    from fedcloud_accounting.checkpoint import CheckpointStore
    from fedcloud_accounting.extractor import checkpoint_path

    store = CheckpointStore(checkpoint_path(cfg))
    assert set(store.load()) == set(pids) - {second}
    got = records(tmp_path / "spool" / "outgoing")
    projects = {r["LocalGroupId"] for r in got.values()}
    assert projects == set(pids) - {second}  # the others were delivered
    # the cloud is back: the rerun delivers the second project from its first-run window
    report = run_job(cfg, end + timedelta(seconds=1))
    assert report.exit_code == ExitCode.OK, report.render_text()
    assert set(store.load()) == set(pids)
    got = records(tmp_path / "spool" / "outgoing")
    seeded = {s["id"] for s in testbed.seed["servers"].values() if s["project_id"] == second}
    assert seeded <= {k for k, r in got.items() if r["LocalGroupId"] == second}


def test_unknown_project_is_reported_and_the_others_delivered(testbed, tmp_path):
    pid = sorted(testbed.seed["vo_map"])[0]
    cfg = AppConfig.model_validate(config_dict(testbed, tmp_path, {pid: "ops", "0" * 32: "ops"}))
    report = run_job(cfg, None)
    assert report.exit_code == ExitCode.PARTIAL
    assert any("0" * 32 in e and "does not exist" in e for e in report.errors)
    assert {r["LocalGroupId"] for r in records(tmp_path / "spool" / "outgoing").values()} == {pid}


def test_two_concurrent_runs_one_exits_4_one_waits(testbed, tmp_path):
    import yaml

    cfg_path = tmp_path / "appliance.yaml"
    cfg_path.write_text(yaml.safe_dump(config_dict(testbed, tmp_path)))
    cmd = [
        sys.executable,
        "-m",
        "fedcloud_appliance",
        "accounting",
        "extract",
        "--once",
        "--config",
        str(cfg_path),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    lock = tmp_path / "state" / "locks" / "accounting-extract.lock"
    first = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.read_text().strip() == str(first.pid)
        second = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert second.returncode == ExitCode.LOCKED, second.stderr
        assert "in progress" in second.stderr
        third = subprocess.run(
            [*cmd, "--wait-lock", "120"],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
            check=False,
        )
        out, err = first.communicate(timeout=120)
        assert first.returncode == ExitCode.OK, out + err
        assert third.returncode == ExitCode.OK, third.stdout + third.stderr
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=30)


class _CountingSource(OpenStackUsageSource):
    """The real source, counting the per-server instance-action reads."""

    def __init__(self, clients: OpenStackClients):
        super().__init__(clients)
        self.action_reads: list[str] = []

    def actions(self, server_id):
        self.action_reads.append(server_id)
        return super().actions(server_id)


def test_a_rerun_reads_the_actions_of_no_unchanged_server_and_queues_the_same_records(
    testbed, tmp_path
):
    seed = testbed.seed
    end = datetime.fromisoformat(seed["window"]["end"].replace("Z", "+00:00")) + timedelta(
        minutes=10
    )
    start = end - timedelta(days=30)
    # the run's clock is 10 minutes ahead, so that servers the seed touched just now count
    # as settled (the cache keeps a history only when read > 5 min after the last update)
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    got, reads = [], []
    for i in (1, 2):
        d = config_dict(testbed, tmp_path)
        d["paths"]["spool_dir"] = str(tmp_path / f"spool{i}")
        cfg = AppConfig.model_validate(d)
        source = _CountingSource(OpenStackClients.from_config(cfg.openstack))
        ns = argparse.Namespace(output_dir=None, extract_from=start, extract_to=end)
        report = execute(
            jobs.JOBS[0],
            JobContext(
                config=cfg, options=ns, deps=jobs.AccountingDeps(source=source, now=lambda: now)
            ),
        )
        assert report.exit_code == ExitCode.OK, report.render_text()
        # the rerun asks Nova only for the servers changed since the first run's listing
        kind = "server_lists_full" if i == 1 else "server_lists_changes_only"
        assert report.counts[kind] == len(seed["vo_map"]), report.counts
        got.append(records(tmp_path / f"spool{i}" / "outgoing"))
        reads.append(source.action_reads)
    listed = {
        s.id: s
        for pid in seed["vo_map"]
        for s in OpenStackUsageSource(OpenStackClients.from_config(cfg.openstack)).servers(
            pid, start
        )
        if s.created <= end
    }
    seeded = {s["id"] for s in seed["servers"].values() if s["vo"]}
    assert seeded <= set(listed)
    # the first run reads every history that can change a record: not those of servers
    # ACTIVE since their first launch, nor of the one that never launched
    build = timedelta(seconds=cfg.accounting.max_build_seconds)
    assert sorted(reads[0]) == sorted(k for k, s in listed.items() if history_matters(s, build))
    changed = {"ops-suspended", "ops-shutoff", "ops-deleted", "fc-cycled", "fc-shelved"}
    changed |= {"fc2-deleted", "fc2-paused"}
    names = {s["id"]: n for n, s in seed["servers"].items() if s["vo"]}
    assert {names[k] for k in set(reads[0]) & seeded} == changed
    assert reads[1] == [sid for sid, s in listed.items() if s.updated is None]  # none here
    assert got[1] == got[0]
    assert (tmp_path / "state" / "accounting" / "actions").is_dir()
