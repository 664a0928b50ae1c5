"""Fault: slapd SIGKILLed during a first load of a large snapshot, then the next bdii-update run.

Two ways the appliance feeds slapd, two tests:

- a slapd started elsewhere (``--ldap-url``), empty: bdii-update fills it over LDAP (bulk
  ``ldapadd -c``). slapd is killed once a few hundred of ~1,200 entries are in, restarted on
  the same (partly loaded) database; the next run completes the tree.
- the appliance's own supervised slapd (``--with-slapd``): loaded with ``slapadd`` before it
  serves; killed afterwards, the next run restarts it (fresh database) and loads everything.

The snapshot is never touched; the tree ends equal to it; the run after writes nothing.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from faults.faultlib import free_port, wait_for
from fedcloud_cloudinfo import bdii_update
from fedcloud_core.bdii import service
from fedcloud_core.bdii.dn import normalize
from fedcloud_core.bdii.slapd import Slapd
from fedcloud_core.config import parse_config
from fedcloud_core.external import run_tool
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.ldif import Entry, parse, render

pytestmark = pytest.mark.faults

N_IMAGES = 1200
# the renderer's GLUE 2.0 tree of the contract tests' fixed site (loads into Debian's schema)
GOLDEN = Path(__file__).resolve().parents[1] / "contract" / "cloudinfo" / "golden" / "glue20.ldif"
_ADD = re.compile(r" ADD dn=")


def large_snapshot() -> list[Entry]:
    """The golden GLUE 2.0 tree with its first image repeated N_IMAGES times (images replaced)."""
    entries = parse(GOLDEN.read_text(encoding="utf-8"))
    env = next(e for e in entries if "GLUE2ApplicationEnvironment" in e.get("objectClass"))
    rdn, parent = env.dn.split(",", 1)
    out = [e for e in entries if "GLUE2ApplicationEnvironment" not in e.get("objectClass")]
    for i in range(N_IMAGES):
        ident = f"fault-{i:05d}"
        e = Entry(f"GLUE2ApplicationEnvironmentID={ident},{parent}")
        for k, vals in env.attrs.items():
            for v in vals:
                e.add(k, ident if k == "GLUE2ApplicationEnvironmentID" else v)
        e.attrs["GLUE2EntityName"] = [f"Fault image {i}"]
        out.append(e)
    assert rdn.startswith("GLUE2ApplicationEnvironmentID=")
    return out


def tree(url: str) -> dict[str, dict[str, set[str]]]:
    proc = run_tool(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-b", "o=glue"], timeout=60
    )
    return {
        normalize(e.dn): {k.lower(): set(v) for k, v in e.attrs.items()}
        for e in parse(proc.stdout.decode("utf-8"))
    }


def adds_logged(log: Path) -> int:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    return len(_ADD.findall(text))


def make_config(state: Path, **bdii: Any) -> Any:
    return parse_config(
        yaml.safe_dump(
            {
                "site": {"name": "TEST-SITE"},
                "paths": {"state_dir": str(state)},
                "bdii": {"host": "127.0.0.1", "port": free_port(), "log_level": "stats", **bdii},
            }
        ),
        environ={},
    )


def write_snapshot(state: Path) -> tuple[Path, list[Entry]]:
    snap_path = state / "cloud-info" / "snapshot.ldif"
    snap_path.parent.mkdir(parents=True)
    entries = large_snapshot()
    snap_path.write_text(render(entries), encoding="utf-8")
    return snap_path, entries


def wanted(cfg: Any, snap_path: Path) -> dict[str, dict[str, set[str]]]:
    snap = bdii_update.load_snapshot(
        snap_path, max_age=cfg.bdii.snapshot_max_age, base=bdii_update.RESOURCE_BASE
    )
    return {
        normalize(e.dn): {k.lower(): set(v) for k, v in e.attrs.items()}
        for e in bdii_update.wanted_entries(snap)
        if isinstance(e, Entry)
    }


def restart_keeping_data(slapd: Slapd) -> None:
    """Start slapd again on the same config and database (what a process supervisor does)."""
    s = slapd.settings
    argv = [s.slapd_bin, "-f", str(s.run_dir / "slapd.conf"), "-h", s.url + "/", "-d", s.loglevel]
    with open(slapd.log_path, "ab") as logf:
        slapd.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    slapd._wait_ready()


def test_slapd_killed_during_first_load_over_ldap_next_run_completes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    snap_path, entries = write_snapshot(state)
    snap_bytes = snap_path.read_bytes()
    data = tmp_path / "slapd"
    cfg = make_config(state, data_dir=str(data))
    slapd = Slapd(replace(bdii_update.slapd_settings(cfg), data_dir=data))
    slapd.start()  # empty, started "elsewhere": bdii-update writes to it over LDAP
    ns = argparse.Namespace(with_slapd=False, ldap_url=slapd.url, provider=False, snapshot=None)
    reports: list[Any] = []
    try:
        t = threading.Thread(
            target=lambda: reports.append(
                execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
            ),
            name="bdii-update-1",
        )
        t.start()
        wait_for(lambda: adds_logged(slapd.log_path) >= 300, timeout=60, what="300 entries added")
        assert slapd.proc is not None
        slapd.proc.send_signal(signal.SIGKILL)
        slapd.proc.wait(10)
        t.join(timeout=120)
        assert not t.is_alive(), "bdii-update hung after slapd died"
        first = reports[0]
        print("operator sees:", first.summary(), first.errors[:3])
        assert first.fatal or first.errors, "the interrupted run must report the failure"
        assert snap_path.read_bytes() == snap_bytes  # the snapshot is untouched

        restart_keeping_data(slapd)
        partial = tree(slapd.url)
        assert 0 < len(partial) < len(entries)  # what was committed before the kill survived

        second = execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
        print("operator sees:", second.summary())
        assert second.fatal is None, second.fatal
        assert second.errors == []
        want = wanted(cfg, snap_path)
        got = tree(slapd.url)
        assert set(got) == set(want)
        assert len(got) == len(entries)
        for dn, attrs in want.items():
            assert got[dn] == attrs, dn

        before = adds_logged(slapd.log_path)
        third = execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
        assert third.errors == []
        assert adds_logged(slapd.log_path) == before  # nothing left to add
    finally:
        slapd.stop()


def test_supervised_slapd_killed_next_run_restarts_and_reloads(tmp_path: Path) -> None:
    state = tmp_path / "state"
    snap_path, entries = write_snapshot(state)
    cfg = make_config(state)
    ns = argparse.Namespace(with_slapd=True, ldap_url=None, provider=False, snapshot=None)
    settings = bdii_update.slapd_settings(cfg)
    try:
        first = execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
        assert first.errors == []
        slapd = service._supervised[(settings.host, settings.port)]
        assert slapd.proc is not None
        slapd.proc.send_signal(signal.SIGKILL)
        slapd.proc.wait(10)

        second = execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
        print("operator sees:", second.summary())
        assert second.fatal is None, second.fatal
        assert second.errors == []
        assert second.counts.get("slapd_starts") == 1
        want = wanted(cfg, snap_path)
        got = tree(slapd.url)
        assert set(got) == set(want)
        assert len(got) == len(entries)
        for dn, attrs in want.items():
            assert got[dn] == attrs, dn
        third = execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
        assert third.errors == []
        assert third.counts.get("slapd_starts") is None
    finally:
        service.stop_supervised()
