"""One failing image never stops its source; a source cannot retire most of a site's images at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from images_world import World

from fedcloud_appliance.cli import build_parser
from fedcloud_core.report import RunStatus
from fedcloud_images.cache.state import State

pytestmark = pytest.mark.unit


@pytest.fixture
def world(tmp_path: Path, ipki: Any, server: Any, fake_glance: Any) -> World:
    return World(tmp_path, ipki, server, fake_glance)


def _by_ident(w: World) -> dict[str, dict[str, Any]]:
    return {img["appdb_id"]: img for img in w.glance.store.values()}


def _accepted_version(w: World) -> str | None:
    state = State(w.cache / "state.sqlite")
    try:
        last = state.last_list(f"list-{w.ns}")
        return last.version if last else None
    finally:
        state.close()


def test_a_failing_glance_update_of_one_image_does_not_stop_the_source(world: World) -> None:
    for i in ("img-a", "img-b", "img-c", "img-d"):
        world.add_image(i)
    world.publish("1")
    assert world.run().errors == []
    before = _by_ident(world)

    # img-a: new metadata, and Glance refuses its update; img-c dropped; img-e new
    world.images["img-a"]["title"] = "Image img-a, renamed"
    del world.images["img-c"]
    world.add_image("img-e")
    world.publish("2")
    real_update = world.glance.images.update

    def update(image_id: str, **kw: Any) -> None:
        if image_id == before["img-a"]["id"]:
            raise RuntimeError("HTTP 500 Internal Server Error")
        real_update(image_id, **kw)

    world.glance.images.update = update
    r = world.run()

    assert r.status is RunStatus.PARTIAL
    assert r.counts["images_failed"] == 1
    assert any("img-a" in e and "HTTP 500" in e for e in r.errors), r.errors
    assert not any("unexpected error" in e for e in r.errors), r.errors
    after = _by_ident(world)
    assert "img-e" in after  # the download and upload of the new image went on
    assert before["img-c"]["id"] not in world.glance.store  # the retirement went on
    assert after["img-a"]["id"] == before["img-a"]["id"]  # kept as it was, not retired
    assert after["img-a"]["name"] == "Image img-a"
    assert _accepted_version(world) == "2"  # and the list was accepted


def test_an_unexpected_error_while_preparing_one_image_does_not_stop_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedcloud_images.cache import convert

    world.add_image("img-a")
    world.add_image("img-b")
    world.publish("1")
    real = convert.prepare

    def prepare(path: Path, *a: Any, **kw: Any) -> Any:
        if "img-a" in str(path):
            raise KeyError("format-specific")
        return real(path, *a, **kw)

    monkeypatch.setattr(convert, "prepare", prepare)
    r = world.run()
    assert set(_by_ident(world)) == {"img-b"}
    assert r.counts["images_failed"] == 1
    assert any("img-a" in e for e in r.errors), r.errors
    assert _accepted_version(world) == "1"


@pytest.mark.parametrize("answer", ["truncated", "empty"])
def test_mass_retirement_is_refused_without_an_override(world: World, answer: str) -> None:
    idents = [f"img-{n}" for n in range(6)]
    for i in idents:
        world.add_image(i)
    world.publish("1")
    assert world.run().counts["images_new"] == 6
    ids = {k: v["id"] for k, v in _by_ident(world).items()}

    for i in idents[1:] if answer == "truncated" else idents:
        del world.images[i]
    world.publish("2")
    world.glance.writes.clear()
    r = world.run()
    n = 5 if answer == "truncated" else 6
    assert r.status is RunStatus.PARTIAL
    assert r.counts["images_retire_refused"] == n
    assert r.counts["images_removed"] == 0
    (err,) = r.errors
    assert f"{n} of its 6 images would be retired" in err
    assert "max_retire_fraction=0.5" in err
    assert "--allow-mass-retire" in err
    assert r.details["mass_retire_refused"][f"list-{world.ns}"]["would_retire"] == n
    assert {k: v["id"] for k, v in _by_ident(world).items()} == ids
    assert world.glance.writes == []
    assert _accepted_version(world) == "1"  # not accepted: the next run decides again

    # the operator confirms (config or `images sync --allow-mass-retire`)
    world.cfg_kw["allow_mass_retire"] = True
    r = world.run()
    assert r.errors == []
    assert r.counts["images_removed"] == n
    assert set(_by_ident(world)) == ({"img-0"} if answer == "truncated" else set())
    assert _accepted_version(world) == "2"


def test_retiring_up_to_the_fraction_or_from_a_small_source_goes_through(world: World) -> None:
    for i in ("img-a", "img-b", "img-c", "img-d"):
        world.add_image(i)
    world.publish("1")
    world.run()
    del world.images["img-a"], world.images["img-b"]  # 2 of 4: exactly the fraction
    world.publish("2")
    r = world.run()
    assert r.errors == []
    assert r.counts["images_removed"] == 2
    del world.images["img-c"], world.images["img-d"]  # all of 2: below mass_retire_min_images
    world.publish("3")
    r = world.run()
    assert r.errors == []
    assert _by_ident(world) == {}


def test_the_cli_has_the_one_off_override() -> None:
    args = build_parser().parse_args(["images", "sync", "--allow-mass-retire"])
    assert args.allow_mass_retire is True
    args = build_parser().parse_args(["images", "sync"])
    assert args.allow_mass_retire is False
