"""The testbed listens on loopback only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from testbed.layout import PORTS

pytestmark = pytest.mark.integration


def _group(pgid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            out.add(int(stat.parent.name))
    return out


def test_every_testbed_socket_is_bound_to_127_0_0_1(testbed):
    pids = testbed.pids()
    ours = set().union(*(_group(p) | {p} for name, p in pids.items() if name != "epmd"))
    lines = subprocess.run(
        ["ss", "-ltnpH"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    checked = 0
    for line in lines:
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if not owners & ours:
            continue
        local = line.split()[3]
        assert local.startswith("127.0.0.1:"), line
        checked += 1
    assert checked >= 9  # mariadb, rabbitmq (+dist), 6 APIs
    ports = {
        int(line.split()[3].rsplit(":", 1)[1])
        for line in lines
        if {int(p) for p in re.findall(r"pid=(\d+)", line)} & ours
    }
    assert set(PORTS.values()) <= ports
    if "epmd" in pids:  # shared by every Erlang node on the machine; loopback only
        for line in lines:
            if f"pid={pids['epmd']}," in line:
                assert line.split()[3].rsplit(":", 1)[0] in ("127.0.0.1", "[::1]"), line
