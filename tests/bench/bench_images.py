"""Benchmarks of the image replicator, printed as a table.

1. An unchanged 100-image list: the time and the Glance API calls of the second run,
   against the testbed's real Glance (skipped, and said so, when the testbed is down).
2. Download + verify (sha512 while streaming, written to disk) from a loopback server,
   against raw loopback throughput (the same stream read and thrown away).
3. atrope 2.0.0 from PyPI, installed into its own venv under /tmp, on the same list
   (its cache sync, then its Glance dispatch twice).

Run: .venv/bin/python tests/bench/bench_images.py  (or `make bench`)
"""

from __future__ import annotations

import hashlib
import json
import os
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

from fedcloud_appliance import registry  # noqa: E402
from fedcloud_core.config import parse_config  # noqa: E402
from fedcloud_core.jobs import JobContext, execute  # noqa: E402
from fedcloud_core.openstack import OpenStackClients  # noqa: E402
from fedcloud_images.cache.download import Downloader  # noqa: E402
from fedcloud_images.model import ImageEntry  # noqa: E402
from fedcloud_images.sources.http import make_session  # noqa: E402
from support.images_pki import image_desc, make_disk, make_images_pki, signed_list  # noqa: E402
from support.imageserver import ImageServer  # noqa: E402
from support.pki import Cred  # noqa: E402

STATE = Path("/var/tmp/fedcloud-testbed")
CLOUDS = STATE / "clouds.yaml"
N_IMAGES = 100
BLOB_MIB = 256
ATROPE_VENV = Path("/tmp/atrope-venv")

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


class Counter:
    def __init__(self, clients: OpenStackClients):
        self.calls: list[str] = []
        glance = clients.endpoint("image").rstrip("/")
        real = clients.session.request

        def request(url: str, method: str, *a: Any, **kw: Any) -> Any:
            if (
                url.startswith(glance)
                or (kw.get("endpoint_filter") or {}).get("service_type") == "image"
            ):
                self.calls.append(method.upper())
            return real(url, method, *a, **kw)

        clients.session.request = request  # type: ignore[method-assign]


def bench_unchanged(
    tmp: Path, server: ImageServer, endorser: Cred, capath: Path, ns: str
) -> str | None:
    files = tmp / "files"
    files.mkdir()
    base = server.url(f"/{ns}/")
    images = []
    for i in range(N_IMAGES):
        p = make_disk(files / f"img{i:03d}.qcow2", seed=f"{ns}-{i}", data_kib=4)
        server.put(f"/{ns}/{p.name}", p.read_bytes())
        images.append(image_desc(f"bench-{i:03d}", p, base))
    body = signed_list(endorser, images, version="20260101000000")
    server.put(f"/{ns}/image.list", body)
    if not CLOUDS.is_file():
        row("unchanged 100-image list", "n/a", "(testbed not running: scripts/dev/testbed up)")
        return None
    seed = json.loads((STATE / "seed.json").read_text())
    vo = "fedcloud.egi.eu"
    doc = {
        "site": {"name": "BENCH"},
        "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(CLOUDS)},
        "vos": {vo: {"projects": sorted(p for p, v in seed["vo_map"].items() if v == vo)}},
        "paths": {"state_dir": str(tmp / "state"), "image_dir": str(tmp / "cache")},
        "images": {
            "tag": f"fedcloud-bench-{ns}",
            "capath": str(capath),
            "min_free_mb": 1,
            "concurrency": 2,
            "subscriptions": [
                {
                    "name": f"bench-{ns}",
                    "url": server.url(f"/{ns}/image.list"),
                    "vo": vo,
                    "endorser_dn": endorser.dn,
                    "endorser_ca": "/C=EU/O=Fedcloud Test/CN=Fedcloud Test CA",
                }
            ],
        },
    }
    cfg = parse_config(json.dumps(doc), source="bench", environ={})
    spec = registry.job("images sync")
    try:
        for label in ("first run (100 new images)", "unchanged run"):
            clients = OpenStackClients.from_config(cfg.openstack)
            counter = Counter(clients)
            t0 = time.monotonic()
            report = execute(spec, JobContext(config=cfg, deps={"clients": clients}), store=False)
            dt = time.monotonic() - t0
            writes = sum(1 for c in counter.calls if c in ("POST", "PUT", "PATCH", "DELETE"))
            ok = (
                ""
                if not report.errors
                else f"({len(report.errors)} errors: {report.errors[0][:60]})"
            )
            row(
                f"fedcloud-appliance {label}",
                f"{dt:.2f} s",
                f"{len(counter.calls)} Glance calls, {writes} writes {ok}".strip(),
            )
    finally:
        clients = OpenStackClients.from_config(cfg.openstack)
        for img in clients.glance.images.list(
            filters={"tag": [f"fedcloud-bench-{ns}"], "visibility": "all"}
        ):
            clients.glance.images.delete(img["id"])
    return vo


