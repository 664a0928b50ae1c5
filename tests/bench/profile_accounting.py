#!/usr/bin/env python3
"""Time and profile our accounting extractor at any size, with the cloud's own time taken out.

Starts tests/bench/fake_openstack.py (canned JSON, ``accounting_fakes.fleet(N)``) and runs
``accounting extract`` against it the way bench_accounting.py runs it on the testbed
(30-day first run without state, then a 1-hour run with the state kept), each run in a
fresh process. Prints per run: seconds, CPU seconds, peak RSS, records, requests per
service; with ``--profile`` also the top of a cProfile of the hourly run.

    .venv/bin/python tests/bench/profile_accounting.py --servers 10000 [--profile]

``PYTHONPATH=<other checkout>/services`` runs another version of the extractor against the
same cloud (e.g. the one before a change: ``git archive <commit> services | tar -x -C DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
END = "2026-11-21T14:00:00+00:00"  # accounting_fakes.FLEET_END


def one_run(args: argparse.Namespace) -> int:
    """In a fresh process: one extraction; prints a JSON line."""
    import cProfile
    import pstats
    import resource
    import warnings
    from datetime import datetime, timedelta

    warnings.simplefilter("ignore")
    from fedcloud_accounting import jobs
    from fedcloud_core.config import AppConfig
    from fedcloud_core.jobs import JobContext, execute

    tmp = Path(args.state)
    pids = [f"{i:02d}".ljust(32, "f") for i in range(50)]
    cfg = AppConfig.model_validate(
        {
            "site": {"name": "BENCH-SITE"},
            "openstack": {"cloud": "fake", "clouds_yaml": args.clouds_yaml},
            "vos": {"bench.vo": {"projects": pids}},
            "paths": {"state_dir": str(tmp / "state"), "spool_dir": str(tmp / "spool")},
            "accounting": {"storage_records": False},
        }
    )
    end = datetime.fromisoformat(END) + (
        timedelta(hours=1) if args.scenario == "hourly" else timedelta()
    )
    start = end - (timedelta(hours=1) if args.scenario == "hourly" else timedelta(days=30))
    ns = argparse.Namespace(
        output_dir=tmp / f"queue-{args.scenario}", extract_from=start, extract_to=end
    )
    ctx = JobContext(
        config=cfg, options=ns, deps=jobs.AccountingDeps(now=lambda: end + timedelta(minutes=10))
    )
    prof = cProfile.Profile() if args.profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    report = execute(jobs.JOBS[0], ctx)
    if prof:
        prof.disable()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "exit": int(report.exit_code),
                "seconds": round(secs, 2),
                "cpu": round(cpu, 2),
                "rss_mib": round(rss, 1),
                "counts": report.counts,
            }
        )
    )
    if prof:
        pstats.Stats(prof, stream=sys.stderr).sort_stats(args.sort).print_stats(args.top)
    return 0


def stats(port_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{port_url}/_stats", timeout=30) as r:  # noqa: S310 (http://127.0.0.1)
        return json.loads(r.read())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=10000)
    ap.add_argument("--profile", action="store_true", help="cProfile the hourly run")
    ap.add_argument("--profile-first", action="store_true", help="cProfile the first run")
    ap.add_argument("--sort", default="cumulative")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--one", choices=("first", "hourly"), help=argparse.SUPPRESS)
    ap.add_argument("--scenario", default="first", help=argparse.SUPPRESS)
    ap.add_argument("--state", help=argparse.SUPPRESS)
    ap.add_argument("--clouds-yaml", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        args.scenario = args.one
        return one_run(args)
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "fake_openstack.py"), "--servers", str(args.servers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        clouds = fake.stdout.readline().strip()
        auth_url = json.loads(Path(clouds).read_text())["clouds"]["fake"]["auth"]["auth_url"]
        base = auth_url.rsplit("/v3", 1)[0]
        print(f"fake OpenStack: {args.servers} servers, {base}; load {os.getloadavg()}")
        with tempfile.TemporaryDirectory(prefix="profile-acct-") as d:
            for scenario in ("first", "hourly"):
                before = stats(base)
                cmd = [sys.executable, "-W", "ignore", __file__, "--one", scenario, "--state", d]
                cmd += ["--clouds-yaml", clouds, "--sort", args.sort, "--top", str(args.top)]
                if (args.profile and scenario == "hourly") or (
                    args.profile_first and scenario == "first"
                ):
                    cmd.append("--profile")
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                after = stats(base)
                served = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                served = {k: v for k, v in served.items() if v and k != "_stats"}
                line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "{}"
                print(f"{scenario}: {line} requests {served}")
                if res.returncode or "--profile" in cmd:
                    print(res.stderr[-12000:])
    finally:
        fake.terminate()
        fake.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
