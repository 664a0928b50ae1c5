"""Benchmarks of the image replicator, printed as a table.

1. A signed 100-image list into the testbed's real Glance, shared with one project: the
   first run and the unchanged second run, time and Glance API calls (skipped, and said
   so, when the testbed is down).
2. atrope 2.0.0 from PyPI, installed into its own venv under /tmp, on the same list
   (its cache sync, then its Glance dispatch twice), in the same run; ratios printed.
3. The same with a 1,000-image list (ours only; BENCH_IMAGES_LARGE=0 skips it): the
   unchanged run must cost the same Glance calls as at 100 images. Everything the
   benchmark creates in Glance is deleted before it ends.
4. Download + verify of a 1 GiB image (sha512 while streaming, written, fsynced) from a
   sendfile server in its own process, against the raw loopback read of the same file,
   sha512 alone and write + fsync alone, in the same run.
The load average is printed with the figures: on a shared machine they are indicative.

Run: .venv/bin/python tests/bench/bench_images.py  (or `make bench`)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "services")]

import requests  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from fedcloud_appliance import catalog  # noqa: E402
from fedcloud_core.config import parse_config  # noqa: E402
from fedcloud_core.jobs import JobContext, execute  # noqa: E402
from fedcloud_core.openstack import OpenStackClients  # noqa: E402
from fedcloud_images import imagelist  # noqa: E402
from fedcloud_images.cache.download import Downloader  # noqa: E402
from fedcloud_images.jobs import ImagesDeps  # noqa: E402
from fedcloud_images.model import ImageEntry  # noqa: E402
from fedcloud_images.sources.http import make_session  # noqa: E402
from support.images_pki import image_desc, make_disk, make_images_pki  # noqa: E402
from support.imageserver import ImageServer  # noqa: E402
from support.pki import Cred  # noqa: E402

STATE = Path("/var/tmp/fedcloud-testbed")
CLOUDS = STATE / "clouds.yaml"
N_IMAGES = 100
N_LARGE = int(os.environ.get("BENCH_IMAGES_LARGE", "1000"))
DISTINCT_FILES = 100  # the large list points its images at these files (the sync keys differ)
THROUGHPUT_MIB = int(os.environ.get("BENCH_THROUGHPUT_MIB", "1024"))
ATROPE_VENV = Path("/tmp/atrope-venv")
ATROPE_TIMEOUT = 900  # s per atrope command
VO = "fedcloud.egi.eu"

rows: list[tuple[str, str, str]] = []


def row(what: str, value: str, note: str = "") -> None:
    rows.append((what, value, note))
    print(f"  {what}: {value} {note}", file=sys.stderr)


def smime_endorser(root: Path, ca: Cred) -> Cred:
    """An endorser certificate that also has emailProtection (atrope runs openssl without -purpose any)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "EU"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fedcloud Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, "bench-endorser.example.org"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    d = root / "bench-endorser"
    d.mkdir()
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Cred(
        "bench",
        d / "cert.pem",
        d / "key.pem",
        "/C=EU/O=Fedcloud Test/CN=bench-endorser.example.org",
        cert,
        key,
    )


def appdb_extra(i: int) -> dict[str, str]:
    """Per-image fields of an AppDB-published list.

    Real AppDB lists carry them all; atrope 2.0.0 rejects the WHOLE list (``missing
    mandatory fields``, nothing cached, ``dispatch`` then says it was never fetched) when
    one image lacks any of ad:group, ad:user:*, hv:hypervisor, sl:comments or sl:os.
    Our tool does not need them; both tools get the same list.
    """
    return {
        "sl:osname": "Ubuntu",
        "sl:osversion": "22.04",
        "sl:os": "Linux",
        "sl:arch": "x86_64",
        "sl:comments": "",
        "hv:hypervisor": "QEMU,KVM",
        "hv:ram_minimum": "512",
        "ad:group": "General group",
        "ad:user:fullname": "Bench Publisher",
        "ad:user:guid": f"bench-user-{i % 7}",
        "ad:user:uri": "https://appdb.example/store/person/bench",
        "ad:mpuri": f"https://appdb.example/store/vo/image/bench-{i:03d}:1/",
    }


