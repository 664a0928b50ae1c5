"""Faults of ``accounting extract`` against the testbed's Nova: the appliance SIGKILLed mid-run,
and the appliance's clock 10 minutes ahead of the cloud's (libfaketime on the subprocess).

Both run the real command line (``python -m fedcloud_appliance accounting extract --once``) with
a fresh state and spool directory per run family.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from dirq.QueueSimple import QueueSimple

from faults.faultlib import wait_for
from fedcloud_accounting.record.validate import (
    check_cloud_message,
    check_json_message,
    check_storage_message,
    parse_cloud_message,
)
from fedcloud_core.report import load_report
from testbed import layout

pytestmark = pytest.mark.faults

CHECKS = {
    "cloud": check_cloud_message,
    "storage": check_storage_message,
    "ip": check_json_message,
    "accelerator": check_json_message,
}
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def write_config(path: Path, testbed: Any, root: Path, vo_map: dict[str, str]) -> Path:
    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in vo_map.items():
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    doc = {
        "site": {"name": "TESTBED-SITE"},
        "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(testbed.clouds_yaml)},
        "vos": vos,
        "paths": {"state_dir": str(root / "state"), "spool_dir": str(root / "spool")},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def extract_cmd(cfg: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fedcloud_appliance",
        "accounting",
        "extract",
        "--once",
        "--config",
        str(cfg),
        "--report-format",
        "json",
        *extra,
    ]


ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _cloud_records(message: str) -> set[str]:
    """The records of an APEL cloud message (between its header line and ``%%`` lines)."""
    body = message.split("\n", 1)[1]
    return {r.strip() + "\n" for r in body.split("%%") if r.strip()}


def queue_messages(outgoing: Path) -> dict[str, list[str]]:
    """Every element of every queue (what ssm send would read), as text."""
    out: dict[str, list[str]] = {}
    if not outgoing.is_dir():
        return out
    for qdir in sorted(p for p in outgoing.iterdir() if p.is_dir()):
        q = QueueSimple(str(qdir))
        for name in q:
            out.setdefault(qdir.name, []).append((qdir / name).read_text(encoding="ascii"))
    return out


def tmp_leftovers(outgoing: Path) -> list[str]:
    return [str(p) for p in outgoing.rglob("*") if p.is_file() and not p.name.isalnum()]


# ----------------------------------------------------------------------------------- (f) kill


def test_appliance_killed_during_extraction_rerun_completes_same_records(
    testbed: Any, tmp_path: Path
) -> None:
    end = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    vo_map = testbed.seed["vo_map"]
    killed_root, ref_root = tmp_path / "killed", tmp_path / "reference"
    cfg = write_config(tmp_path / "killed.yaml", testbed, killed_root, vo_map)
    ref_cfg = write_config(tmp_path / "reference.yaml", testbed, ref_root, vo_map)
    outgoing = killed_root / "spool" / "outgoing"

    # the run is SIGKILLed as soon as its first message is in the queue
    proc = subprocess.Popen(
        extract_cmd(cfg, "--extract-to", end),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        wait_for(
            lambda: (
                proc.poll() is not None
                or any(p.is_file() and p.name.isalnum() for p in outgoing.rglob("*"))
            ),
            timeout=120,
            step=0.005,
            what="a first queued message",
        )
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert load_report(killed_root / "state", "accounting-extract") is None  # no report stored
    after_kill = queue_messages(outgoing)
    for kind, msgs in after_kill.items():  # whatever is in the queue is whole and valid
        for m in msgs:
            assert CHECKS[kind](m) == [], kind

    # the rerun (same window end) completes; an uninterrupted run into another dir for reference
    rerun = subprocess.run(
        extract_cmd(cfg, "--extract-to", end), capture_output=True, text=True, env=ENV, timeout=300
    )
    print("operator sees (rerun):", rerun.stdout.strip().splitlines()[-1:] if rerun.stdout else "")
    assert rerun.returncode in (0, 3), rerun.stderr[-2000:]
    ref = subprocess.run(
        extract_cmd(ref_cfg, "--extract-to", end),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert ref.returncode == rerun.returncode, ref.stderr[-2000:]
    assert load_report(killed_root / "state", "accounting-extract")["status"] == "ok"

    got, want = queue_messages(outgoing), queue_messages(ref_root / "spool" / "outgoing")
    assert set(got) == set(want)
    for kind in want:
        for m in got[kind]:
            assert CHECKS[kind](m) == [], kind
        # every reference message is there, byte for byte
        assert set(want[kind]) <= set(got[kind]), kind
        extra = set(got[kind]) - set(want[kind])
        print(f"{kind}: {len(want[kind])} messages, {len(extra)} more")
        if kind != "cloud":
            assert not extra, kind
            continue
        # a project the killed run finished (message queued, checkpoint moved just before the
        # kill) is extracted again from its checkpoint: a second message with the records of
        # the servers of that window, each the same record, byte for byte, as the reference's
        records = {r for m in want[kind] for r in _cloud_records(m)}
        for m in extra:
            assert _cloud_records(m) <= records, m
        assert len(extra) <= len(after_kill.get(kind, [])), kind
    assert tmp_leftovers(outgoing) == []
    ckpt = json.loads((killed_root / "state" / "accounting" / "checkpoints.json").read_text())
    ref_ckpt = json.loads((ref_root / "state" / "accounting" / "checkpoints.json").read_text())
    assert ckpt == ref_ckpt


# ----------------------------------------------------------------------------------- (g) clock


@pytest.fixture
def temp_project(testbed: Any) -> Any:
    """A project of its own (unique name) with the admin as member, removed with its servers."""
    from keystoneauth1.exceptions import NotFound

    adm = testbed.admin_session()
    ks = testbed.keystone(adm)
    name = f"fault-clock-{uuid.uuid4().hex[:8]}"
    project = ks.projects.create(name=name, domain="default", description="fault tier")
    admin_user = ks.users.find(name="admin")
    ks.roles.grant(ks.roles.find(name="admin"), user=admin_user, project=project)
    nova = testbed.nova(testbed.session("admin", layout.ADMIN_PASSWORD, name))
    try:
        yield project, nova
    finally:
        for s in nova.servers.list():
            try:
                nova.servers.force_delete(s.id)
            except Exception:
                nova.servers.delete(s.id)
        deadline = time.monotonic() + 60
        while nova.servers.list() and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            ks.projects.delete(project)
        except NotFound:
            pass


def wait_server(nova: Any, server_id: str, status: str, timeout: float = 90) -> None:
    from novaclient import exceptions as nexc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = nova.servers.get(server_id)
        except nexc.NotFound:
            if status == "DELETED":
                return
            raise
        if s.status == status and getattr(s, "OS-EXT-STS:task_state", None) is None:
            return
        if s.status == "ERROR":
            raise AssertionError(f"server {server_id} went to ERROR")
        time.sleep(0.5)
    raise AssertionError(f"server {server_id} did not reach {status} in {timeout:g}s")


def cloud_records(outgoing: Path) -> list[dict[str, str]]:
    out = []
    for m in queue_messages(outgoing).get("cloud", []):
        out.extend(parse_cloud_message(m)[1])
    return out


@pytest.mark.skipif(not FAKETIME_LIB.is_file(), reason="libfaketime is not installed")
def test_clock_ten_minutes_ahead_deleted_server_gets_its_final_record(
    testbed: Any, tmp_path: Path, temp_project: Any
) -> None:
    project, nova = temp_project
    seed = testbed.seed
    cfg = write_config(tmp_path / "appliance.yaml", testbed, tmp_path, {project.id: "ops"})
    outgoing = tmp_path / "spool" / "outgoing"
    env = {
        **ENV,
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME": "+10m",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }
    srv = nova.servers.create(
        "fault-clock",
        seed["images"]["cirros-plain"]["id"],
        seed["flavors"]["m1.small"]["id"],
        nics="none",
    )
    wait_server(nova, srv.id, "ACTIVE")

    first = subprocess.run(extract_cmd(cfg), capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    ckpt = json.loads((tmp_path / "state" / "accounting" / "checkpoints.json").read_text())
    ahead = datetime.fromisoformat(ckpt["projects"][project.id].replace("Z", "+00:00"))
    assert ahead > datetime.now(UTC) + timedelta(minutes=9)  # the checkpoint is in Nova's future
    recs = [r for r in cloud_records(outgoing) if r["VMUUID"] == srv.id]
    assert [r["Status"] for r in recs] == ["started"]

    nova.servers.delete(srv.id)  # Nova's deleted_at: now, 10 minutes before the checkpoint
    wait_server(nova, srv.id, "DELETED")
    second = subprocess.run(extract_cmd(cfg), capture_output=True, text=True, env=env, timeout=300)
    print("operator sees:", second.stdout.strip().splitlines()[-1:] if second.stdout else "")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    final = [r for r in cloud_records(outgoing) if r["VMUUID"] == srv.id]
    assert "completed" in [r["Status"] for r in final], (
        "the server deleted before the (clock-ahead) checkpoint never got its final record"
    )
    done = next(r for r in final if r["Status"] == "completed")
    assert int(done["EndTime"]) > 0
    assert abs(int(done["EndTime"]) - int(time.time())) < 300
    shutil.rmtree(outgoing, ignore_errors=True)
