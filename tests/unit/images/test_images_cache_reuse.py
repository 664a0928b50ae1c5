"""A cached original is reused only after its digest is checked again (issue 18 #8)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from images_world import World

pytestmark = pytest.mark.unit


@pytest.fixture
def world(tmp_path: Path, ipki: Any, server: Any, fake_glance: Any) -> World:
    return World(tmp_path, ipki, server, fake_glance)


def _first_run_then_lose_the_glance_image(world: World) -> tuple[Path, bytes, str]:
    disk = world.add_image("img-a")
    world.publish()
    assert world.run().counts["images_new"] == 1
    world.glance.store.clear()  # the upload has to be done again (lost, or failed last time)
    world.glance.data.clear()
    world.age_glance_listing()  # a deletion shows at the next complete listing of Glance
    (orig,) = (world.cache / f"list-{world.ns}" / "img-a").glob("*.orig")
    return orig, disk.read_bytes(), f"/{world.ns}/{disk.name}"


@pytest.mark.parametrize("state_row", ["kept", "lost"])
def test_cached_original_with_wrong_bytes_is_downloaded_again(world: World, state_row: str) -> None:
    orig, good, url_path = _first_run_then_lose_the_glance_image(world)
    bad = bytearray(orig.read_bytes())
    bad[4096] ^= 0xFF  # same name, same size, other bytes (a torn write, a tampered cache)
    orig.write_bytes(bytes(bad))
    if state_row == "lost":  # a crash between the rename and saving the state
        with sqlite3.connect(world.cache / "state.sqlite") as db:
            db.execute("DELETE FROM images")
    hits = len(world.server.hits(url_path))
    r = world.run()
    assert r.errors == []
    assert r.counts["images_new"] == 1
    assert len(world.server.hits(url_path)) == hits + 1
    (uploaded,) = world.glance.data.values()
    assert uploaded == good
    assert orig.read_bytes() == good


def test_cached_original_that_verifies_is_reused(world: World) -> None:
    _orig, good, url_path = _first_run_then_lose_the_glance_image(world)
    hits = len(world.server.hits(url_path))
    r = world.run()
    assert r.errors == []
    assert r.counts["images_new"] == 1
    assert r.counts["bytes_downloaded"] == 0
    assert len(world.server.hits(url_path)) == hits
    (uploaded,) = world.glance.data.values()
    assert uploaded == good