def bench_throughput(tmp: Path, server: ImageServer) -> None:
    data = os.urandom(1024 * 1024) * BLOB_MIB
    url = server.put("/throughput.img", data)
    http = make_session(retries=0)
    t0 = time.monotonic()
    n = 0
    with http.get(url, stream=True, timeout=(5, 30)) as r:
        for chunk in r.iter_content(1024 * 1024):
            n += len(chunk)
    raw = n / (time.monotonic() - t0) / 2**20
    entry = ImageEntry(
        identifier="t",
        title="t",
        uri=url,
        digest_algo="sha512",
        digest=hashlib.sha512(data).hexdigest(),
        size=len(data),
    )
    t0 = time.monotonic()
    Downloader(http, retries=0).fetch(entry, tmp / "throughput.img")
    ours = len(data) / (time.monotonic() - t0) / 2**20
    (tmp / "throughput.img").unlink()
    row(f"raw loopback read ({BLOB_MIB} MiB)", f"{raw:.0f} MiB/s")
    row("download + sha512 + write to disk", f"{ours:.0f} MiB/s", f"({ours / raw:.0%} of raw)")


def bench_atrope(
    tmp: Path, server: ImageServer, endorser: Cred, capath: Path, ns: str, vo: str | None
) -> None:
    py = ATROPE_VENV / "bin" / "python"
    if not (ATROPE_VENV / "bin" / "atrope").exists():
        print("installing atrope 2.0.0 into", ATROPE_VENV, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ATROPE_VENV)], check=True, timeout=300)
        proc = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "atrope==2.0.0"],
            capture_output=True,
            timeout=1200,
            check=False,
        )
        if proc.returncode != 0:
            row("atrope 2.0.0", "not installed", proc.stderr.decode()[-80:].strip())
            return
    adir = tmp / "atrope"
    adir.mkdir()
    (adir / "hepix.yaml").write_text(
        json.dumps(
            {
                f"bench-{ns}": {
                    "url": server.url(f"/{ns}/image.list"),
                    "enabled": True,
                    "endorser": {
                        "dn": endorser.dn,
                        "ca": "/C=EU/O=Fedcloud Test/CN=Fedcloud Test CA",
                    },
                }
            }
        )
    )
    conf = [
        f"[DEFAULT]\nca_path = {capath}\nstate_path = {adir}\n[sources]\nhepix_sources = {adir / 'hepix.yaml'}\n",
        f"[cache]\npath = {adir / 'cache'}\n",
    ]
    if vo and CLOUDS.is_file():
        conf.append("[dispatchers]\ndispatcher = glance\n")
        conf.append(
            "[glance]\nauth_type = password\nauth_url = http://127.0.0.1:5000/v3\nusername = admin\n"
            "password = admin-secret\nproject_name = admin\nuser_domain_name = Default\n"
            "project_domain_name = Default\n"
        )
    (adir / "atrope.conf").write_text("".join(conf))
    atrope = ATROPE_VENV / "bin" / "atrope"
    steps = [
        ("cache-sync (download + verify)", "cache-sync"),
        ("first dispatch", "dispatch"),
        ("unchanged dispatch", "dispatch"),
    ]
    clients = None
    before: set[str] = set()
    if CLOUDS.is_file():
        clients = OpenStackClients.from_config(
            parse_config(
                json.dumps(
                    {
                        "site": {"name": "B"},
                        "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(CLOUDS)},
                    }
                ),
                environ={},
            ).openstack
        )
        before = {i["id"] for i in clients.glance.images.list(filters={"visibility": "all"})}
    try:
        for label, cmd in steps:
            t0 = time.monotonic()
            proc = subprocess.run(
                [str(atrope), "--config-file", str(adir / "atrope.conf"), cmd],
                capture_output=True,
                timeout=1800,
                check=False,
            )
            dt = time.monotonic() - t0
            note = ""
            if proc.returncode != 0:
                last = proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
                note = f"exit {proc.returncode}: {last[-1][:70]}"
            cached = len(list((adir / "cache").rglob("*"))) if (adir / "cache").exists() else 0
            row(f"atrope 2.0.0 {label}", f"{dt:.2f} s", f"{note} ({cached} cache entries)".strip())
    finally:
        if clients is not None:
            for img in list(clients.glance.images.list(filters={"visibility": "all"})):
                if img["id"] not in before and str(img.get("name", "")).startswith("Image bench-"):
                    clients.glance.images.delete(img["id"])


def main() -> int:
    ns = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="bench-images-", dir="/var/tmp") as d:
        tmp = Path(d)
        ipki = make_images_pki(tmp / "pki")
        endorser = smime_endorser(tmp / "pki", ipki.pki.ca)
        with ImageServer() as server:
            vo = bench_unchanged(tmp, server, endorser, ipki.capath, ns)
            bench_throughput(tmp, server)
            bench_atrope(tmp, server, endorser, ipki.capath, ns, vo)
    width = max(len(r[0]) for r in rows)
    print(f"\nimages ({N_IMAGES}-image list, loopback server)")
    print(f"{'measure':<{width}}  {'value':>12}  notes")
    for what, value, note in rows:
        print(f"{what:<{width}}  {value:>12}  {note}")
    return 0


if __name__ == "__main__":
    requests.packages.urllib3.disable_warnings()  # type: ignore[attr-defined]
    sys.exit(main())
