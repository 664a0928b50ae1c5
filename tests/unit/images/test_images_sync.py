"""The sync logic against a fake Glance, with real signed lists served from 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from images_world import PROJECT, World

from fedcloud_images.cache import convert

pytestmark = pytest.mark.unit


@pytest.fixture
def world(tmp_path: Path, ipki: Any, server: Any, fake_glance: Any) -> World:
    return World(tmp_path, ipki, server, fake_glance)


def _managed(w: World) -> dict[str, dict[str, Any]]:
    return {img["appdb_id"]: img for img in w.glance.store.values()}


def test_first_run_creates_images_with_the_spec_properties(world: World) -> None:
    world.add_image("img-a")
    world.add_image(
        "img-b", format="RAW", fmt="raw"
    )  # announced upper case, raw -> converted to qcow2
    world.images["img-b"]["extra"]["hv:size"] = "1048576"  # sizes as strings are fine
    world.publish()
    r = world.run()
    assert r.errors == []
    assert r.counts["images_new"] == 2
    imgs = _managed(world)
    a = imgs["img-a"]
    assert a["name"] == "Image img-a"
    assert a["disk_format"] == "qcow2"
    assert imgs["img-b"]["disk_format"] == "qcow2"
    assert a["container_format"] == "bare"
    assert a["visibility"] == "shared"
    assert a["tags"] == ["fedcloud-appliance"]
    assert a["min_ram"] == 512
    assert a["min_disk"] == 1
    assert a["image_list"] == f"list-{world.ns}"
    assert a["appdb_id"] == "img-a"
    assert a["os_distro"] == "ubuntu"
    assert a["os_version"] == "22.04"
    assert a["architecture"] == "x86_64"
    assert a["vmcatcher_event_dc_title"] == "Image img-a"
    assert a["vmcatcher_event_dc_description"] == "test image img-a"
    assert a["vmcatcher_event_ad_mpuri"] == "https://appdb.example/store/vo/image/img-a:1/"
    assert a["image_hash"].startswith("sha512:")
    assert len(a["image_hash"]) == 7 + 128
    attrs = json.loads(a["APPLIANCE_ATTRIBUTES"])
    assert attrs["dc:identifier"] == "img-a"
    assert attrs["hv:format"] == "QCOW2"
    assert world.glance.members[a["id"]] == {PROJECT: {"member_id": PROJECT, "status": "accepted"}}


def test_unchanged_second_run_downloads_converts_and_writes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.add_image("img-a")
    world.publish()
    assert world.run().counts["images_new"] == 1
    downloads = len(world.server.hits(f"/{world.ns}/img-a-img-a.qcow2"))
    before = world.cache_snapshot()
    world.glance.writes.clear()

    def no_prepare(*a: Any, **k: Any) -> Any:
        raise AssertionError("conversion/hashing must not run on an unchanged list")

    monkeypatch.setattr(convert, "prepare", no_prepare)
    r = world.run()
    assert r.errors == []
    assert r.counts["images_unchanged"] == 1
    assert r.counts["bytes_downloaded"] == 0
    assert world.glance.writes == []
    assert len(world.server.hits(f"/{world.ns}/img-a-img-a.qcow2")) == downloads
    after = world.cache_snapshot()
    assert {k: v for k, v in after.items() if k != "state.sqlite"} == {
        k: v for k, v in before.items() if k != "state.sqlite"
    }


def test_changed_image_is_replaced_and_the_old_one_deleted(world: World) -> None:
    world.add_image("img-a", seed="v1")
    world.publish("20260101000000")
    world.run()
    old = _managed(world)["img-a"]
    world.add_image("img-a", seed="v2")
    world.publish("20260102000000")
    r = world.run()
    assert r.counts["images_updated"] == 1
    assert r.counts["images_removed"] == 1
    new = _managed(world)["img-a"]
    assert new["id"] != old["id"]
    assert old["id"] not in world.glance.store
    assert new["image_hash"] != old["image_hash"]
    # the cache keeps only the current digest
    files = sorted(p.name for p in (world.cache / f"list-{world.ns}" / "img-a").iterdir())
    assert all(f.startswith(new["image_hash"][7:39]) for f in files), files


def test_dropped_image_is_deleted_or_deactivated_when_in_use(world: World) -> None:
    for i in ("img-a", "img-b", "img-c"):
        world.add_image(i)
    world.publish("1")
    world.run()
    ids = {k: v["id"] for k, v in _managed(world).items()}
    world.in_use.add(ids["img-c"])
    del world.images["img-b"], world.images["img-c"]
    world.publish("2")
    r = world.run()
    assert r.counts["images_removed"] == 1
    assert r.counts["images_deactivated"] == 1
    assert ids["img-b"] not in world.glance.store
    c = world.glance.store[ids["img-c"]]
    assert (c["status"], c["visibility"]) == ("deactivated", "private")
    assert not (world.cache / f"list-{world.ns}" / "img-b").exists()
    world.glance.writes.clear()
    world.run()  # nothing more to do while it is still in use
    assert world.glance.writes == []


@pytest.mark.parametrize(
    "breakage",
    ["tampered", "wrong-endorser", "untrusted-ca", "expired", "downgraded", "404", "not-smime"],
)
def test_rejected_list_changes_nothing(world: World, breakage: str) -> None:
    world.add_image("img-a")
    world.add_image("img-b")
    world.publish("20260105000000")
    world.run()
    glance_before = json.dumps(world.glance.store, sort_keys=True)
    cache_before = world.cache_snapshot()
    del world.images["img-b"]  # the bad list would drop img-b and add img-c
    world.add_image("img-c")
    kw: dict[str, Any] = {"version": "20260106000000"}
    if breakage == "tampered":
        kw["tamper"] = True
    elif breakage == "wrong-endorser":
        kw["signer"] = world.ipki.wrong
    elif breakage == "untrusted-ca":
        kw["signer"] = world.ipki.untrusted
    elif breakage == "expired":
        kw["expires"] = datetime.now(UTC) - timedelta(days=1)
    elif breakage == "downgraded":
        kw["version"] = "20260104000000"
    world.publish(**kw)
    if breakage == "404":
        world.server.put(f"/{world.ns}/image.list", b"", status=404)
    elif breakage == "not-smime":
        world.server.put(f"/{world.ns}/image.list", b'{"hv:imagelist": {}}')
    world.glance.writes.clear()
    r = world.run()
    assert r.counts["lists_rejected"] == 1
    reason = r.details["rejected"][f"list-{world.ns}"]
    expected = {
        "tampered": "does not match its signature",
        "wrong-endorser": "not by the configured endorser",
        "untrusted-ca": "does not chain to a trusted CA",
        "expired": "expired on",
        "downgraded": "lower than the last accepted",
        "404": "HTTP 404",
        "not-smime": "not an S/MIME message",
    }[breakage]
    assert expected in reason
    assert world.glance.writes == []
    assert json.dumps(world.glance.store, sort_keys=True) == glance_before
    assert world.cache_snapshot() == cache_before
    assert r.status.value == "partial"


def test_list_declaring_another_endorser_is_rejected(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedcloud_images import imagelist

    world.add_image("img-a")
    real = imagelist.build_list

    def lying(*a: Any, **k: Any) -> Any:
        doc = real(*a, **k)
        doc["hv:imagelist"]["hv:endorser"]["hv:x509"]["hv:dn"] = "/C=EU/O=Elsewhere/CN=other"
        return doc

    monkeypatch.setattr(imagelist, "build_list", lying)
    world.publish()
    r = world.run()
    assert (
        "declares endorser /C=EU/O=Elsewhere/CN=other" in r.details["rejected"][f"list-{world.ns}"]
    )
    assert world.glance.writes == []


def test_corrupt_image_is_retried_then_reported_and_the_rest_goes_on(world: World) -> None:
    world.add_image("img-a")
    bad = world.add_image("img-bad")
    world.server.put(
        f"/{world.ns}/{bad.name}", bad.read_bytes()[:-1] + b"\x01"
    )  # same size, other bytes
    world.publish()
    r = world.run()
    assert r.counts["images_new"] == 1
    assert r.counts["images_failed"] == 1
    assert any("img-bad" in e and "sha512 mismatch" in e for e in r.errors)
    assert len(world.server.hits(f"/{world.ns}/{bad.name}")) == 2  # retries=1: two attempts
    assert set(_managed(world)) == {"img-a"}
    assert not list((world.cache / f"list-{world.ns}" / "img-bad").glob("*.part"))


def test_failed_download_of_a_new_version_keeps_the_old_image(world: World) -> None:
    world.add_image("img-a", seed="v1")
    world.publish("1")
    world.run()
    old = _managed(world)["img-a"]["id"]
    path = world.add_image("img-a", seed="v2")
    world.server.put(f"/{world.ns}/{path.name}", b"", status=404)
    world.publish("2")
    r = world.run()
    assert r.counts["images_failed"] == 1
    assert "previous version stays" in r.errors[0]
    assert old in world.glance.store
    assert world.glance.store[old]["status"] == "active"


def test_allow_list_and_prefixes(world: World) -> None:
    world.add_image("img-a")
    world.add_image("img-b")
    world.sub_kw = {"images": ["img-b", "img-missing"], "prefix": "[vo] ", "visibility": "private"}
    world.cfg_kw["name_prefix"] = "EGI "
    world.publish()
    r = world.run()
    imgs = _managed(world)
    assert set(imgs) == {"img-b"}
    assert imgs["img-b"]["name"] == "EGI [vo] Image img-b"
    assert imgs["img-b"]["visibility"] == "private"
    assert world.glance.members == {}
    assert any("img-missing" in w for w in r.warnings)


def test_metadata_change_without_new_bytes_updates_in_place(world: World) -> None:
    world.add_image("img-a")
    world.publish("1")
    world.run()
    img_id = _managed(world)["img-a"]["id"]
    world.images["img-a"]["title"] = "Renamed"
    world.publish("2")
    world.glance.writes.clear()
    r = world.run()
    assert r.counts["images_updated"] == 1
    assert [w[0] for w in world.glance.writes] == ["update"]
    assert world.glance.store[img_id]["name"] == "Renamed"


def test_dry_run_writes_nothing(world: World) -> None:
    world.add_image("img-a")
    world.publish()
    r = world.run(dry_run=True)
    assert r.counts["images_new"] == 1
    assert world.glance.writes == []
    assert world.server.hits(f"/{world.ns}/img-a-img-a.qcow2") == []


def test_glance_checksum_mismatch_is_reported_and_the_image_removed(world: World) -> None:
    world.add_image("img-a")
    world.publish()
    world.glance.corrupt_upload = True
    r = world.run()
    assert r.counts["images_failed"] == 1
    assert "differs from the uploaded file" in r.errors[0] or "bytes" in r.errors[0]
    assert world.glance.store == {}


def test_appdb_token_is_sent_as_basic_auth_and_never_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.add_image("img-a")
    body = world.publish()
    world.server.put(f"/{world.ns}/image.list", body, auth=("s3cr3t-token", "x-oauth-basic"))
    world.sub_kw = {"token": "s3cr3t-token"}
    with caplog.at_level("DEBUG"):
        r = world.run()
    assert r.errors == []
    assert "s3cr3t-token" not in caplog.text
    assert "s3cr3t-token" not in json.dumps(r.to_dict())
