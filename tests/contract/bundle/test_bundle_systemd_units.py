"""The bundle's systemd units on the host pass systemd's own checker (systemd-analyze verify)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ROOTFS = ROOT / "ova" / "rootfs"
UNITS = ["bdii.service", "fedcloud-appliance.service", "fedcloud-status-web.service"]

pytestmark = pytest.mark.contract


def test_units_pass_systemd_analyze_verify(tmp_path):
    assert shutil.which("systemd-analyze"), (
        "systemd-analyze missing: scripts/dev/install (apt.d/bundle.txt)"
    )
    for u in UNITS:
        shutil.copy(ROOTFS / "etc/systemd/system" / u, tmp_path / u)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / u) for u in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert proc.returncode == 0, proc.stderr
    # the checker itself rejects a broken unit
    (tmp_path / "broken.service").write_text("[Service]\nExecStart=relative/docker-compose up\n")
    bad = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "broken.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
