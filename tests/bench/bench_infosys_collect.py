"""Benchmark: cloud-info collect + render on the local OpenStack testbed, next to
cloud-info-provider 1.2.0 (PyPI, installed in its own venv under /tmp) on the same cloud.

Run by `make bench` (scripts/dev/bench). Works on whatever the testbed holds; scale it
first (`scripts/dev/testbed scale --projects 50 --flavors 200 --images 5000`) for the
issue's site size. Both tools get the same VO -> project mapping (the seed's projects plus
every ``scale-project-*`` as VO scale.example.org), the same admin credentials, and
publish every active image (the scale images carry no marketplace metadata).

Both run in-process (start-up excluded) and are counted the same way: every HTTP request
through ``requests.Session.send``, keystoneauth's token requests included. The other
tool runs through tests/bench/cip_runner.py in its own venv, with its GOCDB lookup (an
external HTTPS call to goc.egi.eu, unreachable here) answered "not found". It is stopped
after CIP_TIMEOUT seconds (env BENCH_CIP_TIMEOUT); the table then shows the calls it had
made by then as a lower bound (">="). BENCH_SEED_PROJECTS_ONLY=1 maps only the seed's
projects (a small site both tools finish).
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
import venv
import warnings
from pathlib import Path
from typing import Any

STATE = Path("/var/tmp/fedcloud-testbed")
CIP_VENV = Path("/tmp/fedcloud-bench-cip-1.2.0")
CIP_VERSION = "1.2.0"
CIP_TIMEOUT = float(os.environ.get("BENCH_CIP_TIMEOUT", "900"))
OURS_TIMEOUT = 1800
RUNNER = Path(__file__).with_name("cip_runner.py")
SCALE_VO = "scale.example.org"


def _json_counts(text: str) -> dict[str, int]:
    """Object counts of a GLUE 2.1 JSON document (cloud-info-api shape: class -> list)."""
    doc = json.loads(text)
    return {
        "shares": len(doc.get("Share", [])),
        "flavors": len(doc.get("CloudComputingInstanceType", [])),
        "images": len(doc.get("CloudComputingImage", [])),
        "objects": sum(len(v) for v in doc.values() if isinstance(v, list)),
        "bytes": len(text),
    }


class _CountRequests:
    """Count every requests.Session.send in this process (as cip_runner does for the other)."""

    def __init__(self) -> None:
        import requests.sessions

        self.n = 0
        self.in_flight = 0
        self.busy_since = 0.0
        self.http_wall = 0.0  # wall time with at least one request in flight
        self.http_sum = 0.0  # summed over requests (threads overlap)
        self._lock = threading.Lock()
        self._mod = requests.sessions
        self._orig = requests.sessions.Session.send

    def __enter__(self) -> _CountRequests:
        orig = self._orig

        def send(sess: Any, request: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            with self._lock:
                self.n += 1
                if self.in_flight == 0:
                    self.busy_since = t0
                self.in_flight += 1
            try:
                return orig(sess, request, **kw)
            finally:
                t1 = time.perf_counter()
                with self._lock:
                    self.http_sum += t1 - t0
                    self.in_flight -= 1
                    if self.in_flight == 0:
                        self.http_wall += t1 - self.busy_since

        self._mod.Session.send = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._mod.Session.send = self._orig  # type: ignore[method-assign]


def site_size(seed: dict[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """(project id -> VO, counts): the seed's mapping plus the scale projects, and what the
    cloud holds (asked with the testbed's admin clients, outside the measured runs)."""
    from testbed.clients import Clients, session

    c = Clients(session())
    out = dict(seed["vo_map"])
    if os.environ.get("BENCH_SEED_PROJECTS_ONLY") != "1":
        for p in c.keystone.projects.list(domain="default"):
            if p.name.startswith("scale-project-"):
                out[p.id] = SCALE_VO
    counts = {
        "images": sum(
            1 for _ in c.glance.images.list(filters={"visibility": "all", "status": "active"})
        ),
        "flavors": len(c.nova.flavors.list(is_public=None)),
    }
    return out, counts


def ours(mapping: dict[str, str], clouds_yaml: str) -> dict[str, Any]:
    from fedcloud_cloudinfo.collect import CollectOptions, collect
    from fedcloud_cloudinfo.render import RENDERERS
    from fedcloud_cloudinfo.source import OpenStackSource
    from fedcloud_core.config import parse_config
    from fedcloud_core.openstack import OpenStackClients
    from fedcloud_core.report import RunReport

    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in sorted(mapping.items()):
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    doc = {
        "site": {"name": "BENCH-SITE"},
        "vos": vos,
        "openstack": {"cloud": "testbed-admin", "clouds_yaml": clouds_yaml},
        "cloud_info": {"timeout": OURS_TIMEOUT, "publish_all_images": True},
    }
    cfg = parse_config(json.dumps(doc), source="bench", environ={})
    src = OpenStackSource(OpenStackClients.from_config(cfg.openstack))
    report = RunReport(job="bench")
    opts = CollectOptions(
        publish_all_images=True, timeout=OURS_TIMEOUT, workers=cfg.cloud_info.workers
    )
    with _CountRequests() as counter:
        t0 = time.perf_counter()
        c0 = time.process_time()
        site = collect(src, cfg, report, opts)
        c1 = time.process_time()
        t1 = time.perf_counter()
    text = RENDERERS["glue21-json"](site)
    t2 = time.perf_counter()
    indented = len(json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False))
    ldif = RENDERERS["glue20-ldif"](site)
    t3 = time.perf_counter()
    return {
        "collect": t1 - t0,
        "render": t2 - t1,
        "render_ldif": t3 - t2,
        "calls": counter.n,
        "calls_source": src.api_calls,
        "cpu": c1 - c0,
        "http_wall": counter.http_wall,
        "http_sum": counter.http_sum,
        "bytes_indented": indented + 1,
        "ldif_entries": ldif.count("\ndn: ") + 1,
        "errors": len(report.errors),
        **_json_counts(text),
    }


