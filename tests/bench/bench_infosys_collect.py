"""Benchmark: cloud-info collect + render on the local OpenStack testbed, next to
cloud-info-provider 1.2.0 (PyPI, installed in a separate venv under /tmp) on the same cloud.

Run by `make bench` (scripts/dev/bench). Works on whatever the testbed holds; scale it
first with `scripts/dev/testbed scale` for the 5,000 images / 200 flavors / 50 projects
figures. Prints a table: wall time, API calls, entries, ratios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import venv
import warnings
from pathlib import Path

STATE = Path("/var/tmp/fedcloud-testbed")
CIP_VENV = Path("/tmp/fedcloud-bench-cip-1.2.0")
CIP_VERSION = "1.2.0"


def ours(seed: dict) -> dict:
    from fedcloud_cloudinfo.collect import CollectOptions, collect
    from fedcloud_cloudinfo.render import RENDERERS
    from fedcloud_cloudinfo.source import OpenStackSource
    from fedcloud_core.config import parse_config
    from fedcloud_core.openstack import OpenStackClients
    from fedcloud_core.report import RunReport

    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in sorted(seed["vo_map"].items()):
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    doc = {
        "site": {"name": "BENCH-SITE"},
        "vos": vos,
        "openstack": {
            "cloud": "testbed-admin",
            "clouds_yaml": seed.get("clouds_yaml", str(STATE / "clouds.yaml")),
        },
        "cloud_info": {"timeout": 1800},
    }
    cfg = parse_config(json.dumps(doc), source="bench", environ={})
    src = OpenStackSource(OpenStackClients.from_config(cfg.openstack))
    report = RunReport(job="bench")
    t0 = time.perf_counter()
    site = collect(src, cfg, report, CollectOptions(timeout=1800, workers=cfg.cloud_info.workers))
    t1 = time.perf_counter()
    text = RENDERERS["glue20-ldif"](site)
    t2 = time.perf_counter()
    RENDERERS["glue21-json"](site)
    t3 = time.perf_counter()
    return {
        "collect": t1 - t0,
        "render": (t2 - t1) + (t3 - t2),
        "calls": src.api_calls,
        "entries": text.count("\ndn: ") + 1,
        "images": len(site.images),
        "flavors": len(site.flavors),
        "projects": len(site.shares),
        "errors": len(report.errors),
    }


def _counting_sitecustomize(dirpath: Path) -> None:
    """Count HTTP requests of the other tool with a requests hook (sitecustomize in its venv)."""
    (dirpath / "sitecustomize.py").write_text(
        "import atexit, os\n"
        "try:\n"
        "    import requests.sessions as _s\n"
        "    _n = [0]\n"
        "    _orig = _s.Session.send\n"
        "    def _send(self, *a, **k):\n"
        "        _n[0] += 1\n"
        "        return _orig(self, *a, **k)\n"
        "    _s.Session.send = _send\n"
        "    atexit.register(lambda: open(os.environ['BENCH_CALLS_FILE'], 'w').write(str(_n[0])))\n"
        "except Exception:\n"
        "    pass\n",
        encoding="utf-8",
    )


def theirs(seed: dict) -> dict | str:
    py = CIP_VENV / "bin" / "python"
    if not py.exists():
        venv.create(CIP_VENV, with_pip=True)
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", f"cloud-info-provider=={CIP_VERSION}"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if r.returncode != 0:
        return f"pip install failed: {r.stderr.strip().splitlines()[-1:]}"
    exe = CIP_VENV / "bin" / "cloud-info-provider-service"
    if not exe.exists():
        return "no cloud-info-provider-service executable in the package"
    admin = _clouds(seed)["testbed-admin"]["auth"]
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        _counting_sitecustomize(tmpd)
        site_yaml = tmpd / "site.yaml"
        vos = "\n".join(
            f"    {vo}:\n      auth:\n        project_id: {pid}"
            for pid, vo in sorted(seed["vo_map"].items())
        )
        site_yaml.write_text(
            f"site:\n  name: BENCH-SITE\ncompute:\n  shares:\n{vos}\n", encoding="utf-8"
        )
        calls_file = tmpd / "calls"
        env = dict(os.environ, PYTHONPATH=str(tmpd), BENCH_CALLS_FILE=str(calls_file))
        cmd = [
            str(exe),
            "--middleware",
            "openstack",
            "--format",
            "glue21json",
            "--os-auth-type",
            "password",
            "--os-auth-url",
            admin["auth_url"],
            "--os-username",
            admin["username"],
            "--os-password",
            admin["password"],
            "--os-project-name",
            admin["project_name"],
            "--os-user-domain-name",
            admin.get("user_domain_name", "Default"),
            "--os-project-domain-name",
            admin.get("project_domain_name", "Default"),
            "--only-appdb-images",
            str(site_yaml),
        ]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=3600, check=False, env=env
            )
        except subprocess.TimeoutExpired:
            return "timed out after 3600 s"
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            return f"exit {r.returncode}: {last[:120]}"
        calls = int(calls_file.read_text()) if calls_file.exists() else -1
        return {"collect": wall, "render": 0.0, "calls": calls, "entries": r.stdout.count('"ID"')}


def _clouds(seed: dict) -> dict:
    import yaml

    path = Path(seed.get("clouds_yaml", STATE / "clouds.yaml"))
    return yaml.safe_load(path.read_text(encoding="utf-8"))["clouds"]


def main() -> int:
    warnings.filterwarnings("ignore")
    seed_path = STATE / "seed.json"
    if not seed_path.exists():
        print(
            f"bench_infosys_collect: testbed not seeded ({seed_path} missing); run scripts/dev/testbed up"
        )
        return 1
    seed = json.loads(seed_path.read_text(encoding="utf-8"))
    a = ours(seed)
    b = theirs(seed) if os.environ.get("BENCH_SKIP_CIP") != "1" else "skipped (BENCH_SKIP_CIP=1)"
    print(
        f"\ninfosys collect+render on the testbed: {a['images']} published images, {a['flavors']} flavors, "
        f"{a['projects']} mapped projects, {a['errors']} item errors"
    )
    print(
        f"{'tool':<34} {'collect s':>10} {'render s':>9} {'total s':>9} {'API calls':>10} {'entries':>8}"
    )
    print(
        f"{'fedcloud-appliance cloud-info':<34} {a['collect']:>10.2f} {a['render']:>9.3f} "
        f"{a['collect'] + a['render']:>9.2f} {a['calls']:>10} {a['entries']:>8}"
    )
    if isinstance(b, dict):
        print(
            f"{'cloud-info-provider ' + CIP_VERSION:<34} {b['collect']:>10.2f} {'-':>9} {b['collect']:>9.2f} "
            f"{b['calls']:>10} {b['entries']:>8}"
        )
        tot_a = a["collect"] + a["render"]
        print(
            f"{'ratio (cloud-info-provider / ours)':<34} {'':>10} {'':>9} {b['collect'] / tot_a:>9.2f} "
            f"{(b['calls'] / a['calls']) if a['calls'] and b['calls'] >= 0 else float('nan'):>10.2f}"
        )
    else:
        print(f"{'cloud-info-provider ' + CIP_VERSION:<34} n/a: {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
