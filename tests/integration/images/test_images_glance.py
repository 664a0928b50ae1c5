"""images sync against the real local Glance of the testbed, lists and images from 127.0.0.1.

Runs the job the way the CLI does (config -> wiring in jobs.py -> execute), with the
OpenStack session wrapped to count every Glance API call.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedcloud_appliance import catalog
from fedcloud_core.config import parse_config
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.openstack import OpenStackClients
from fedcloud_core.report import RunReport
from fedcloud_images.jobs import ImagesDeps
from support.images_pki import (
    ImagesPki,
    image_desc,
    make_disk,
    make_images_pki,
    make_ova,
    signed_list,
)
from support.imageserver import ImageServer, RegistryServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The 'interface' argument is deprecated:UserWarning"),
]

STATE = Path("/var/tmp/fedcloud-testbed")
VO = "fedcloud.egi.eu"
# what Glance itself puts on every image; everything else must be exactly the spec's properties
GLANCE_BASE = {
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "owner",
    "checksum",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "disk_format",
    "container_format",
    "created_at",
    "updated_at",
    "tags",
    "file",
    "schema",
    "os_hash_algo",
    "os_hash_value",
    "stores",
    "direct_url",
    "locations",
}
SPEC = {
    "vmcatcher_event_ad_mpuri",
    "vmcatcher_event_dc_description",
    "vmcatcher_event_dc_title",
    "APPLIANCE_ATTRIBUTES",
    "os_distro",
    "os_version",
    "architecture",
    "appdb_id",
    "image_hash",
    "image_list",
}


@pytest.fixture(scope="module")
def ipki(tmp_path_factory: pytest.TempPathFactory) -> ImagesPki:
    return make_images_pki(tmp_path_factory.mktemp("images-pki"))


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    with ImageServer() as s:
        yield s


class Counter:
    """Counts the requests the keystoneauth session sends to Glance."""

    def __init__(self, clients: OpenStackClients):
        self.calls: list[tuple[str, str]] = []
        self.glance_url = clients.endpoint("image").rstrip("/")
        real = clients.session.request

        def request(url: str, method: str, *a: Any, **kw: Any) -> Any:
            full = url if url.startswith("http") else ""
            endpoint = kw.get("endpoint_filter") or {}
            if full.startswith(self.glance_url) or endpoint.get("service_type") == "image":
                self.calls.append((method.upper(), url))
            return real(url, method, *a, **kw)

        clients.session.request = request  # type: ignore[method-assign]

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in ("POST", "PUT", "PATCH", "DELETE")]


class Site:
    def __init__(
        self, seed: dict[str, Any], tmp: Path, ipki: ImagesPki, server: ImageServer, **images: Any
    ):
        self.ns = uuid.uuid4().hex[:8]
        self.tag = f"fedcloud-test-{self.ns}"
        self.projects = sorted(p for p, vo in seed["vo_map"].items() if vo == VO)
        self.tmp, self.ipki, self.server = tmp, ipki, server
        self.seed = seed
        self.images_cfg = images
        self.clients: OpenStackClients | None = None

    def config(self) -> Any:
        doc = {
            "site": {"name": "TEST-SITE"},
            "openstack": {
                "cloud": "testbed-admin",
                "clouds_yaml": self.seed.get("clouds_yaml", str(STATE / "clouds.yaml")),
            },
            "vos": {VO: {"projects": self.projects}},
            "paths": {"state_dir": str(self.tmp / "state"), "image_dir": str(self.tmp / "cache")},
            "images": {
                "tag": self.tag,
                "capath": str(self.ipki.capath),
                "retries": 1,
                "backoff": 0,
                "min_free_mb": 1,
                "read_timeout": 2,
                "connect_timeout": 2,
                **self.images_cfg,
            },
        }
        return parse_config(json.dumps(doc), source="test", environ={})

    def run(self) -> tuple[RunReport, Counter]:
        cfg = self.config()
        clients = OpenStackClients.from_config(cfg.openstack)
        self.clients = clients
        counter = Counter(clients)
        ctx = JobContext(config=cfg, deps=ImagesDeps(clients=clients))
        report = execute(catalog.job("images sync"), ctx)
        return report, counter

    def glance_images(self) -> dict[str, dict[str, Any]]:
        assert self.clients
        return {
            i["appdb_id"]: dict(i)
            for i in self.clients.glance.images.list(
                filters={"tag": [self.tag], "visibility": "all"}
            )
        }

    def members(self, image_id: str) -> dict[str, str]:
        assert self.clients
        return {
            m["member_id"]: m["status"] for m in self.clients.glance.image_members.list(image_id)
        }

    def cleanup(self) -> None:
        clients = OpenStackClients.from_config(self.config().openstack)
        for i in clients.glance.images.list(filters={"tag": [self.tag], "visibility": "all"}):
            clients.glance.images.delete(i["id"])


@pytest.fixture
def site(
    seed: dict[str, Any], tmp_path: Path, ipki: ImagesPki, server: ImageServer
) -> Iterator[Site]:
    s = Site(seed, tmp_path, ipki, server)
    yield s
    s.cleanup()


def _publish(site: Site, images: list[dict[str, Any]], **kw: Any) -> None:
    site.server.put(f"/{site.ns}/image.list", signed_list(site.ipki.endorser, images, **kw))


def _subscription(site: Site, **kw: Any) -> dict[str, Any]:
    return {
        "name": f"list-{site.ns}",
        "url": site.server.url(f"/{site.ns}/image.list"),
        "vo": VO,
        "endorser_dn": site.ipki.endorser.dn,
        "endorser_ca": site.ipki.endorser_ca,
        **kw,
    }


def test_full_cycle_against_glance(site: Site) -> None:
    files = site.tmp / "files"
    files.mkdir()
    base = site.server.url(f"/{site.ns}/")
    qcow = make_disk(files / "a.qcow2", seed=f"a-{site.ns}")
    raw = make_disk(files / "b.img", fmt="raw", seed=f"b-{site.ns}")
    ova = make_ova(files / "c.ova", seed=f"c-{site.ns}")
    for p in (qcow, raw, ova):
        site.server.put(f"/{site.ns}/{p.name}", p.read_bytes())
    imgs = [
        image_desc("img-a", qcow, base),
        image_desc("img-b", raw, base, format="RAW"),
        image_desc("img-c", ova, base, format="OVA"),
    ]
    imgs[1]["extra"]["hv:core_minimum"] = "1"
    _publish(site, imgs, version="20260101000000")
    site.images_cfg["subscriptions"] = [_subscription(site, prefix="[test] ")]

    # 1. first run: three images, exactly the spec's properties, shared and accepted by the VO projects
    report, _ = site.run()
    assert report.errors == [], report.errors
    assert report.counts["images_new"] == 3
    got = site.glance_images()
    assert set(got) == {"img-a", "img-b", "img-c"}
    for ident, img in got.items():
        assert set(img) - GLANCE_BASE == SPEC, ident
        assert img["name"] == f"[test] Image {ident}"
        assert img["disk_format"] == "qcow2"
        assert img["container_format"] == "bare"
        assert img["visibility"] == "shared"
        assert img["status"] == "active"
        assert img["tags"] == [site.tag]
        assert img["min_ram"] == 512
        assert img["image_list"] == f"list-{site.ns}"
        assert img["os_distro"] == "ubuntu"
        assert json.loads(img["APPLIANCE_ATTRIBUTES"])["dc:identifier"] == ident
        assert site.members(img["id"]) == dict.fromkeys(site.projects, "accepted")
    digest = hashlib.sha512(qcow.read_bytes()).hexdigest()
    assert got["img-a"]["image_hash"] == f"sha512:{digest}"
    assert got["img-a"]["os_hash_value"] == digest  # uploaded as is (already qcow2)

    # 2. unchanged: zero Glance writes, no download
    served = len(site.server.requests)
    report, counter = site.run()
    assert report.errors == []
    assert report.counts["images_unchanged"] == 3
    assert counter.writes == []
    assert counter.calls, "the run must have read Glance"
    assert len(site.server.requests) == served + 1  # only the list itself
    lists = [u for m, u in counter.calls if m == "GET" and "/images?" in u]
    assert len(lists) == 1, lists
    assert "updated_at=gte" in lists[0], lists  # only what changed

    # 2b. an admin renames one by hand: Glance moves its updated_at, the listing of
    # changes returns it, and the run puts the name back
    assert site.clients
    site.clients.glance.images.update(got["img-b"]["id"], name="renamed by hand")
    report, counter = site.run()
    assert report.errors == [], report.errors
    assert (report.counts["images_updated"], report.counts["images_unchanged"]) == (1, 2)
    assert site.glance_images()["img-b"]["name"] == "[test] Image img-b"
    got = site.glance_images()

    # 3. a changed image is replaced, a dropped one deleted
    qcow2 = make_disk(files / "a2.qcow2", seed=f"a2-{site.ns}")
    site.server.put(f"/{site.ns}/{qcow2.name}", qcow2.read_bytes())
    _publish(site, [image_desc("img-a", qcow2, base), imgs[2]], version="20260102000000")
    report, counter = site.run()
    assert report.errors == [], report.errors
    assert report.counts["images_updated"] == 1
    assert report.counts["images_removed"] == 2  # img-b dropped, old img-a superseded
    after = site.glance_images()
    assert set(after) == {"img-a", "img-c"}
    assert after["img-a"]["id"] != got["img-a"]["id"]
    assert after["img-c"]["id"] == got["img-c"]["id"]
    assert counter.writes

    # 4. broken lists change nothing: tampered, downgraded, 404
    for broken in ("tampered", "downgraded", "404"):
        if broken == "tampered":
            _publish(site, [imgs[2]], version="20260103000000", tamper=True)
        elif broken == "downgraded":
            _publish(site, [imgs[2]], version="20260101000001")
        else:
            site.server.put(f"/{site.ns}/image.list", b"", status=404)
        report, counter = site.run()
        assert report.counts["lists_rejected"] == 1, broken
        assert counter.writes == [], broken
        assert site.glance_images() == after, broken
        assert report.exit_code == 3


def test_registry_source_into_glance(site: Site) -> None:
    with RegistryServer() as reg:
        disk = make_disk(site.tmp / "reg.qcow2", seed=f"reg-{site.ns}").read_bytes()
        reg.add_artifact(
            "egi_vm_images",
            "ubuntu",
            ["22.04"],
            disk,
            {
                "org.openstack.glance.os_distro": "Ubuntu",
                "org.openstack.glance.os_version": "22.04",
                "org.openstack.glance.architecture": "x86_64",
                "org.openstack.glance.disk_format": "qcow2",
                "org.openstack.glance.container_format": "bare",
                "eu.egi.cloud.tag": "22.04",
                "eu.egi.cloud.image.title": "Ubuntu 22.04",
            },
        )
        site.images_cfg["registries"] = [
            {
                "name": f"reg-{site.ns}",
                "url": reg.base,
                "project": "egi_vm_images",
                "vo": VO,
                "visibility": "private",
            }
        ]
        report, _ = site.run()
        assert report.errors == [], report.errors
        got = site.glance_images()
        host = reg.base.removeprefix("http://")
        img = got[f"{host}/egi_vm_images/ubuntu:22.04"]
        assert img["name"] == "Ubuntu 22.04"
        assert img["visibility"] == "private"
        assert img["os_distro"] == "ubuntu"
        assert img["image_hash"] == "sha256:" + hashlib.sha256(disk).hexdigest()
        assert img["vmcatcher_event_ad_mpuri"].startswith(
            f"{host}/egi_vm_images/ubuntu:22.04-sha256:"
        )
        attrs = json.loads(img["APPLIANCE_ATTRIBUTES"])
        assert attrs["eu.egi.cloud.image_ref"] == img["vmcatcher_event_ad_mpuri"]
        report, counter = site.run()
        assert counter.writes == []
        assert report.counts["images_unchanged"] == 1


def test_an_image_spoofed_by_another_project_is_never_managed(
    site: Site, testbed: Any, seed: dict[str, Any]
) -> None:
    """A project member pre-creates an image with the replicator's tag and properties (the right
    image_hash included): the sync must not share, rename or retire it, and must upload its own."""
    import io

    files = site.tmp / "files"
    files.mkdir()
    disk = make_disk(files / "a.qcow2", seed=f"spoof-{site.ns}")
    site.server.put(f"/{site.ns}/{disk.name}", disk.read_bytes())
    base = site.server.url(f"/{site.ns}/")
    digest = "sha512:" + hashlib.sha512(disk.read_bytes()).hexdigest()
    site.images_cfg["subscriptions"] = [_subscription(site)]

    attacker = seed["users"]["alice"]
    sess = testbed.session("alice", attacker["password"], "unmapped")
    evil = testbed.glance(sess)
    spoof = evil.images.create(
        name="official looking",
        disk_format="qcow2",
        container_format="bare",
        visibility="shared",
        tags=[site.tag],
        image_list=f"list-{site.ns}",
        appdb_id="img-a",
        image_hash=digest,
    )
    owner = seed["projects"]["unmapped"]["id"]
    try:
        bad = make_disk(files / "evil.qcow2", seed=f"evil-{site.ns}").read_bytes()
        evil.images.upload(spoof["id"], io.BytesIO(bad))
        before = dict(evil.images.get(spoof["id"]))
        assert before["owner"] == owner
        assert before["status"] == "active"

        # the list names img-a, and a second run drops it: the spoof is never touched
        _publish(site, [image_desc("img-a", disk, base)], version="20260101000000")
        report, _ = site.run()
        assert report.errors == [], report.errors
        assert report.counts["images_new"] == 1
        assert report.counts["images_foreign"] == 1
        assert any(spoof["id"] in w and owner in w for w in report.warnings), report.warnings
        assert report.details["foreign_images"] == [
            {
                "source": f"list-{site.ns}",
                "id": spoof["id"],
                "owner": owner,
                "appdb_id": "img-a",
            }
        ]
        assert site.clients
        mine = [
            dict(i)
            for i in site.clients.glance.images.list(
                filters={"tag": [site.tag], "visibility": "all"}
            )
            if i["id"] != spoof["id"]
        ]
        (real,) = mine
        assert real["appdb_id"] == "img-a"
        assert real["owner"] == site.clients.session.get_project_id()
        assert real["owner"] != owner
        assert real["os_hash_value"] == digest.removeprefix("sha512:")
        assert site.members(real["id"]) == dict.fromkeys(site.projects, "accepted")
        after = dict(evil.images.get(spoof["id"]))
        assert after == before  # not renamed, re-tagged, deactivated
        assert list(evil.image_members.list(spoof["id"])) == []  # not shared with the VO

        _publish(site, [], version="20260102000000")
        report, _ = site.run()
        assert report.counts["images_foreign"] == 1
        assert real["id"] not in {
            i["id"]
            for i in site.clients.glance.images.list(
                filters={"tag": [site.tag], "visibility": "all"}
            )
        }
        assert (
            dict(evil.images.get(spoof["id"])) == before
        )  # dropped from the list: still untouched
    finally:
        evil.images.delete(spoof["id"])
