"""The image cache's disk full (issue 18, fault tier finding): parallel downloads share the free
space, a full disk while writing is a clean per-image error, a state database that cannot be
written stops nothing, and the bytes of failed downloads are counted.

The "disk" is a fake with a capacity: its free space is the capacity less the files in the
cache, and a write to a cache file that would pass the capacity fails with ENOSPC.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from pathlib import Path
from typing import Any

import images_world
import pytest
from images_world import World

from fedcloud_core.report import RunStatus
from fedcloud_images.cache import download
from fedcloud_images.cache.space import SpaceLedger
from fedcloud_images.cache.state import ImageState, State

pytestmark = pytest.mark.unit


class FakeDisk:
    def __init__(self, root: Path, capacity: int, *, honest: bool = True):
        self.root, self.capacity, self.honest = root, capacity, honest
        self.enospc = 0

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def free(self, where: Path) -> int:
        # a dishonest disk announces plenty (another process fills it meanwhile)
        return self.capacity - self.used() if self.honest else 10**15

    def install(self, monkeypatch: pytest.MonkeyPatch, ledger: SpaceLedger) -> None:
        real_write = os.write
        root = str(self.root)

        def write(fd: int, data: Any) -> int:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.startswith(root) and self.used() + len(data) > self.capacity:
                self.enospc += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr(download.os, "write", write)
        monkeypatch.setattr(
            images_world,
            "Downloader",
            functools.partial(download.Downloader, free_bytes=self.free, ledger=ledger),
        )


@pytest.fixture
def world(tmp_path: Path, ipki: Any, server: Any, fake_glance: Any) -> World:
    return World(tmp_path, ipki, server, fake_glance, concurrency=2)


def _by_ident(w: World) -> dict[str, dict[str, Any]]:
    return {img["appdb_id"]: img for img in w.glance.store.values()}


def _sizes(paths: dict[str, Path]) -> dict[str, int]:
    return {k: p.stat().st_size for k, p in paths.items()}


def test_parallel_downloads_reserve_space_one_refused_cleanly(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each image fits alone, not both: without the ledger both passed the check and one died
    of a raw ENOSPC ("unexpected error"); now the second is refused before it writes."""
    imgs = {i: world.add_image(i) for i in ("img-a", "img-b")}
    world.publish("1")
    size = _sizes(imgs)
    disk = FakeDisk(world.cache, max(size.values()) * 3 // 2 + 64 * 1024)
    ledger = SpaceLedger()
    disk.install(monkeypatch, ledger)

    r = world.run()

    assert r.status is RunStatus.PARTIAL
    assert not any("unexpected error" in e for e in r.errors), r.errors
    assert len(r.errors) == 1, r.errors
    assert "not enough free space in " in r.errors[0], r.errors
    assert "reserved by other downloads" in r.errors[0] or "bytes free" in r.errors[0]
    assert disk.enospc == 0  # refused by the check, never by the disk
    assert r.counts["images_new"] == 1
    assert r.counts["images_failed"] == 1
    done = next(iter(_by_ident(world)))
    assert r.counts["bytes_downloaded"] == size[done]  # the refused one received nothing
    assert not list(world.cache.rglob("*.part"))
    assert ledger.reserved(world.cache) == 0  # every reservation released

    # the operator grows the disk: the next run completes, nothing duplicated
    disk.capacity = 10**12
    r2 = world.run()
    assert r2.errors == [], r2.errors
    assert (r2.counts["images_new"], r2.counts["images_unchanged"]) == (1, 1)
    assert sorted(_by_ident(world)) == ["img-a", "img-b"]
    assert len(world.glance.store) == 2


def test_disk_full_while_writing_is_a_clean_error_and_its_bytes_count(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk said there was room and filled up anyway (another writer): ENOSPC while
    writing fails that image with "not enough free space in <dir>"; the next image and the
    rest of the run go on, and the bytes the failed download received are counted."""
    world.cfg_kw["concurrency"] = 1  # a, then b: b hits the full disk
    imgs = {i: world.add_image(i) for i in ("img-a", "img-b", "img-c")}
    world.publish("1")
    size = _sizes(imgs)
    disk = FakeDisk(world.cache, size["img-a"] + size["img-b"] // 2 + 64 * 1024, honest=False)
    disk.install(monkeypatch, SpaceLedger())

    r = world.run()

    assert not any("unexpected error" in e for e in r.errors), r.errors
    assert disk.enospc >= 1
    failed = [e for e in r.errors if "not enough free space in " in e]
    assert failed, r.errors
    assert len(failed) == len(r.errors), r.errors
    assert os.strerror(errno.ENOSPC) in failed[0]
    assert "img-a" in _by_ident(world)  # what fitted was uploaded
    assert r.counts["images_new"] + r.counts["images_failed"] == 3
    # the failed attempts' bytes are counted (b's body arrived, then its write failed)
    assert r.counts["bytes_downloaded"] > sum(size[i] for i in _by_ident(world) if i in size), (
        r.counts
    )
    assert not list(world.cache.rglob("*.part"))  # nothing half-written stays

    disk.capacity = 10**12
    r2 = world.run()
    assert r2.errors == [], r2.errors
    assert sorted(_by_ident(world)) == ["img-a", "img-b", "img-c"]
    assert len(world.glance.store) == 3


def test_a_state_database_that_cannot_be_written_stops_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state.sqlite on the full volume: writes fail with "database or disk is full". Every
    image is still uploaded and the failures are reported; the next run records the image
    from Glance (by its managed properties and owner) without uploading it again."""
    for i in ("img-a", "img-b", "img-c"):
        world.add_image(i)
    world.publish("1")
    real_save = State.save_image

    def save_image(self: State, st: ImageState) -> None:
        if st.identifier == "img-a":
            raise sqlite3.OperationalError("database or disk is full")
        real_save(self, st)

    def full(self: State, *a: Any, **kw: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(State, "save_image", save_image)
    monkeypatch.setattr(State, "accept_list", full)

    r = world.run()

    assert r.status is RunStatus.PARTIAL
    assert not any("unexpected error" in e for e in r.errors), r.errors
    assert all("disk is full" in e and "state database" in e for e in r.errors), r.errors
    assert any("img-a" in e for e in r.errors)
    assert r.counts["images_new"] == 3  # img-a too: its upload did not need the state
    assert r.counts["state_writes_failed"] >= 2
    first = {k: v["id"] for k, v in _by_ident(world).items()}
    assert sorted(first) == ["img-a", "img-b", "img-c"]

    monkeypatch.undo()
    r2 = world.run()
    assert r2.errors == [], r2.errors
    assert r2.counts["images_unchanged"] == 3
    assert r2.counts["images_new"] == 0
    assert {k: v["id"] for k, v in _by_ident(world).items()} == first  # no duplicate
    state = State(world.cache / "state.sqlite")
    try:
        st = state.image(f"list-{world.ns}", "img-a")
        assert st is not None
        assert st.glance_id == first["img-a"]
        last = state.last_list(f"list-{world.ns}")
        assert last is not None
        assert last.version == "1"
    finally:
        state.close()
    writes = len(world.glance.writes)
    r3 = world.run()  # and then an unchanged run writes nothing
    assert r3.errors == []
    assert len(world.glance.writes) == writes
