"""The OCI registry source against a registry-like 127.0.0.1 server (Harbor v2 + distribution + tokens)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedcloud_core.config.images import RegistrySource
from fedcloud_images.cache.download import Downloader
from fedcloud_images.errors import ListRejected
from fedcloud_images.sources.http import make_session
from fedcloud_images.sources.oci_registry import RegistrySourceClient
from support.imageserver import RegistryServer

pytestmark = pytest.mark.contract

ANN = {
    "org.openstack.glance.os_distro": "AlmaLinux",
    "org.openstack.glance.os_version": "9",
    "org.openstack.glance.architecture": "x86_64",
    "org.openstack.glance.disk_format": "QCOW2",
    "org.openstack.glance.container_format": "bare",
    "org.openstack.glance.os_type": "linux",
    "eu.egi.cloud.tag": "9.4",
    "eu.egi.cloud.image.title": "AlmaLinux 9",
}


@pytest.fixture
def reg() -> Iterator[RegistryServer]:
    with RegistryServer(page_size_cap=1) as r:  # one item per page: pagination is exercised
        yield r


def _source(reg: RegistryServer, **kw: Any) -> RegistrySourceClient:
    sub = RegistrySource(name="reg", url=reg.base, project="egi_vm_images", vo="v", **kw)
    return RegistrySourceClient(sub, http=make_session(retries=0), timeout=(2, 2))


def test_listing_digests_and_download(reg: RegistryServer, tmp_path: Path) -> None:
    disk = b"QFI\xfb" + b"d" * 5000
    art = reg.add_artifact("egi_vm_images", "almalinux", ["9.4", "latest"], disk, ANN)
    reg.add_artifact("egi_vm_images", "tools/ubuntu", ["22.04"], b"other-disk", {})
    il = _source(reg).fetch()
    host = reg.base.removeprefix("http://")
    ids = sorted(e.identifier for e in il.images)
    assert ids == [
        f"{host}/egi_vm_images/almalinux:9.4",
        f"{host}/egi_vm_images/almalinux:latest",
        f"{host}/egi_vm_images/tools/ubuntu:22.04",
    ]
    e = next(e for e in il.images if e.identifier.endswith(":9.4"))
    assert (e.digest_algo, e.digest, e.size) == (
        "sha256",
        hashlib.sha256(disk).hexdigest(),
        len(disk),
    )
    assert (e.title, e.os_distro, e.os_version, e.architecture, e.format_hint) == (
        "AlmaLinux 9",
        "almalinux",
        "9",
        "x86_64",
        "qcow2",
    )
    assert e.mpuri == f"{host}/egi_vm_images/almalinux:9.4-{art.digest}"
    assert e.attributes["eu.egi.cloud.image_ref"] == e.mpuri
    assert e.attributes["org.openstack.glance.os_type"] == "linux"
    # the token dance happened; the blob download carries the bearer token and is digest-verified
    assert any(r.path.startswith("/service/token") for r in reg.requests)
    got = Downloader(make_session(retries=0), read_timeout=2, retries=0).fetch(e, tmp_path / "blob")
    assert got.path.read_bytes() == disk


def test_filters_by_repository_and_tag(reg: RegistryServer) -> None:
    reg.add_artifact("egi_vm_images", "almalinux", ["9.4", "latest"], b"a", ANN)
    reg.add_artifact("egi_vm_images", "ubuntu", ["22.04"], b"b", {})
    il = _source(reg, repositories=["almalinux"], tags=["latest"]).fetch()
    assert [e.identifier.rsplit("/", 1)[1] for e in il.images] == ["almalinux:latest"]


def test_manifest_not_matching_its_digest_is_set_aside(reg: RegistryServer) -> None:
    bad = reg.add_artifact("egi_vm_images", "bad", ["1"], b"x", {})
    reg.add_artifact("egi_vm_images", "good", ["1"], b"y", {})
    reg.bad_manifest.add(bad.digest)
    il = _source(reg).fetch()
    assert [e.identifier.rsplit("/", 1)[1] for e in il.images] == ["good:1"]
    (problem,) = il.invalid.values()
    assert "does not match its digest" in problem


def test_unknown_project_rejects_the_source(reg: RegistryServer) -> None:
    sub = RegistrySource(name="reg", url=reg.base, project="nope", vo="v")
    with pytest.raises(ListRejected, match="HTTP 404"):
        RegistrySourceClient(sub, http=make_session(retries=0), timeout=(2, 2)).fetch()
