"""Faults of ``images sync`` against real Glance: Glance killed during an upload, the Keystone
token revoked during a long upload, the image cache (``/image_data``) full.

Uploads go to a private glance-api (:class:`faults.faultlib.OwnGlance`: the testbed's venv,
database and file store, its own port and process) so that killing it never touches the
shared testbed. Images are qcow2 files of tens of MiB, served from 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from faults.faultlib import CutProxy, OwnGlance, can_mount, resize_tmpfs, tmpfs, wait_for
from fedcloud_appliance import catalog
from fedcloud_core.config import parse_config
from fedcloud_core.external import run_tool
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.openstack import OpenStackClients
from fedcloud_core.report import RunReport
from fedcloud_images.jobs import ImagesDeps
from support.images_pki import ImagesPki, image_desc, make_images_pki, signed_list
from support.imageserver import ImageServer

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore:The 'interface' argument is deprecated:UserWarning"),
]

VO = "fedcloud.egi.eu"
MIB = 1024 * 1024
# uploads go through a proxy that only slows them (to ~3 s for 96 MiB), so that the fault
# reliably lands mid-upload on a fast or a loaded machine; it never cuts anything itself
THROTTLE = 32 * MIB


def make_qcow2(path: Path, mib: int, seed: str) -> Path:
    """A qcow2 image holding ``mib`` MiB of seed-dependent data (so it cannot be sparse)."""
    raw = path.with_suffix(".raw-src")
    block = hashlib.sha512(seed.encode()).digest() * 16384  # 1 MiB
    with raw.open("wb") as fh:
        for i in range(mib):
            fh.write(i.to_bytes(8, "big") + block[8:])
    run_tool(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], timeout=120)
    raw.unlink()
    return path


@pytest.fixture(scope="module")
def ipki(tmp_path_factory: pytest.TempPathFactory) -> ImagesPki:
    return make_images_pki(tmp_path_factory.mktemp("fault-images-pki"))


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    with ImageServer() as s:
        yield s


@pytest.fixture(scope="module")
def own_glance(testbed: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnGlance]:
    g = OwnGlance(testbed.dir, tmp_path_factory.mktemp("own-glance"), token_cache=False)
    g.start()
    yield g
    g.kill()


class Site:
    """One image list on the loopback server, an appliance config, runs of the real job."""

    def __init__(self, testbed: Any, tmp: Path, ipki: ImagesPki, server: ImageServer):
        self.tb = testbed
        self.ns = uuid.uuid4().hex[:8]
        self.tag = f"fedcloud-fault-{self.ns}"
        self.tmp, self.ipki, self.server = tmp, ipki, server
        self.image_dir = tmp / "image_data"
        self.clouds_yaml = testbed.clouds_yaml
        self.cloud = "testbed-admin"
        self.glance_url: str | None = None  # None: the catalog's (the testbed's glance)
        self.clients: OpenStackClients | None = None
        self.files = tmp / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.extra: dict[str, Any] = {}
        self._admin: OpenStackClients | None = None
        self.projects = sorted(p for p, vo in testbed.seed["vo_map"].items() if vo == VO)

    def publish(self, images: dict[str, Path], version: str) -> None:
        base = self.server.url(f"/{self.ns}/")
        for p in images.values():
            self.server.put(f"/{self.ns}/{p.name}", p.read_bytes())
        descs = [image_desc(ident, p, base) for ident, p in images.items()]
        self.server.put(
            f"/{self.ns}/image.list", signed_list(self.ipki.endorser, descs, version=version)
        )

    def config(self) -> Any:
        doc = {
            "site": {"name": "TEST-SITE"},
            "openstack": {"cloud": self.cloud, "clouds_yaml": str(self.clouds_yaml), "timeout": 60},
            "vos": {VO: {"projects": self.projects}},
            "paths": {"state_dir": str(self.tmp / "state"), "image_dir": str(self.image_dir)},
            "images": {
                "tag": self.tag,
                "capath": str(self.ipki.capath),
                "retries": 1,
                "backoff": 0,
                "min_free_mb": 1,
                "read_timeout": 10,
                "connect_timeout": 5,
                "progress": "never",
                "subscriptions": [
                    {
                        "name": f"list-{self.ns}",
                        "url": self.server.url(f"/{self.ns}/image.list"),
                        "vo": VO,
                        "visibility": "private",
                        "endorser_dn": self.ipki.endorser.dn,
                        "endorser_ca": self.ipki.endorser_ca,
                    }
                ],
                **self.extra,
            },
        }
        return parse_config(json.dumps(doc), source="test", environ={})

    def run(self) -> RunReport:
        cfg = self.config()
        clients = OpenStackClients.from_config(cfg.openstack)
        if self.glance_url:
            from glanceclient import Client as GlanceClient

            clients._cache["glance"] = GlanceClient(
                "2", session=clients.session, endpoint_override=self.glance_url
            )
        self.clients = clients
        report = execute(
            catalog.job("images sync"), JobContext(config=cfg, deps=ImagesDeps(clients=clients))
        )
        print("operator sees:", report.summary(), report.errors)
        return report

    def admin(self) -> OpenStackClients:
        if self._admin is None:
            self._admin = self._admin_clients()
        return self._admin

    def _admin_clients(self) -> OpenStackClients:
        return OpenStackClients.from_config(
            parse_config(
                json.dumps(
                    {
                        "site": {"name": "TEST-SITE"},
                        "openstack": {
                            "cloud": "testbed-admin",
                            "clouds_yaml": str(self.tb.clouds_yaml),
                        },
                    }
                ),
                source="test",
                environ={},
            ).openstack
        )

    def images(self) -> list[dict[str, Any]]:
        return [
            dict(i)
            for i in self.admin().glance.images.list(
                filters={"tag": [self.tag], "visibility": "all"}
            )
        ]

    def downloads(self, name: str) -> int:
        return len([h for h in self.server.hits(f"/{self.ns}/{name}") if h.method == "GET"])

    def cleanup(self) -> None:
        g = self.admin().glance
        for i in g.images.list(filters={"tag": [self.tag], "visibility": "all"}):
            try:
                g.images.delete(i["id"])
            except Exception as exc:
                print(f"cleanup: could not delete image {i['id']}: {exc}")


@pytest.fixture
def site(testbed: Any, tmp_path: Path, ipki: ImagesPki, server: ImageServer) -> Iterator[Site]:
    s = Site(testbed, tmp_path, ipki, server)
    yield s
    s.cleanup()


def store_file(testbed: Any, image_id: str) -> Path:
    return testbed.dir / "glance" / "images" / image_id


def watch_upload(site: Site, min_bytes: int, timeout: float = 120) -> str:
    """Wait until one image of the site is being written to the store with >= min_bytes; its id."""
    found: dict[str, str] = {}

    def saving() -> bool:
        for img in site.images():
            if img["status"] == "saving":
                found["id"] = img["id"]
                return True
        return False

    wait_for(saving, timeout, step=0.1, what="an image in status saving")
    path = store_file(site.tb, found["id"])
    wait_for(
        lambda: path.exists() and path.stat().st_size >= min_bytes,
        timeout,
        step=0.01,
        what=f"{min_bytes} bytes in {path}",
    )
    return found["id"]


def in_background(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), name="fault-sync")
    t.start()
    return t, out


# ----------------------------------------------------------------------------------- (b) token


def _temp_admin(site: Site) -> tuple[str, str, Any]:
    """A Keystone user with role admin on project admin (deleted by the caller)."""
    ks = site.admin().keystone
    name, password = f"fault-{site.ns}", secrets.token_urlsafe(16)
    domain = ks.domains.find(name="Default")
    user = ks.users.create(name=name, domain=domain, password=password)
    project = ks.projects.find(name="admin", domain_id=domain.id)
    role = ks.roles.find(name="admin")
    ks.roles.grant(role, user=user, project=project)
    clouds = {
        "clouds": {
            "fault": {
                "auth": {
                    "auth_url": site.tb.auth_url,
                    "username": name,
                    "password": password,
                    "user_domain_name": "Default",
                    "project_name": "admin",
                    "project_domain_name": "Default",
                },
                "region_name": site.tb.region,
            }
        }
    }
    path = site.tmp / "clouds.yaml"
    path.write_text(yaml.safe_dump(clouds))
    os.chmod(path, 0o600)
    site.clouds_yaml, site.cloud = path, "fault"
    return name, password, user


def test_token_revoked_during_long_upload_session_reauthenticates(
    site: Site, own_glance: OwnGlance
) -> None:
    if own_glance.proc is None:
        own_glance.start()
    img = make_qcow2(site.files / "long.qcow2", 96, f"long-{site.ns}")
    site.publish({"img-long": img}, "20260101000000")
    _, _, user = _temp_admin(site)
    admin = site.admin()
    refused = own_glance.work / "uwsgi.log"
    before = refused.read_text(errors="replace").count("(HTTP/1.1 401)")
    try:
        with CutProxy(("127.0.0.1", own_glance.port), throttle=THROTTLE) as slow:
            site.glance_url = f"http://127.0.0.1:{slow.port}"
            t, out = in_background(site.run)
            image_id = watch_upload(site, 4 * MIB)
            assert site.clients is not None
            token = site.clients.session.get_token()
            # revoke the session's token as the cloud admin: every later request with it gets 401
            resp = admin.session.delete(
                f"{site.tb.auth_url}/auth/tokens",
                headers={"X-Subject-Token": token},
                raise_exc=False,
            )
            assert resp.status_code == 204, resp.text
            check = admin.session.head(
                f"{site.tb.auth_url}/auth/tokens",
                headers={"X-Subject-Token": token},
                raise_exc=False,
            )
            assert check.status_code == 404  # revoked for Keystone
            # still uploading when the token was revoked
            assert store_file(site.tb, image_id).stat().st_size < img.stat().st_size
            t.join(timeout=180)
        assert not t.is_alive()
        report = out[0]
        assert site.clients is not None
        assert report.errors == [], report.errors
        assert report.counts["images_new"] == 1
        assert site.clients.session.get_token() != token  # the session authenticated again
        # Glance refused the revoked token (401) and the session retried with a new one
        assert refused.read_text(errors="replace").count("(HTTP/1.1 401)") > before
        got = site.images()
        assert [i["id"] for i in got] == [image_id]
        assert got[0]["status"] == "active"
        assert got[0]["os_hash_value"] == hashlib.sha512(img.read_bytes()).hexdigest()
        # the next run: nothing to do
        site.glance_url = None
        again = site.run()
        assert again.errors == []
        assert again.counts["images_unchanged"] == 1
    finally:
        admin.keystone.users.delete(user)


# ----------------------------------------------------------------------------------- (a) kill


def test_glance_killed_during_upload_next_run_uploads(site: Site, own_glance: OwnGlance) -> None:
    if own_glance.proc is None:
        own_glance.start()
    img = make_qcow2(site.files / "a.qcow2", 96, f"a-{site.ns}")
    site.publish({"img-a": img}, "20260101000000")
    with CutProxy(("127.0.0.1", own_glance.port), throttle=THROTTLE) as slow:
        site.glance_url = f"http://127.0.0.1:{slow.port}"
        t, out = in_background(site.run)
        killed_id = watch_upload(site, 4 * MIB)
        partial = store_file(site.tb, killed_id).stat().st_size
        own_glance.kill()  # SIGKILL: uWSGI master and worker
        t.join(timeout=180)
    assert not t.is_alive()
    report = out[0]
    assert report.counts["images_failed"] == 1
    assert any("Glance upload failed" in e for e in report.errors), report.errors
    assert 0 < partial < img.stat().st_size
    left = {i["id"]: i["status"] for i in site.images()}
    assert set(left) == {killed_id}  # the half image stays behind, never active
    assert left[killed_id] in ("saving", "queued")
    cached = list((site.image_dir / f"list-{site.ns}").rglob("*.orig"))
    assert len(cached) == 1  # the verified download is kept for the next run

    # the next run (Glance back: the testbed's, same database and store) uploads from the cache
    site.glance_url = None
    report2 = site.run()
    assert report2.errors == [], report2.errors
    assert report2.counts["images_updated"] == 1  # uploaded anew, replacing the half image
    assert report2.counts["images_removed"] == 1
    assert site.downloads(img.name) == 1  # not downloaded again
    got = {i["id"]: i for i in site.images()}
    active = [i for i in got.values() if i["status"] == "active"]
    assert len(active) == 1
    assert active[0]["os_hash_value"] == hashlib.sha512(img.read_bytes()).hexdigest()
    assert killed_id not in got  # the half image was removed as superseded
    # Glance itself leaves the killed upload's partial file in its store (the image had no
    # location yet): an orphan for the Glance operator; removed here to keep the testbed clean
    orphan = store_file(site.tb, killed_id)
    assert orphan.exists()
    orphan.unlink()


# ----------------------------------------------------------------------------------- (c) full


@pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root")
def test_image_cache_full_nothing_half_written_next_run_completes(site: Site) -> None:
    # two 20 MiB images downloaded in parallel into a 32 MiB cache: each fits alone, not both.
    # The first download's reservation (its announced size) makes the second one's free-space
    # check fail before it writes: one clean "not enough free space" error, no raw ENOSPC, no
    # "database or disk is full" (the state DB on the same volume still has room), and the
    # image that arrived is uploaded
    imgs = {
        "img-a": make_qcow2(site.files / "a.qcow2", 20, f"a-{site.ns}"),
        "img-b": make_qcow2(site.files / "b.qcow2", 20, f"b-{site.ns}"),
    }
    site.publish(imgs, "20260101000000")
    site.extra = {"concurrency": 2}
    with tmpfs(site.image_dir, 32):
        report = site.run()
        assert report.fatal is None, report.fatal
        assert len(report.errors) == 1, report.errors
        assert "not enough free space in " in report.errors[0], report.errors
        assert "unexpected error" not in report.errors[0]
        assert report.counts["images_new"] == 1
        assert report.counts["images_failed"] == 1
        got = {i["appdb_id"]: i for i in site.images()}
        assert len(got) == 1  # what fully arrived is in Glance
        assert report.counts["bytes_downloaded"] == imgs[next(iter(got))].stat().st_size
        for ident, i in got.items():
            assert i["status"] == "active"
            assert i["os_hash_value"] == hashlib.sha512(imgs[ident].read_bytes()).hexdigest()
        complete = {p.name for p in site.image_dir.rglob("*.orig")}  # verified, kept
        # the operator grows the volume; the next run completes (resuming what was cut)
        resize_tmpfs(site.image_dir, 128)
        report2 = site.run()
        assert report2.errors == [], report2.errors
        assert report2.counts["images_new"] == 2 - len(got)
        assert report2.counts["images_unchanged"] == len(got)
        got2 = {i["appdb_id"]: i for i in site.images()}
        assert set(got2) == set(imgs)
        for ident, i in got2.items():
            assert i["status"] == "active"
            assert i["os_hash_value"] == hashlib.sha512(imgs[ident].read_bytes()).hexdigest()
        assert not list(site.image_dir.rglob("*.part"))
        stems = {hashlib.sha512(p.read_bytes()).hexdigest()[:32]: p for p in imgs.values()}
        for name in complete:  # a verified download is never fetched again
            assert site.downloads(stems[name.removesuffix(".orig")].name) == 1, name