def synthetic_json(images: int = 5006, flavors: int = 206, projects: int = 53) -> dict[str, Any]:
    """The GLUE 2.1 JSON of a site model of the issue's size (no cloud needed): every
    public image in every project's share, as at a real site. Size compact vs indented."""
    from dataclasses import replace

    from fedcloud_cloudinfo.model import Flavor, Image, Share
    from fedcloud_cloudinfo.render import RENDERERS
    from unit.cloudinfo.cloudinfo_fakes import MPURI, fixed_site

    base = fixed_site()
    fl = tuple(
        Flavor(f"{i:08x}-flavor-{i}", f"m{i}.large", vcpus=1 + i % 32, ram=2048, disk=20)
        for i in range(flavors)
    )
    im = tuple(
        Image(
            f"{i:08x}-0000-4000-8000-{i:012d}",
            f"EGI Ubuntu 22.04 build {i}",
            "public",
            owner="4a5b6c7d",
            version=f"2025.{i % 12 + 1:02d}.01",
            marketplace_url=MPURI.format(f"{i:08x}"),
            description="EGI Ubuntu 22.04 base image",
            os_name="ubuntu",
            os_version="22.04",
            platform="x86_64",
            other_info=(("base_mpuri", f"https://appdb.egi.eu/store/vm/image/{i:08x}:1/"),),
        )
        for i in range(images)
    )
    sh = tuple(
        Share(
            "vo.example.org" if p else "ops",
            f"{p:032x}",
            f"project-{p}",
            "Default",
            flavor_ids=tuple(f.id for f in fl),
            image_ids=tuple(i.id for i in im),
        )
        for p in range(projects)
    )
    site = replace(base, flavors=fl, images=im, shares=sh)
    t = time.perf_counter()
    text = RENDERERS["glue21-json"](site)
    dt = time.perf_counter() - t
    indented = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return {"bytes": len(text.encode()), "indented": len(indented.encode()), "render": dt}


def _install_cip() -> str | None:
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
        return f"pip install failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:100]}"
    return None


def theirs(mapping: dict[str, str], clouds_yaml: str) -> dict[str, Any] | str:
    err = _install_cip()
    if err:
        return err
    import yaml

    admin = yaml.safe_load(Path(clouds_yaml).read_text(encoding="utf-8"))["clouds"][
        "testbed-admin"
    ]["auth"]
    with tempfile.TemporaryDirectory(prefix="bench-cip-") as tmp:
        tmpd = Path(tmp)
        # cloud-info-provider 1.2.0's site config: gocdb (site name), endpoint (the Keystone
        # URL: it is the ID of the service/endpoint objects and the GOCDB lookup key) and
        # vos: a LIST of {name, auth: {project_id}}; it re-scopes its session per entry.
        site = {
            "gocdb": "BENCH-SITE",
            "endpoint": admin["auth_url"],
            "vos": [
                {"name": vo, "auth": {"project_id": pid}} for pid, vo in sorted(mapping.items())
            ],
        }
        site_yaml = tmpd / "site.yaml"
        site_yaml.write_text(yaml.safe_dump(site), encoding="utf-8")
        result = tmpd / "result.json"
        cmd = [
            str(CIP_VENV / "bin" / "python"),
            str(RUNNER),
            str(result),
            "--",
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
            "--select-flavors",
            "all",
            str(site_yaml),
        ]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=CIP_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            partial = json.loads(result.read_text()) if result.exists() else {}
            return {
                "timeout": time.perf_counter() - t0,
                "calls": partial.get("calls"),
                "shares_done": partial.get("shares_done"),
            }
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            return f"exit {r.returncode}: {last[:150]}"
        res: dict[str, Any] = json.loads(result.read_text())
        return res


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.1f}x"


