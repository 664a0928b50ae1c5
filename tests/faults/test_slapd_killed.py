"""Fault: slapd SIGKILLed while bdii-update loads a large snapshot into an empty tree.

The job runs the appliance's way (``--with-slapd``: the job process starts and supervises its
own slapd). slapd is killed once a few hundred of ~1,200 entries are in; that run fails; the
next run restarts slapd (fresh database) and loads the whole snapshot. The snapshot itself is
never touched.
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
from pathlib import Path

import pytest
import yaml

from faults.faultlib import free_port, wait_for
from fedcloud_cloudinfo import bdii_update
from fedcloud_core.bdii import service
from fedcloud_core.bdii.dn import normalize
from fedcloud_core.config import parse_config
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.ldif import Entry, parse, render
from fedcloud_core.tool import run_tool

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


def test_slapd_killed_during_first_load_next_run_loads_everything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    snap_path = state / "cloud-info" / "snapshot.ldif"
    snap_path.parent.mkdir(parents=True)
    entries = large_snapshot()
    snap_path.write_text(render(entries), encoding="utf-8")
    snap_bytes = snap_path.read_bytes()
    cfg = parse_config(
        yaml.safe_dump(
            {
                "site": {"name": "TEST-SITE"},
                "paths": {"state_dir": str(state)},
                "bdii": {"host": "127.0.0.1", "port": free_port(), "log_level": "stats"},
            }
        ),
        environ={},
    )
    ns = argparse.Namespace(with_slapd=True, ldap_url=None, provider=False, snapshot=None)
    settings = bdii_update.slapd_settings(cfg)
    log = settings.run_dir / "slapd.log"
    reports: list = []

    def first_run() -> None:
        reports.append(execute(bdii_update.JOB, JobContext(config=cfg, options=ns)))

    try:
        t = threading.Thread(target=first_run, name="bdii-update-1")
        t.start()
        wait_for(lambda: adds_logged(log) >= 300, timeout=60, what="300 entries added")
        slapd = service._supervised[(settings.host, settings.port)]
        assert slapd.proc is not None
        slapd.proc.send_signal(signal.SIGKILL)
        t.join(timeout=120)
        assert not t.is_alive(), "bdii-update hung after slapd died"
        first = reports[0]
        print("operator sees:", first.summary())
        assert first.fatal or first.errors, "the interrupted run must report the failure"
        assert slapd.proc is not None
        assert slapd.proc.poll() == -signal.SIGKILL
        assert snap_path.read_bytes() == snap_bytes  # the snapshot is untouched

        # the next run: the supervisor restarts slapd (fresh database) and loads everything
        second = execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
        assert second.fatal is None, second.fatal
        assert second.errors == []
        assert second.counts.get("slapd_starts") == 1
        want = {
            normalize(e.dn): {k.lower(): set(v) for k, v in e.attrs.items()}
            for e in bdii_update.wanted_entries(
                bdii_update.load_snapshot(
                    snap_path, max_age=cfg.bdii.snapshot_max_age, base=bdii_update.RESOURCE_BASE
                )
            )
        }
        got = tree(slapd.url)
        assert set(got) == set(want)
        assert len(got) == len(entries)
        for dn, attrs in want.items():
            assert got[dn] == attrs, dn

        # and the one after writes nothing
        third = execute(bdii_update.JOB, JobContext(config=cfg, options=ns))
        assert third.errors == []
        assert third.counts.get("slapd_starts") is None
    finally:
        service.stop_supervised()
