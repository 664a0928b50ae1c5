#!/usr/bin/env python3
"""Accounting extraction on the local OpenStack testbed: fedcloud-appliance vs cASO 5.2.2.

Both tools extract every server of every project that has servers (each project mapped
to a VO) from the same cloud into a temporary queue, in two scenarios:

- first run: a 30-day window, no state (ours: no checkpoint, no action cache);
- hourly run: a 1-hour window ending now, right after the first run (what cron does
  every hour; ours keeps its state directory, so its instance-action cache is warm).

Measured per tool and scenario: wall-clock seconds, peak RSS (the tool's ru_maxrss from
wait4, taken by the small launcher peak_rss.py), records queued, and the HTTP requests the OpenStack APIs served meanwhile
(counted in the testbed's uWSGI request logs; nothing else should use the testbed
during the benchmark). cASO 5.2.2 is installed from PyPI into its own venv
(/tmp/fedcloud-bench-caso). The server count is whatever the testbed holds
(`scripts/dev/testbed scale --servers N` / `--clone-servers N` adds more); it is
printed with the table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TESTBED = Path(os.environ.get("FEDCLOUD_TESTBED_DIR", "/var/tmp/fedcloud-testbed"))
CASO_VENV = Path("/tmp/fedcloud-bench-caso")
CASO_VERSION = "5.2.2"
CLOUD = "testbed-admin"


TIMEOUT = float(os.environ.get("BENCH_ACCOUNTING_TIMEOUT", "1800"))  # s per tool and scenario
API_LOGS = {
    "nova": "nova-api-uwsgi.log",
    "keystone": "keystone-uwsgi.log",
    "glance": "glance-uwsgi.log",
    "neutron": "neutron-uwsgi.log",
    "cinder": "cinder-api-uwsgi.log",
}


def api_requests() -> dict[str, int]:
    """Requests served so far per API (uWSGI logs one '[pid: ...' line per request)."""
    out = {}
    for api, name in API_LOGS.items():
        try:
            with open(TESTBED / "logs" / name, "rb") as f:
                out[api] = sum(1 for line in f if line.startswith(b"[pid:"))
        except OSError:
            out[api] = 0
    return out


def requests_during(fn, *args):
    """fn(*args) -> (*its result, nova requests, all API requests) served meanwhile."""
    before = api_requests()
    result = fn(*args)
    after = api_requests()
    nova = after["nova"] - before["nova"]
    return (*result, nova, sum(after.values()) - sum(before.values()))


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """(seconds, peak RSS MiB, exit code, stderr tail) of one process, killed after TIMEOUT.

    The command runs under peak_rss.py, so its peak RSS is its own, not this process's.
    """
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("peak_rss.py")),
                rss.name,
                "--kill-after",
                str(TIMEOUT),
                *cmd,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        # the launcher kills the tool at TIMEOUT and still reports its peak RSS so far;
        # this timer is the backstop for the launcher itself
        killer = threading.Timer(TIMEOUT + 60, os.killpg, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            proc.wait()
        except BaseException:  # stopped (SIGTERM -> SystemExit): do not leave the tool running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            raise
        finally:
            killer.cancel()
        seconds = time.monotonic() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace")[-1500:]
        if seconds >= TIMEOUT:
            tail += f"\nkilled after {TIMEOUT:.0f} s (BENCH_ACCOUNTING_TIMEOUT)"
        text = rss.read().strip()
    return seconds, int(text) / 1024 if text else float("nan"), proc.returncode, tail


def count_records(root: Path) -> int:
    return sum(
        f.read_bytes().count(b"\nVMUUID: ") + f.read_bytes().startswith(b"VMUUID: ")
        for f in root.rglob("*")
        if f.is_file() and len(f.name) == 14
    )


def projects_with_servers(clouds_yaml: Path) -> dict[str, int]:
    warnings.simplefilter("ignore")
    from novaclient import client

    from fedcloud_core.config.openstack import OpenStackConfig
    from fedcloud_core.openstack import OpenStackClients

    c = OpenStackClients.from_config(OpenStackConfig(cloud=CLOUD, clouds_yaml=clouds_yaml))
    nova = client.Client(
        "2.61", session=c.session, region_name=c.region_name, endpoint_type="public"
    )
    counts: dict[str, int] = {}
    for s in nova.servers.list(search_opts={"all_tenants": True}, limit=-1):
        counts[s.tenant_id] = counts.get(s.tenant_id, 0) + 1
    return counts


def ensure_caso() -> Path:
    exe = CASO_VENV / "bin" / "caso-extract"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CASO_VENV)], check=True, timeout=300)
        subprocess.run(
            [str(CASO_VENV / "bin" / "pip"), "install", "-q", f"caso=={CASO_VERSION}"],
            check=True,
            timeout=1800,
        )
    return exe


def run_ours(tmp: Path, clouds_yaml: Path, vo_map: dict[str, str], start: datetime, end: datetime):
    """One extraction into tmp/queue-<end>; tmp/state (checkpoints, action cache) is kept."""
    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in vo_map.items():
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    cfg = {
        "site": {"name": "BENCH-SITE"},
        "openstack": {"cloud": CLOUD, "clouds_yaml": str(clouds_yaml)},
        "vos": vos,
        "paths": {"state_dir": str(tmp / "state"), "spool_dir": str(tmp / "spool")},
        "accounting": {"storage_records": False},
    }
    (tmp / "appliance.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp / f"queue-{end:%H%M%S}"
    cmd = [
        str(REPO / ".venv" / "bin" / "python"),
        "-W",
        "ignore",
        "-m",
        "fedcloud_appliance",
        "accounting",
        "extract",
        "--once",
        "--config",
        str(tmp / "appliance.yaml"),
        "--output-dir",
        str(out),
        "--extract-from",
        start.isoformat(),
        "--extract-to",
        end.isoformat(),
    ]
    secs, rss, rc, err = measure(cmd)
    return secs, rss, rc, err, count_records(out / "cloud")


def run_caso(tmp: Path, clouds_yaml: Path, vo_map: dict[str, str], start: datetime, end: datetime):
    exe = ensure_caso()
    auth = yaml.safe_load(clouds_yaml.read_text())["clouds"][CLOUD]["auth"]
    voms = {}
    for pid, vo in vo_map.items():
        voms.setdefault(vo, {"projects": []})["projects"].append(pid)
    (tmp / "voms.json").write_text(json.dumps(voms))
    out = tmp / f"caso-queue-{end:%H%M%S}"
    conf = "\n".join(
        [
            "[DEFAULT]",
            "site_name = BENCH-SITE",
            "service_name = BENCH-SITE",
            f"projects = {', '.join(vo_map)}",
            "messengers = ssm",
            f"mapping_file = {tmp / 'voms.json'}",
            f"spooldir = {tmp / 'caso-spool'}",
            "region_name = RegionOne",
            "",
            "[ssm]",
            f"output_path = {out}",
            "",
            "[keystone_auth]",
            "auth_type = password",
            # cASO scopes its session to each accounted project itself
            *(f"{k} = {v}" for k, v in auth.items() if not k.startswith("project_")),
            "",
        ]
    )
    (tmp / "caso.conf").write_text(conf)
    cmd = [
        str(exe),
        "--config-file",
        str(tmp / "caso.conf"),
        "--extract-from",
        start.strftime("%Y-%m-%d %H:%M:%S"),
        "--extract-to",
        end.strftime("%Y-%m-%d %H:%M:%S"),
    ]
    secs, rss, rc, err = measure(cmd, env={**os.environ, "TZ": "UTC"})
    return secs, rss, rc, err, count_records(out)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    clouds_yaml = TESTBED / "clouds.yaml"
    if not clouds_yaml.exists():
        print(
            f"bench_accounting: no testbed at {TESTBED} (scripts/dev/testbed up); nothing measured"
        )
        return 1
    counts = projects_with_servers(clouds_yaml)
    seed = json.loads((TESTBED / "seed.json").read_text())
    vo_map = {pid: seed["vo_map"].get(pid, "bench.vo") for pid in sorted(counts)}
    servers = sum(counts.values())
    first_end = datetime.now(UTC).replace(microsecond=0)
    scenarios = []
    with tempfile.TemporaryDirectory(prefix="bench-acct-") as d:
        tmp = Path(d)
        (tmp / "ours").mkdir()
        (tmp / "caso").mkdir()
        for title, days in (
            ("first run, 30-day window, no state", 30),
            ("hourly run, 1-hour window, after it", 0),
        ):
            end = first_end if days else datetime.now(UTC).replace(microsecond=0)
            start = end - (timedelta(days=days) if days else timedelta(hours=1))
            rows = [
                (
                    "fedcloud-appliance",
                    *requests_during(run_ours, tmp / "ours", clouds_yaml, vo_map, start, end),
                )
            ]
            loads = [load()]
            try:
                rows.append(
                    (
                        f"caso {CASO_VERSION}",
                        *requests_during(run_caso, tmp / "caso", clouds_yaml, vo_map, start, end),
                    )
                )
            except (subprocess.SubprocessError, OSError) as exc:
                rows.append(
                    (f"caso {CASO_VERSION}", float("nan"), float("nan"), -1, str(exc), 0, 0, 0)
                )
            loads.append(load())
            scenarios.append((title, start, end, rows, loads))
    print(
        f"\naccounting extract: {servers} servers in {len(counts)} projects on the local OpenStack "
        "testbed (fake-driver Nova)"
    )
    for title, start, end, rows, loads in scenarios:
        print(f"\n{title}: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")
        print(
            f"{'tool':<20} {'exit':>4} {'records':>8} {'seconds':>9} {'peak RSS MiB':>13} "
            f"{'Nova req':>9} {'API req':>8} {'time ratio':>11} {'RSS ratio':>10} {'req ratio':>10}"
        )
        base = rows[0]
        for name, secs, rss, rc, err, recs, nova, total in rows:
            if rc != 0 and "killed after" in err and base[3] == 0:
                # stopped at the time limit: what it had used by then is a lower bound
                print(
                    f"{name:<20} {rc:>4} {'n/a':>8} {'>' + format(secs, '.0f'):>9} "
                    f"{'>=' + format(rss, '.1f'):>13} {'>=' + str(nova):>9} {'>=' + str(total):>8} "
                    f"{'>' + format(secs / base[1], '.2f'):>11} "
                    f"{'>=' + format(rss / base[2], '.2f'):>10} "
                    f"{'>=' + format(total / base[7], '.2f'):>10}  (killed: figures so far)"
                )
                continue
            if rc != 0:  # a failed run has no comparable figures
                why = (err.strip().splitlines() or ["no output"])[-1][:90]
                print(
                    f"{name:<20} {rc:>4} "
                    + " ".join(f"{'n/a':>{w}}" for w in (8, 9, 13, 9, 8, 11, 10, 10))
                    + f"  {why}"
                )
                continue
            ok = base[3] == 0

            def ratio(x: float, y: float, ok: bool = ok) -> str:
                return f"{x / y:.2f}" if ok and y else "n/a"

            print(
                f"{name:<20} {rc:>4} {recs:>8} {secs:>9.1f} {rss:>13.1f} {nova:>9} {total:>8} "
                f"{ratio(secs, base[1]):>11} {ratio(rss, base[2]):>10} {ratio(total, base[7]):>10}"
            )
        print(
            "load average (1/5/15 min) at the end of each tool's run: "
            + "; ".join(f"{row[0]} {la}" for row, la in zip(rows, loads, strict=True))
        )
        for name, _s, _r, rc, err, *_ in rows:
            if rc != 0:
                print(
                    f"  {name} failed ({rc}):\n"
                    + "\n".join("    " + x for x in err.strip().splitlines()[-8:])
                )
    print(
        "\nratios: the tool's figure / fedcloud-appliance's; requests: all the testbed's APIs served "
        "meanwhile; > and >=: a tool killed at BENCH_ACCOUNTING_TIMEOUT, its figures until then"
    )
    return 0


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"bench_accounting: stopped by signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    sys.exit(main())
