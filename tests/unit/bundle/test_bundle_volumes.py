"""The BDIIs (uid 2170, group 10001) never get the jobs' state volume (issue 18, defect 12).

They keep their own state (slapd data, locks, run reports) in the ``bdii`` volume and read
the cloud-info snapshot from the ``infosys`` volume, read-only; the status page reads the
BDIIs' reports from their volume, read-only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fedcloud_appliance import oneshot, status
from fedcloud_core.config import parse_config
from fedcloud_core.report import RunReport, store_report

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
RAW = (ROOT / "compose" / "docker-compose.yml").read_text()
SERVICES = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", RAW))["services"]
STATE = "/var/lib/fedcloud-appliance"
SNAPSHOT_DIR = f"{STATE}/cloud-info"
BDII_SERVICES = sorted(n for n, s in SERVICES.items() if s.get("user", "").startswith("2170:"))


def _mounts(svc: dict) -> dict[str, tuple[str, bool]]:
    """target -> (source, writable)."""
    out = {}
    for v in svc.get("volumes", []):
        src, target, *mode = v.split(":")
        out[target] = (src, "ro" not in mode)
    return out


def test_the_bdiis_are_the_2170_services():
    assert BDII_SERVICES == ["resource-bdii", "site-bdii"]


@pytest.mark.parametrize("name", BDII_SERVICES)
def test_no_bdii_mounts_the_jobs_state_volume(name):
    mounts = _mounts(SERVICES[name])
    assert all(src != "state" for src, _ in mounts.values()), mounts
    assert all(src not in ("spool", "images") for src, _ in mounts.values()), mounts
    # its own volume where its config defaults put slapd data, locks and run reports
    assert mounts[STATE] == ("bdii", True)
    for target, (src, writable) in mounts.items():
        if writable:
            assert src == "bdii", f"{name}: only its own volume is writable, not {src} ({target})"


def test_the_resource_bdii_reads_the_snapshot_read_only():
    assert _mounts(SERVICES["resource-bdii"])[SNAPSHOT_DIR] == ("infosys", False)
    assert SNAPSHOT_DIR not in _mounts(SERVICES["site-bdii"])  # it asks the resource BDII


def test_the_jobs_never_mount_the_bdii_volume_and_cloud_info_writes_the_snapshot():
    for name, svc in SERVICES.items():
        if name in BDII_SERVICES:
            continue
        mounts = _mounts(svc)
        for target, (src, writable) in mounts.items():
            if src == "bdii":
                assert (name, target, writable) == ("status-web", "/var/lib/fedcloud-bdii", False)
    for name in ("scheduler", "cloud-info"):
        assert _mounts(SERVICES[name])[SNAPSHOT_DIR] == ("infosys", True), name
    spec = oneshot.container_spec("cloud-info", oneshot.OneshotSettings(volume_prefix="p"))
    m = {x["Target"]: x for x in spec["mounts"]}
    assert (m[SNAPSHOT_DIR]["Source"], m[SNAPSHOT_DIR]["ReadOnly"]) == ("p-infosys", False)
    for job in oneshot.JOBS:
        srcs = {
            x["Source"] for x in oneshot.container_spec(job, oneshot.OneshotSettings())["mounts"]
        }
        assert "fedcloud-bdii" not in srcs, job


def test_status_web_reads_the_bdii_reports_from_their_volume():
    svc = SERVICES["status-web"]
    cmd = svc["command"]
    assert cmd[cmd.index("--reports-from") + 1] == "/var/lib/fedcloud-bdii"
    assert _mounts(svc)["/var/lib/fedcloud-bdii"] == ("bdii", False)


def test_images_give_new_volumes_the_right_owner():
    """A new named volume takes the owner of its mount point in the image: the snapshot
    directory belongs to the jobs (the BDII only reads it), the BDII volume to the BDII."""
    app = (ROOT / "compose" / "images" / "appliance" / "Dockerfile").read_text()
    bdii = (ROOT / "compose" / "images" / "bdii" / "Dockerfile").read_text()
    assert "install -d -o 10001 -g 10001 -m 2755 /var/lib/fedcloud-appliance/cloud-info" in app
    assert "install -d -o 2170 -g 10001 -m 2750 /var/lib/fedcloud-bdii" in app
    assert "install -d -o 10001 -g 10001 -m 2755 /var/lib/fedcloud-appliance/cloud-info" in bdii
    assert "install -d -o 2170 -g 10001 -m 2750 /var/lib/fedcloud-appliance " in bdii


def test_status_takes_each_jobs_newest_report_from_the_given_state_dirs(tmp_path: Path):
    cfg = parse_config(
        f"site: {{name: DEMO-SITE}}\npaths: {{state_dir: {tmp_path}/state}}\n",
        source="test",
        environ={},
    )
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def report(job: str, finished: datetime, **kw: object) -> RunReport:
        r = RunReport(job=job, started=finished - timedelta(seconds=5), **kw)  # type: ignore[arg-type]
        r.finished = finished
        return r

    jobs_state, bdii_state = tmp_path / "state", tmp_path / "bdii"
    # left in the jobs' state by the release before the BDII volume
    store_report(jobs_state, report("bdii-update", now - timedelta(days=3), fatal="old"))
    store_report(bdii_state, report("bdii-update", now - timedelta(minutes=2)))
    store_report(bdii_state, report("site-bdii", now - timedelta(minutes=1)))
    store_report(jobs_state, report("cloud-info", now - timedelta(minutes=3)))

    rows = {
        r["key"]: r for r in status.collect(cfg, now, probe=None, report_dirs=[bdii_state])["jobs"]
    }
    assert rows["bdii-update"]["status"] == "ok"
    assert rows["bdii-update"]["heartbeat_age_seconds"] is not None
    assert rows["site-bdii"]["status"] == "ok"
    assert rows["cloud-info"]["status"] == "ok"
    assert rows["accounting-extract"]["status"] == "never"
    without = {r["key"]: r for r in status.collect(cfg, now, probe=None)["jobs"]}
    assert without["bdii-update"]["status"] == "failed"  # only the stale one
    assert without["site-bdii"]["status"] == "never"


def test_the_host_key_and_the_image_cache_never_share_a_container():
    """Images are untrusted input (issue 18): a container that mounts /etc/grid-security
    (host key and certificate: the ssm signer) never mounts the image cache, and a container
    that runs the images job sees only the CA directory."""
    for name, svc in SERVICES.items():
        mounts = _mounts(svc)
        sources = {src for src, _ in mounts.values()}
        if "/etc/grid-security" in mounts:
            assert "images" not in sources, name
        if "images" in sources and any(w for s, w in mounts.values() if s == "images"):
            assert "/etc/grid-security" not in mounts, name
            assert mounts["/etc/grid-security/certificates"][1] is False, name
    images = oneshot.container_spec("images-sync", oneshot.OneshotSettings())["mounts"]
    assert "/etc/grid-security" not in {m["Target"] for m in images}
