"""Image sync at scale (issue 15): bounded parallel uploads, and an unchanged run whose Glance
calls do not grow with the number of images."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from images_world import PROJECT, World

pytestmark = pytest.mark.unit


class _SlowUploads:
    """Wraps the fake's upload: each takes a while, and the most running at once is recorded."""

    def __init__(self, glance: Any, *, seconds: float = 0.15, fail: set[str] | None = None):
        self.glance = glance
        self.seconds = seconds
        self.fail = fail or set()
        self.running = 0
        self.most = 0
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self.orig = glance.images.upload
        glance.images.upload = self.upload

    def upload(self, image_id: str, data: Any, image_size: int | None = None) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        t0 = time.monotonic()
        try:
            time.sleep(self.seconds)
            name = self.glance.store[image_id]["appdb_id"]
            if name in self.fail:
                raise RuntimeError(f"Glance refused {name}")
            self.orig(image_id, data, image_size=image_size)
        finally:
            with self.lock:
                self.running -= 1
                self.spans.append((t0, time.monotonic()))


def _world(tmp: Path, ipki: Any, server: Any, glance: Any, n: int, **cfg: Any) -> World:
    w = World(tmp, ipki, server, glance, **cfg)
    for i in range(n):
        w.add_image(f"img-{i:03d}")
    w.publish()
    return w


