"""Host side of the bundle: systemd units (systemd-analyze verify), cron file, wrapper scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROOTFS = ROOT / "ova" / "rootfs"
UNITS = ["bdii.service", "fedcloud-appliance.service", "fedcloud-status-web.service"]


@pytest.mark.unit
def test_bdii_unit_drives_the_bdii_containers_through_compose():
    text = (ROOTFS / "etc/systemd/system/bdii.service").read_text()
    assert (
        "ExecStart=/usr/bin/docker-compose up --no-build --no-color resource-bdii site-bdii" in text
    )
    assert "ExecStop=/usr/bin/docker-compose stop --timeout 20 resource-bdii site-bdii" in text
    assert "Requires=docker.service" in text


@pytest.mark.unit
def test_the_units_start_and_stop_every_service_of_scheduler_mode():
    """Each always-on compose service (no profile) is started, created and stopped by one
    unit: a new container (e.g. images-scheduler, issue 18) is not left out of the OVA."""
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    always = {n for n, s in compose["services"].items() if "profiles" not in s}
    verbs = {"up --no-build --no-start": set(), "up --no-build --no-color": set(), "stop": set()}
    for u in UNITS:
        for line in (ROOTFS / "etc/systemd/system" / u).read_text().splitlines():
            for verb, seen in verbs.items():
                head = f"/usr/bin/docker-compose {verb} "
                if head in line:
                    rest = line.split(head, 1)[1].split()
                    seen.update(w for w in rest if not w.startswith("-") and not w.isdigit())
    for verb, seen in verbs.items():
        assert seen == always, verb
    text = (ROOTFS / "etc/systemd/system/fedcloud-appliance.service").read_text()
    assert "docker-compose stop --timeout 300 scheduler images-scheduler" in text


@pytest.mark.unit
def test_cron_file_has_user_field_and_known_jobs():
    lines = [
        ln
        for ln in (ROOTFS / "etc/cron.d/fedcloud-appliance").read_text().splitlines()
        if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]
    ]
    assert len(lines) == 4
    jobs = set()
    for ln in lines:
        fields = ln.split()
        assert fields[5] == "root", ln  # /etc/cron.d lines carry the user
        assert fields[6:8] == ["fedcloud-job", "--cron"], ln
        jobs.add(fields[8])
    assert jobs == {"cloud-info", "accounting", "ssm", "images"}
    assert not (ROOTFS / "etc/cron.d/fedcloud-appliance").stat().st_mode & 0o022


@pytest.fixture
def fake_cli(tmp_path):
    """A fedcloud-appliance on PATH that records its arguments and exits with $FAKE_RC."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "fedcloud-appliance").write_text(
        '#!/bin/sh\necho "$@" >> "$FAKE_LOG"\nenv | grep ^FEDCLOUD_ >> "$FAKE_LOG"\nexit "${FAKE_RC:-0}"\n'
    )
    (bindir / "fedcloud-appliance").chmod(0o755)
    envfile = tmp_path / "compose.env"
    log = tmp_path / "calls.log"

    def call(script: str, *args: str, rc: int = 0, env_text: str = "") -> tuple[int, str]:
        envfile.write_text(env_text)
        log.write_text("")
        proc = subprocess.run(
            [str(ROOTFS / "usr/local/bin" / script), *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={
                "PATH": f"{bindir}:/usr/bin:/bin",
                "FAKE_LOG": str(log),
                "FAKE_RC": str(rc),
                "FEDCLOUD_COMPOSE_ENV": str(envfile),
            },
        )
        return proc.returncode, log.read_text()

    return call


@pytest.mark.unit
def test_wrappers_call_run_container(fake_cli):
    rc, calls = fake_cli("caso-extract.sh")
    assert rc == 0
    assert calls.splitlines()[0] == "run-container accounting --"
    assert "FEDCLOUD_VOLUME_PREFIX=fedcloud" in calls
    rc, calls = fake_cli(
        "ssm-send.sh", "--", "--dry-run", env_text="FEDCLOUD_VOLUME_PREFIX=site7\n"
    )
    assert calls.splitlines()[0] == "run-container ssm -- --dry-run"
    assert "FEDCLOUD_VOLUME_PREFIX=site7" in calls
    assert fake_cli("images-sync.sh")[1].startswith("run-container images --")
    assert fake_cli("cloud-info-provider.sh")[1].startswith("run-container cloud-info --")


@pytest.mark.unit
def test_cron_mode_switch_and_lock_skip(fake_cli):
    rc, calls = fake_cli("fedcloud-job", "--cron", "accounting")
    assert (rc, calls) == (0, "")  # scheduler mode (default): cron lines do nothing
    rc, calls = fake_cli(
        "fedcloud-job", "--cron", "accounting", rc=4, env_text="FEDCLOUD_SCHEDULING=cron\n"
    )
    assert rc == 0  # already running: a skipped cron run, not an error mail
    assert calls.startswith("run-container accounting")
    assert fake_cli("fedcloud-job", "accounting", rc=4)[0] == 4  # by hand: the real exit code
    assert (
        fake_cli("fedcloud-job", "--cron", "ssm", rc=1, env_text="FEDCLOUD_SCHEDULING=cron\n")[0]
        == 1
    )