def appdb_list(signer: Cred, images: list[dict[str, Any]]) -> bytes:
    """The signed list (detached S/MIME), with the list-level dc:source atrope requires."""
    desc: dict[str, Any] = {
        "title": "bench list",
        "vo": VO,
        "version": "20260101000000",
        "images": images,
        "identifier": "0e1f7a4e-0000-4000-8000-0000000000b1",
        "email": "bench@example.org",
        "expires": (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    doc = imagelist.build_list(desc, base_dir=Path("/"), cert=signer.cert)
    doc["hv:imagelist"]["dc:source"] = "https://appdb.example/store/vo/fedcloud.egi.eu"
    return imagelist.sign_list(doc, cert=signer.cert, key=signer.key)


GLANCE_WRITES = ("POST", "PUT", "PATCH", "DELETE")

# Counts the Glance requests of a process at the requests layer (the same place for both
# tools): the atrope subprocess imports it as sitecustomize; our run installs it in-process.
COUNTER_SRC = """
import atexit, json, os, threading
import requests.sessions as _s
_glance = os.environ["BENCH_GLANCE_URL"].rstrip("/")
_calls = []
_lock = threading.Lock()
_orig = _s.Session.send
def _send(self, request, **kw):
    if request.url.startswith(_glance):
        with _lock:
            _calls.append(request.method.upper())
    return _orig(self, request, **kw)
_s.Session.send = _send
def _dump():
    with open(os.environ["BENCH_CALLS_FILE"], "w") as f:
        json.dump(_calls, f)
if os.environ.get("BENCH_CALLS_FILE"):
    atexit.register(_dump)
"""


class GlanceCounter:
    """The same hook, in this process, for our tool."""

    def __init__(self, glance_url: str):
        import requests.sessions

        self.calls: list[str] = []
        self._glance = glance_url.rstrip("/")
        self._mod = requests.sessions
        self._orig = requests.sessions.Session.send

    def __enter__(self) -> GlanceCounter:
        orig, calls, glance = self._orig, self.calls, self._glance

        def send(sess: Any, request: Any, **kw: Any) -> Any:
            if request.url.startswith(glance):
                calls.append(request.method.upper())
            return orig(sess, request, **kw)

        self._mod.Session.send = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._mod.Session.send = self._orig  # type: ignore[method-assign]


def progress(what: str, figures: dict[str, Any]) -> None:
    """Each figure as soon as it is measured (stderr), so a killed run still shows them."""
    print(f"  [bench images] {what}: {json.dumps(figures)}", file=sys.stderr, flush=True)


def _admin_clients() -> OpenStackClients:
    doc = {
        "site": {"name": "B"},
        "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(CLOUDS)},
    }
    return OpenStackClients.from_config(parse_config(json.dumps(doc), environ={}).openstack)


def _delete_where(pred: Any) -> int:
    """Delete the images ``pred`` selects (4 at once: the large run leaves 1,000)."""
    from concurrent.futures import ThreadPoolExecutor

    clients = _admin_clients()
    doomed = [
        img["id"]
        for img in clients.glance.images.list(filters={"visibility": "all"}, page_size=1000)
        if pred(img)
    ]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(clients.glance.images.delete, doomed))
    return len(doomed)


def make_list(tmp: Path, server: ImageServer, endorser: Cred, ns: str, n: int = N_IMAGES) -> str:
    files = tmp / f"files-{ns}"
    files.mkdir()
    base = server.url(f"/{ns}/")
    images = []
    for i in range(n):
        p = files / f"img{i % DISTINCT_FILES:03d}.qcow2"
        if not p.exists():
            p = make_disk(p, seed=f"{ns}-{i}", data_kib=4)
            server.put(f"/{ns}/{p.name}", p.read_bytes())
        images.append(image_desc(f"bench-{i:04d}", p, base, extra=appdb_extra(i)))
    return server.put(f"/{ns}/image.list", appdb_list(endorser, images))


def bench_ours(
    tmp: Path, list_url: str, endorser: Cred, capath: Path, ns: str, project: str
) -> dict[str, Any]:
    doc = {
        "site": {"name": "BENCH"},
        "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(CLOUDS)},
        "vos": {VO: {"projects": [project]}},
        "paths": {"state_dir": str(tmp / "state"), "image_dir": str(tmp / "cache")},
        "images": {
            "tag": f"fedcloud-bench-{ns}",
            "name_prefix": f"OURS-{ns}-",
            "capath": str(capath),
            "min_free_mb": 1,
            "concurrency": 2,
            "upload_workers": 3,
            "subscriptions": [
                {
                    "name": f"bench-{ns}",
                    "url": list_url,
                    "vo": VO,
                    "endorser_dn": endorser.dn,
                    "endorser_ca": "/C=EU/O=Fedcloud Test/CN=Fedcloud Test CA",
                }
            ],
        },
    }
    cfg = parse_config(json.dumps(doc), source="bench", environ={})
    spec = catalog.job("images sync")
    out: dict[str, Any] = {}
    try:
        for key in ("first", "unchanged"):
            clients = OpenStackClients.from_config(cfg.openstack)
            with GlanceCounter(clients.endpoint("image")) as counter:
                t0 = time.monotonic()
                report = execute(
                    spec, JobContext(config=cfg, deps=ImagesDeps(clients=clients)), store=False
                )
                dt = time.monotonic() - t0
            out[key] = {
                "s": dt,
                "calls": len(counter.calls),
                "writes": sum(1 for c in counter.calls if c in GLANCE_WRITES),
                "errors": len(report.errors),
                "note": report.errors[0][:60] if report.errors else _load(),
            }
            progress(f"fedcloud-appliance {key} run", out[key])
        clients = _admin_clients()
        out["in_glance"] = len(
            list(
                clients.glance.images.list(
                    filters={"tag": [f"fedcloud-bench-{ns}"], "visibility": "all"}
                )
            )
        )
    finally:
        _delete_where(lambda img: f"fedcloud-bench-{ns}" in (img.get("tags") or []))
    return out


# A file server in its own process (a real image server is not in the downloader's process):
# GET answers the whole file with os.sendfile from the page cache.
FILE_SERVER_SRC = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        path = os.path.join(sys.argv[1], os.path.basename(self.path))
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.flush()
            off = 0
            while off < size:
                off += os.sendfile(self.connection.fileno(), f.fileno(), off, size - off)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def _load() -> str:
    la = os.getloadavg()
    return f"load {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"


def bench_throughput(tmp: Path) -> dict[str, float]:
    """1 GiB from a sendfile server on loopback: raw read vs download + sha512 + write + fsync.

    Also the two ceilings a download cannot beat on this machine, measured in the same run:
    sha512 of the same bytes in memory on one core, and writing them + fsync."""
    from fedcloud_images.cache.download import BUFFER, body_reader

    srv_dir = tmp / "srv"
    srv_dir.mkdir()
    blob = srv_dir / "throughput.img"
    h = hashlib.sha512()
    block = os.urandom(8 * 2**20)
    with blob.open("wb") as f:
        for i in range(THROUGHPUT_MIB // 8):
            piece = block[:-8] + i.to_bytes(8, "big")
            f.write(piece)
            h.update(piece)
    size = blob.stat().st_size
    digest = h.hexdigest()
    out: dict[str, float] = {}
    proc = subprocess.Popen(
        [sys.executable, "-c", FILE_SERVER_SRC, str(srv_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = f"http://127.0.0.1:{proc.stdout.readline().strip()}/throughput.img"
        http = make_session(retries=0)
        buf = memoryview(bytearray(BUFFER))
        raw = []
        for _ in range(2):  # the best of two: the first also warms the page cache
            t0 = time.monotonic()
            n = 0
            with http.get(url, stream=True, timeout=(5, 30)) as r:
                readinto = body_reader(r)
                while k := readinto(buf):
                    n += k
            assert n == size
            raw.append(size / (time.monotonic() - t0) / 2**20)
        out["raw"] = max(raw)
        hs = hashlib.sha512()
        t0 = time.monotonic()
        for _ in range(32):
            hs.update(block)
        out["sha512"] = 256 / (time.monotonic() - t0)
        t0 = time.monotonic()
        with (tmp / "w.img").open("wb", buffering=0) as f:
            for _ in range(THROUGHPUT_MIB // 8):
                f.write(block)
            os.fsync(f.fileno())
        out["write"] = THROUGHPUT_MIB / (time.monotonic() - t0)
        (tmp / "w.img").unlink()
        entry = ImageEntry(
            identifier="t", title="t", uri=url, digest_algo="sha512", digest=digest, size=size
        )
        ours = []
        for _ in range(2):
            t0 = time.monotonic()
            Downloader(http, retries=0).fetch(entry, tmp / "throughput.img")
            ours.append(size / (time.monotonic() - t0) / 2**20)
            (tmp / "throughput.img").unlink()
        out["ours"] = max(ours)
    finally:
        proc.terminate()
        proc.wait(10)
        blob.unlink()
    ceiling = min(out["raw"], out["sha512"], out["write"])
    row(f"raw loopback read ({THROUGHPUT_MIB} MiB, sendfile server)", f"{out['raw']:.0f} MiB/s")
    row("sha512 of the same bytes in memory (one core)", f"{out['sha512']:.0f} MiB/s")
    row("write + fsync of the same bytes", f"{out['write']:.0f} MiB/s")
    row(
        "download + sha512 + write + fsync + rename",
        f"{out['ours']:.0f} MiB/s",
        f"({out['ours'] / out['raw']:.0%} of raw, {out['ours'] / ceiling:.0%} of the slowest "
        f"of the three above; {_load()})",
    )
    progress("throughput", out)
    return out


def _install_atrope() -> str | None:
    py = ATROPE_VENV / "bin" / "python"
    if (ATROPE_VENV / "bin" / "atrope").exists():
        return None
    print("installing atrope 2.0.0 into", ATROPE_VENV, file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(ATROPE_VENV)], check=True, timeout=300)
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "atrope==2.0.0"],
        capture_output=True,
        timeout=1200,
        check=False,
    )
    if proc.returncode != 0:
        return "pip install atrope==2.0.0 failed: " + proc.stderr.decode()[-80:].strip()
    return None


def bench_atrope(
    tmp: Path, list_url: str, endorser: Cred, capath: Path, ns: str, project: str
) -> dict[str, Any] | str:
    """atrope's `dispatch` (cache sync + Glance upload + sync) on the same list, twice."""
    err = _install_atrope()
    if err:
        return err
    adir = tmp / "atrope"
    adir.mkdir()
    name = f"bench-{ns}"
    (adir / "hepix.yaml").write_text(
        json.dumps(
            {
                name: {
                    "url": list_url,
                    "enabled": True,
                    "endorser": {
                        "dn": endorser.dn,
                        "ca": "/C=EU/O=Fedcloud Test/CN=Fedcloud Test CA",
                    },
                    "prefix": f"{ns}-",
                    "project": project,
                }
            }
        )
    )
    (adir / "atrope.conf").write_text(
        f"[DEFAULT]\nca_path = {capath}\nstate_path = {adir}\n"
        f"[sources]\nhepix_sources = {adir / 'hepix.yaml'}\n"
        f"[cache]\npath = {adir / 'cache'}\n"
        f"[dispatchers]\ndispatcher = glance\nprefix = ATROPE-\n"
        "[glance]\nauth_type = password\nauth_url = http://127.0.0.1:5000/v3\nusername = admin\n"
        "password = admin-secret\nproject_name = admin\nuser_domain_name = Default\n"
        "project_domain_name = Default\n"
    )
    hook = adir / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(COUNTER_SRC)
    glance_url = _admin_clients().endpoint("image")
    out: dict[str, Any] = {}
    try:
        for key in ("first", "unchanged"):
            calls_file = adir / f"calls-{key}.json"
            env = dict(
                os.environ,
                PYTHONPATH=str(hook),
                BENCH_GLANCE_URL=glance_url,
                BENCH_CALLS_FILE=str(calls_file),
            )
            t0 = time.monotonic()
            try:
                proc = subprocess.run(
                    [
                        str(ATROPE_VENV / "bin" / "atrope"),
                        "--config-file",
                        str(adir / "atrope.conf"),
                        "dispatch",
                    ],
                    capture_output=True,
                    timeout=ATROPE_TIMEOUT,
                    check=False,
                    env=env,
                )
            except subprocess.TimeoutExpired:
                return f"atrope dispatch timed out after {ATROPE_TIMEOUT} s ({key} run)"
            dt = time.monotonic() - t0
            if proc.returncode != 0:
                last = proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
                return f"atrope dispatch exit {proc.returncode} ({key} run): {last[-1][:90]}"
            calls = json.loads(calls_file.read_text()) if calls_file.exists() else None
            if calls is None:
                return "atrope's Glance calls could not be counted (no counter output)"
            errors = proc.stderr.decode(errors="replace").count(" ERROR ")
            out[key] = {
                "s": dt,
                "calls": len(calls),
                "writes": sum(1 for c in calls if c in GLANCE_WRITES),
                "errors": errors,
                "note": f"{errors} ERROR log lines" if errors else _load(),
            }
            progress(f"atrope 2.0.0 {key} run", out[key])
        out["cached"] = len(list((adir / "cache" / name / "images").glob("*")))
        out["in_glance"] = sum(
            1
            for img in _admin_clients().glance.images.list(
                filters={"visibility": "all", "tag": ["atrope"]}
            )
            if img.get("image_list") == name
        )
    finally:
        _delete_where(lambda img: img.get("image_list") == name)
    return out


def _fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else ("-" if not a else f"{a:g} vs 0")


def main() -> int:
    ns = uuid.uuid4().hex[:6]
    ours: dict[str, Any] | str
    theirs: dict[str, Any] | str
    large: dict[str, Any] | str = "not run"
    with tempfile.TemporaryDirectory(prefix="bench-images-", dir="/var/tmp") as d:
        tmp = Path(d)
        ipki = make_images_pki(tmp / "pki")
        endorser = smime_endorser(tmp / "pki", ipki.pki.ca)
        with ImageServer() as server:
            bench_throughput(tmp)
            list_url = make_list(tmp, server, endorser, ns)
            if not (STATE / "seed.json").is_file():
                ours = theirs = "testbed not running (scripts/dev/testbed up)"
            else:
                seed = json.loads((STATE / "seed.json").read_text())
                project = sorted(p for p, v in seed["vo_map"].items() if v == VO)[0]
                ours = bench_ours(tmp, list_url, endorser, ipki.capath, ns, project)
                if os.environ.get("BENCH_SKIP_ATROPE") == "1":
                    theirs = "skipped (BENCH_SKIP_ATROPE=1)"
                else:
                    theirs = bench_atrope(tmp, list_url, endorser, ipki.capath, ns, project)
                if N_LARGE:
                    lns = ns + "l"
                    large_url = make_list(tmp, server, endorser, lns, N_LARGE)
                    (tmp / lns).mkdir()
                    large = bench_ours(tmp / lns, large_url, endorser, ipki.capath, lns, project)

    print(f"\nimages: a signed {N_IMAGES}-image list (4 KiB qcow2 each) from a loopback server "
          f"into the testbed's Glance, shared with one {VO} project ({_load()} at the end)")  # fmt: skip
    hdr = f"{'tool / run':<48} {'wall s':>8} {'Glance calls':>13} {'writes':>7}  notes"
    print(hdr)
    print("-" * len(hdr))
    runs: list[tuple[str, dict[str, Any] | str]] = [
        ("fedcloud-appliance images sync", ours),
        ("atrope 2.0.0 dispatch", theirs),
    ]
    if N_LARGE:
        runs.append((f"fedcloud-appliance, {N_LARGE} images", large))
    for label, res in runs:
        if isinstance(res, str):
            print(f"{label:<48} {'n/a':>8} {'n/a':>13} {'n/a':>7}  {res}")
            continue
        for key, what in (("first", "first run"), ("unchanged", "unchanged run")):
            r = res[key]
            print(
                f"{label + ', ' + what:<48} {r['s']:>8.2f} {r['calls']:>13} {r['writes']:>7}  {r['note']}"
            )
        extra = f"images in Glance after the runs: {res['in_glance']}"
        if "cached" in res:
            extra += f", images in its cache: {res['cached']}"
        print(f"{'':<48} {'':>8} {'':>13} {'':>7}  {extra}")
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key, what in (("first", "first run"), ("unchanged", "unchanged run")):
            a, b = ours[key], theirs[key]
            print(
                f"{'ratio atrope / ours, ' + what:<48} {_fmt_ratio(b['s'], a['s']):>8} "
                f"{_fmt_ratio(b['calls'], a['calls']):>13} {_fmt_ratio(b['writes'], a['writes']):>7}"
            )
    if isinstance(ours, dict) and isinstance(large, dict):
        a, b = ours["unchanged"], large["unchanged"]
        print(
            f"{f'unchanged run, {N_LARGE} vs {N_IMAGES} images (ours)':<48} "
            f"{_fmt_ratio(b['s'], a['s']):>8} {_fmt_ratio(b['calls'], a['calls']):>13} "
            f"{_fmt_ratio(b['writes'], a['writes']):>7}  Glance calls: {a['calls']} and {b['calls']}"
        )
    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'download + verify throughput':<{width}}  {'value':>12}  notes")
    for what, value, note in rows:
        print(f"{what:<{width}}  {value:>12}  {note}")
    return 0


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"bench_images: stopped by signal {signum}")  # runs the cleanups


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    requests.packages.urllib3.disable_warnings()  # type: ignore[attr-defined]
    sys.exit(main())