def test_uploads_run_in_parallel_and_never_exceed_upload_workers(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    w = _world(tmp_path, ipki, server, fake_glance, 8, upload_workers=3)
    slow = _SlowUploads(fake_glance)
    r = w.run()
    assert r.errors == []
    assert r.counts["images_new"] == 8
    assert slow.most == 3  # bounded, and the bound is used
    took = max(e for _, e in slow.spans) - min(s for s, _ in slow.spans)
    assert took < 8 * slow.seconds * 0.75  # not one after the other (3 at once: ~3 x 0.15 s)
    for img in fake_glance.store.values():  # each one shared and accepted
        assert fake_glance.members[img["id"]] == {
            PROJECT: {"member_id": PROJECT, "status": "accepted"}
        }


def test_one_failing_upload_does_not_stop_the_others(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    w = _world(tmp_path, ipki, server, fake_glance, 6, upload_workers=3)
    slow = _SlowUploads(fake_glance, seconds=0.05, fail={"img-002"})
    r = w.run()
    assert r.counts["images_new"] == 5
    assert r.counts["images_failed"] == 1
    assert [e for e in r.errors if "img-002" in e and "Glance upload failed" in e]
    assert len(r.errors) == 1
    ids = sorted(img["appdb_id"] for img in fake_glance.store.values())
    assert ids == [f"img-{i:03d}" for i in range(6) if i != 2]  # the incomplete one was removed
    states = {i["key"].split("/")[1]: i["state"] for i in r.details["images"]}
    assert states["img-002"] == "failed"
    assert list(states.values()).count("new") == 5
    # the next run retries only the failed image
    slow.fail.clear()
    r2 = w.run()
    assert (r2.counts["images_new"], r2.counts["images_unchanged"]) == (1, 5)


def _unchanged_calls(tmp: Path, ipki: Any, server: Any, glance: Any, n: int) -> list[Any]:
    tmp.mkdir()
    w = _world(tmp, ipki, server, glance, n)
    first = w.run()
    assert first.errors == []
    assert first.counts["images_new"] == n
    # the source listed, then per image: create, upload, add the member, accept it; the
    # stored images checked from one listing (no GET per image), no member listing; the
    # source listed once more at the end (what the run left, for the next one)
    assert len(glance.calls) == 3 + 4 * n
    glance.calls.clear()
    again = w.run()
    assert again.errors == []
    assert again.counts["images_unchanged"] == n
    return list(glance.calls)


def test_an_unchanged_run_costs_the_same_glance_calls_for_10_and_100_images(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    fresh = type(fake_glance)  # the FakeGlance of this directory's conftest
    small = _unchanged_calls(tmp_path / "10", ipki, server, fresh(), 10)
    large = _unchanged_calls(tmp_path / "100", ipki, server, fresh(), 100)
    assert small == large == [("GET", "images")]  # one page, no member listing, no write


def test_an_unchanged_run_lists_only_what_changed_since_the_last_run(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    w = _world(tmp_path, ipki, server, fake_glance, 30)
    assert w.run().counts["images_new"] == 30
    lists: list[dict[str, Any]] = []
    orig = fake_glance.images.list

    def spy(filters: dict[str, Any] | None = None, page_size: int = 20) -> Any:
        lists.append(dict(filters or {}))
        got = list(orig(filters=filters, page_size=page_size))
        lists[-1]["returned"] = len(got)
        return iter(got)

    fake_glance.images.list = spy
    assert w.run().counts["images_unchanged"] == 30
    (asked,) = lists
    # our project's images changed since the newest one the last run saw (less 2 s):
    # the last one written, not the 30
    assert asked["owner"] == fake_glance.project_id
    assert asked["updated_at"].startswith("gte:")
    assert "tag" not in asked
    assert asked["returned"] == 1
    lists.clear()
    assert w.run().counts["images_unchanged"] == 30
    assert [x["returned"] for x in lists] == [1]  # the same again: nothing moved


def test_a_change_by_hand_is_seen_by_the_next_listing_of_changes(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    w = _world(tmp_path, ipki, server, fake_glance, 3)
    assert w.run().counts["images_new"] == 3
    by_ident = {img["appdb_id"]: img for img in fake_glance.store.values()}
    renamed, untagged = by_ident["img-000"], by_ident["img-001"]
    renamed.update(name="mine now", updated_at=fake_glance.now())  # an admin edits them
    untagged.update(tags=[], updated_at=fake_glance.now())
    fake_glance.writes.clear()
    r = w.run()
    assert r.errors == []
    # the renamed one is put right; the untagged one is no longer ours, so a new one is made
    assert (r.counts["images_updated"], r.counts["images_new"]) == (1, 1)
    assert fake_glance.store[renamed["id"]]["name"] != "mine now"
    assert fake_glance.store[untagged["id"]]["tags"] == []  # left alone: not ours any more
    assert [x for x in fake_glance.writes if x[0] == "create"] == [("create", ANY)]


def test_a_hand_deleted_image_comes_back_at_the_next_complete_listing(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    w = _world(tmp_path, ipki, server, fake_glance, 2)
    assert w.run().counts["images_new"] == 2
    gone = next(iter(fake_glance.store))
    del fake_glance.store[gone]  # a listing of changes cannot see a deletion
    assert w.run().counts["images_unchanged"] == 2
    w.age_glance_listing()  # images.glance_full_scan_hours (24) later
    r = w.run()
    assert (r.counts["images_new"], r.counts["images_unchanged"]) == (1, 1)
    w.cfg_kw["glance_full_scan_hours"] = 0  # 0: every run lists in full
    del fake_glance.store[next(iter(fake_glance.store))]
    assert w.run().counts["images_new"] == 1


def test_a_run_that_fails_midway_leaves_no_saved_listing_behind(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from fedcloud_images.sync import ImageSync

    w = _world(tmp_path, ipki, server, fake_glance, 2)
    assert w.run().counts["images_new"] == 2
    db = tmp_path / "cache" / "state.sqlite"
    saved = "SELECT count(*) FROM glance_scans"
    assert sqlite3.connect(db).execute(saved).fetchone() == (1,)

    def broken(*a: Any, **kw: Any) -> None:
        raise RuntimeError("something unforeseen")

    with monkeypatch.context() as m:  # a failure after the listing, before the end
        m.setattr(ImageSync, "_upload_all", broken)
        assert w.run().errors
    assert sqlite3.connect(db).execute(saved).fetchone() == (0,)
    del fake_glance.store[next(iter(fake_glance.store))]
    r = w.run()  # so the run after it lists Glance in full and sees the deletion
    assert r.counts["images_new"] == 1


def test_a_failed_listing_of_changes_keeps_the_saved_listing(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    w = _world(tmp_path, ipki, server, fake_glance, 2)
    assert w.run().counts["images_new"] == 2
    orig = fake_glance.images.list

    def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("Glance went away")

    fake_glance.images.list = broken
    writes = len(fake_glance.writes)
    r = w.run()
    assert [e for e in r.errors if "Glance went away" in e]
    assert len(fake_glance.writes) == writes  # nothing written, nothing retired
    fake_glance.images.list = orig
    fake_glance.calls.clear()
    assert w.run().counts["images_unchanged"] == 2  # nothing was written: still valid
    assert fake_glance.calls == [("GET", "images")]
