"""Image sync at scale (issue 15): bounded parallel uploads, and an unchanged run whose Glance
calls do not grow with the number of images."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

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
    # stored images checked from one listing (no GET per image), no member listing
    assert len(glance.calls) == 2 + 4 * n
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


def test_members_are_listed_again_when_the_projects_change_or_the_check_is_old(
    tmp_path: Path, ipki: Any, server: Any, fake_glance: Any
) -> None:
    w = _world(tmp_path, ipki, server, fake_glance, 2)
    assert w.run().errors == []
    img = next(iter(fake_glance.store.values()))
    del fake_glance.members[img["id"]][PROJECT]  # someone removes the share by hand
    fake_glance.calls.clear()
    assert w.run().counts["images_unchanged"] == 2
    assert [c for c in fake_glance.calls if "members" in str(c[1])] == []  # not looked at yet
    w.cfg_kw["members_recheck_hours"] = 0  # the check is due (as it is after 24 h by default)
    fake_glance.calls.clear()
    r = w.run()
    assert r.counts["images_updated"] == 1  # the share is back
    assert fake_glance.members[img["id"]][PROJECT]["status"] == "accepted"
    assert len([c for c in fake_glance.calls if c[1].startswith("members/")]) == 2


def test_state_writes_are_committed_in_groups_and_at_the_end(tmp_path: Path) -> None:
    import sqlite3

    from fedcloud_images.cache.state import ImageState, State

    st = State(tmp_path / "state.sqlite")

    def seen() -> int:  # what another connection (a crash's survivor) would find
        with sqlite3.connect(st.path) as db:
            return int(db.execute("SELECT count(*) FROM images").fetchone()[0])

    with st.batch(every=3):
        for i in range(2):
            st.save_image(ImageState("s", f"i{i}", "sha512:x"))
        assert seen() == 0  # not committed yet (one fsync per group, not per image)
        st.save_image(ImageState("s", "i2", "sha512:x"))
        assert seen() == 3
        st.save_image(ImageState("s", "i3", "sha512:x"))
    assert seen() == 4  # the rest at the end of the batch
    st.save_image(ImageState("s", "i4", "sha512:x"))
    assert seen() == 5  # outside a batch: each write is its own transaction
    st.close()
