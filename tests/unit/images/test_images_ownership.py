"""Managed means owned by the appliance's project: look-alikes in other projects are never touched."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from images_world import PROJECT, World

from fedcloud_images.errors import GlanceSyncError
from fedcloud_images.glance import GlanceImages

pytestmark = pytest.mark.unit

ATTACKER = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"


@pytest.fixture
def world(tmp_path: Path, ipki: Any, server: Any, fake_glance: Any) -> World:
    return World(tmp_path, ipki, server, fake_glance)


def _spoof(w: World, ident: str, image_hash: str, *, status: str = "active") -> str:
    """An image another project's user made to look like the replicator's."""
    img = {
        "id": f"spoof-{ident}",
        "name": "totally official",
        "status": status,
        "visibility": "shared",
        "owner": ATTACKER,
        "created_at": "t0000",  # older than anything the sync makes
        "tags": ["fedcloud-appliance"],
        "image_list": f"list-{w.ns}",
        "appdb_id": ident,
        "image_hash": image_hash,
        "disk_format": "qcow2",
    }
    w.glance.store[img["id"]] = img
    w.glance.data[img["id"]] = b"malware"
    return img["id"]


def _touched(w: World, image_id: str) -> list[tuple[Any, ...]]:
    return [c for c in w.glance.writes if image_id in c]


def test_a_spoofed_managed_image_is_ignored_and_the_real_one_uploaded(world: World) -> None:
    path = world.add_image("img-a")
    world.add_image("img-b")
    world.publish("1")
    digest = "sha512:" + hashlib.sha512(path.read_bytes()).hexdigest()
    spoof = _spoof(world, "img-a", digest)
    stale = _spoof(world, "img-gone", "sha512:" + "0" * 128)  # not in the list: would be "dropped"
    before = {i: dict(world.glance.store[i]) for i in (spoof, stale)}

    r = world.run()

    assert r.errors == []
    assert r.counts["images_new"] == 2
    assert r.counts["images_foreign"] == 2
    assert r.counts.get("images_removed", 0) == 0
    for i in (spoof, stale):
        assert _touched(world, i) == [], i  # not shared, updated, deactivated nor deleted
        assert world.glance.store[i] == before[i]
        assert i not in world.glance.members
        assert any(i in w and ATTACKER in w for w in r.warnings), r.warnings
    assert {d["id"]: d["owner"] for d in r.details["foreign_images"]} == {
        spoof: ATTACKER,
        stale: ATTACKER,
    }
    ours = [
        img
        for img in world.glance.store.values()
        if img["appdb_id"] == "img-a" and img["id"] != spoof
    ]
    (real,) = ours
    assert real["owner"] == world.glance.project_id
    assert world.glance.data[real["id"]] == path.read_bytes()
    assert world.glance.members[real["id"]] == {
        PROJECT: {"member_id": PROJECT, "status": "accepted"}
    }

    # the next run leaves both alone as well, and keeps the real one
    world.glance.writes.clear()
    r = world.run()
    assert r.counts["images_unchanged"] == 2
    assert world.glance.writes == []


def test_a_deactivated_spoof_is_not_reactivated(world: World) -> None:
    path = world.add_image("img-a")
    world.publish("1")
    digest = "sha512:" + hashlib.sha512(path.read_bytes()).hexdigest()
    spoof = _spoof(world, "img-a", digest, status="deactivated")
    world.run()
    assert world.glance.store[spoof]["status"] == "deactivated"
    assert _touched(world, spoof) == []


def test_the_owner_is_asked_once_and_must_be_known(fake_glance: Any) -> None:
    asked: list[int] = []

    def owner() -> str:
        asked.append(1)
        return fake_glance.project_id

    for n in (1, 2):
        fake_glance.store[f"i{n}"] = {"id": f"i{n}", "tags": ["t"], "image_list": "x", "owner": "o"}
    g = GlanceImages(fake_glance, tag="t", owner=owner)
    assert asked == []  # constructing does no I/O
    assert len(g.scan("x").foreign) == 2
    assert g.managed("x") == []
    assert asked == [1]
    with pytest.raises(GlanceSyncError, match="not scoped to a project"):
        GlanceImages(fake_glance, tag="t", owner=lambda: None).owner  # noqa: B018