def main() -> int:
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (testbed package)
    seed_path = STATE / "seed.json"
    if not seed_path.exists():
        print(
            f"infosys collect: n/a: testbed not seeded ({seed_path} missing); scripts/dev/testbed up"
        )
        return 1
    seed = json.loads(seed_path.read_text(encoding="utf-8"))
    clouds_yaml = seed.get("clouds_yaml", str(STATE / "clouds.yaml"))
    mapping, size = site_size(seed)
    try:
        a = ours(mapping, clouds_yaml)
    except Exception as exc:  # no figure of ours: nothing to compare with
        print(
            f"infosys collect: n/a: fedcloud-appliance cloud-info failed: {type(exc).__name__}: {exc}"
        )
        return 1
    b: dict[str, Any] | str
    if os.environ.get("BENCH_SKIP_CIP") == "1":
        b = "skipped (BENCH_SKIP_CIP=1)"
    else:
        b = theirs(mapping, clouds_yaml)

    print(
        f"\ninfosys collect+render on the testbed: {size['images']} active images, "
        f"{size['flavors']} flavors, {len(mapping)} mapped projects ({len(set(mapping.values()))} VOs); "
        "all active images published; GLUE 2.1 JSON output"
    )
    hdr = (
        f"{'tool':<30} {'collect s':>10} {'render s':>9} {'total s':>9} {'HTTP calls':>11} "
        f"{'shares':>7} {'flavor objs':>12} {'image objs':>11} {'JSON MB':>8}"
    )
    print(hdr)
    print("-" * len(hdr))
    tot_a = a["collect"] + a["render"]
    print(
        f"{'fedcloud-appliance cloud-info':<30} {a['collect']:>10.2f} {a['render']:>9.3f} {tot_a:>9.2f} "
        f"{a['calls']:>11} {a['shares']:>7} {a['flavors']:>12} {a['images']:>11} {a['bytes'] / 1e6:>8.2f}"
    )
    name = f"cloud-info-provider {CIP_VERSION}"
    if isinstance(b, str):
        print(f"{name:<30} n/a: {b}")
    elif "timeout" in b:
        calls = f">={b['calls']}" if b.get("calls") is not None else "n/a"
        print(
            f"{name:<30} {'>' + format(b['timeout'], '.0f'):>10} {'-':>9} {'>' + format(b['timeout'], '.0f'):>9} "
            f"{calls:>11}  stopped after {CIP_TIMEOUT:.0f} s (BENCH_CIP_TIMEOUT) with "
            f"share {b.get('shares_done', '?')} of {len(mapping)} started"
        )
        print(
            f"{'ratio (theirs / ours)':<30} {'>' + _ratio(b['timeout'], a['collect']):>10} {'':>9} "
            f"{'>' + _ratio(b['timeout'], tot_a):>9} "
            f"{('>=' + _ratio(b['calls'], a['calls'])) if b.get('calls') else '-':>11}"
        )
    else:
        tot_b = b["collect"] + b["render"]
        print(
            f"{name:<30} {b['collect']:>10.2f} {b['render']:>9.3f} {tot_b:>9.2f} {b['calls']:>11} "
            f"{b['shares']:>7} {b['flavors']:>12} {b['images']:>11} {b['bytes'] / 1e6:>8.2f}"
        )
        print(
            f"{'ratio (theirs / ours)':<30} {_ratio(b['collect'], a['collect']):>10} "
            f"{_ratio(b['render'], a['render']):>9} {_ratio(tot_b, tot_a):>9} "
            f"{_ratio(b['calls'], a['calls']):>11}"
        )
    print(
        f"ours, where the collect time went: {a['collect']:.2f} s wall = HTTP in flight "
        f"{a['http_wall']:.2f} s (summed over parallel calls {a['http_sum']:.2f} s) + the rest; "
        f"our process's CPU {a['cpu']:.2f} s (includes the HTTP client's parsing); "
        f"GLUE 2.1 JSON {a['bytes'] / 1e6:.2f} MB compact "
        f"({a['bytes_indented'] / 1e6:.2f} MB indented, as before issue 13), "
        f"{a['bytes'] / max(1, a['images']) / 1e3:.1f} KB per image; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    syn = synthetic_json()
    print(
        f"GLUE 2.1 JSON at the issue's size (site model of 5006 images, 206 flavors, 53 "
        f"projects, every image in every share; no cloud): {syn['bytes'] / 1e6:.1f} MB "
        f"compact, {syn['indented'] / 1e6:.1f} MB indented as before issue 13 "
        f"({syn['bytes'] / 5006 / 1e3:.1f} KB per image, rendered in {syn['render']:.2f} s)"
    )
    print(
        f"notes: ours also rendered GLUE 2.0 LDIF ({a['ldif_entries']} entries) in "
        f"{a['render_ldif']:.3f} s; {a['errors']} item errors; HTTP calls counted at "
        f"requests.Session.send for both (our source's own counter: {a['calls_source']}); "
        "cloud-info-provider's GOCDB lookup (goc.egi.eu) answered 'not found' offline"
    )
    return 0


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"bench_infosys_collect: stopped by signal {signum}")  # kills the child


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    sys.exit(main())
