"""The guest's first-boot check (a shell script) with fake docker and systemctl on PATH."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from ova.builder.boottest import demo_hostcert

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
FIRSTBOOT = ROOT / "ova/rootfs/usr/lib/fedcloud-appliance/firstboot"

FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> "$FAKE_LOG"
case "$1" in
  image) [ -n "$FAKE_IMAGE_PRESENT" ] ;;
  run) echo "$FAKE_CHECK_OUTPUT"; exit "$FAKE_CHECK_RC" ;;
  *) exit 1 ;;
esac
"""
FAKE_SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$FAKE_LOG"
"""


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def guest(tmp_path: Path) -> dict[str, Path]:
    bin_dir, conf, units, grid, out = (
        tmp_path / n for n in ("bin", "etc-fa", "units", "grid", "run")
    )
    for d in (bin_dir, conf, units, grid):
        d.mkdir()
    _exe(bin_dir / "docker", FAKE_DOCKER)
    _exe(bin_dir / "systemctl", FAKE_SYSTEMCTL)
    (conf / "image.env").write_text("FEDCLOUD_APPLIANCE_IMAGE=fedcloud-appliance:latest\n")
    for unit in ("bdii.service", "ssm.service"):
        (units / unit).write_text("[Unit]\n")
    services = tmp_path / "services"
    services.write_text(
        "# comment\nbdii.service config\nssm.service config hostcert\nabsent.service config\n"
    )
    return {
        "bin": bin_dir,
        "conf": conf,
        "units": units,
        "grid": grid,
        "out": out,
        "services": services,
        "log": tmp_path / "calls.log",
    }


def _run(
    g: dict[str, Path],
    *,
    image: bool = True,
    check_rc: int = 0,
    check_output: str = "config: OK (site X)",
) -> tuple[str, str]:
    env = {
        "PATH": f"{g['bin']}:{os.environ['PATH']}",
        "FEDCLOUD_APPLIANCE_CONFIG": str(g["conf"] / "appliance.yaml"),
        "FIRSTBOOT_SERVICES": str(g["services"]),
        "FIRSTBOOT_UNIT_DIRS": str(g["units"]),
        "FIRSTBOOT_GRID_SECURITY": str(g["grid"]),
        "FIRSTBOOT_OUT_DIR": str(g["out"]),
        "FAKE_LOG": str(g["log"]),
        "FAKE_IMAGE_PRESENT": "yes" if image else "",
        "FAKE_CHECK_RC": str(check_rc),
        "FAKE_CHECK_OUTPUT": check_output,
    }
    proc = subprocess.run(
        [str(FIRSTBOOT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr  # never fails the boot
    calls = g["log"].read_text() if g["log"].exists() else ""
    return (g["out"] / "firstboot.txt").read_text(), calls


def test_without_config_nothing_starts_and_the_report_says_why(guest: dict[str, Path]) -> None:
    report, calls = _run(guest)
    assert "MISSING  config" in report
    assert "MISSING  host certificate" in report
    assert "started:  none" in report
    assert "bdii.service:config(missing)" in report
    assert "systemctl" not in calls


def test_valid_config_starts_bdii_but_not_the_signer_without_a_certificate(
    guest: dict[str, Path],
) -> None:
    (guest["conf"] / "appliance.yaml").write_text("site:\n  name: X\n")
    report, calls = _run(guest)
    assert "OK       config: config: OK (site X)" in report
    assert "systemctl enable --quiet bdii.service" in calls
    assert "systemctl start --no-block bdii.service" in calls
    assert "ssm.service" not in calls
    assert "ssm.service:hostcert(missing)" in report
    assert "absent.service" not in report  # units not in the image are ignored
    assert f"-v {guest['conf']}:/etc/fedcloud-appliance:ro" in calls
    assert "--network none" in calls


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_valid_config_and_certificate_start_everything_and_lock_the_key(
    guest: dict[str, Path],
) -> None:
    (guest["conf"] / "appliance.yaml").write_text("site:\n  name: X\n")
    cert, key = demo_hostcert("bdii.example.org")
    (guest["grid"] / "hostcert.pem").write_text(cert)
    (guest["grid"] / "hostkey.pem").write_text(key)
    (guest["grid"] / "hostkey.pem").chmod(0o644)
    report, calls = _run(guest)
    assert "OK       host certificate: subject=" in report
    assert "systemctl start --no-block ssm.service" in calls
    # readable by the job containers' group (fedcloud, gid 10001) where that group exists
    expected = 0o640 if _has_group("fedcloud") else 0o600
    assert stat.S_IMODE((guest["grid"] / "hostkey.pem").stat().st_mode) == expected
    assert "NOT started" not in report


def test_invalid_config_is_reported_with_the_checkers_message(guest: dict[str, Path]) -> None:
    (guest["conf"] / "appliance.yaml").write_text("site: {}\n")
    report, calls = _run(
        guest, check_rc=2, check_output="appliance.yaml:1: site.name: required key is missing"
    )
    assert "INVALID  config" in report
    assert "site.name: required key is missing" in report
    assert "systemctl" not in calls


def test_missing_appliance_image_is_reported(guest: dict[str, Path]) -> None:
    (guest["conf"] / "appliance.yaml").write_text("site:\n  name: X\n")
    report, calls = _run(guest, image=False)
    assert "appliance image 'fedcloud-appliance:latest' is not in the VM" in report
    assert "docker run" not in calls


def test_an_image_without_bundle_units_says_so(guest: dict[str, Path]) -> None:
    guest["services"].write_text("# no units\n")
    (guest["conf"] / "appliance.yaml").write_text("site:\n  name: X\n")
    report, calls = _run(guest)
    assert "no appliance service unit is installed" in report
    assert "systemctl" not in calls


def test_firstboot_env_selects_the_services_and_stops_the_others(guest: dict[str, Path]) -> None:
    (guest["conf"] / "appliance.yaml").write_text("site:\n  name: X\n")
    cert, key = demo_hostcert("bdii.example.org")
    (guest["grid"] / "hostcert.pem").write_text(cert)
    (guest["grid"] / "hostkey.pem").write_text(key)
    (guest["conf"] / "firstboot.env").write_text(
        '# only the BDII\nFEDCLOUD_SERVICES="bdii.service"\n'
    )
    report, calls = _run(guest)
    assert "systemctl start --no-block bdii.service" in calls
    assert "systemctl start --no-block ssm.service" not in calls
    # the fake systemctl says every unit is enabled: an unselected one is disabled and stopped
    assert "systemctl disable --quiet --now ssm.service" in calls
    assert "NOT started (not in FEDCLOUD_SERVICES of" in report
    assert "firstboot.env): ssm.service" in report
    assert "started:  bdii.service" in report
