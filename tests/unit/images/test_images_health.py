"""A sync that accepted no image list is not healthy: no heartbeat, ``status --check`` fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from images_world import World

from fedcloud_appliance import status
from fedcloud_core.config import parse_config
from fedcloud_core.report import heartbeat_path, status_path, store_report

pytestmark = pytest.mark.unit


@pytest.fixture
def world(tmp_path: Path, ipki: Any, server: Any, fake_glance: Any) -> World:
    return World(tmp_path, ipki, server, fake_glance)


def test_every_list_rejected_touches_no_heartbeat_and_is_a_problem(
    world: World, tmp_path: Path
) -> None:
    cfg = parse_config(
        f"site: {{name: DEMO}}\npaths: {{state_dir: {tmp_path}/state}}\n", environ={}
    )
    state = cfg.paths.state_dir
    world.add_image("img-a")
    world.publish(tamper=True)
    report = world.run()
    report.finish()
    assert report.counts["lists_rejected"] == 1
    assert report.status.value == "partial"
    assert report.nothing_accepted == "no image list accepted (1 source(s))"
    store_report(state, report)
    assert status_path(state, "images-sync").exists()
    assert not heartbeat_path(state, "images-sync").exists()
    data = status.collect(cfg, probe=None, jobs=["images-sync"])
    probs = status.problems(data)
    assert probs == ["images sync: last run accepted nothing: no image list accepted (1 source(s))"]
    assert "nothing accepted: no image list accepted" in status.render_text(data)

    # the next good list: healthy again, heartbeat touched
    world.publish(version="20260102000000")
    good = world.run()
    good.finish()
    assert good.nothing_accepted is None
    store_report(state, good)
    assert heartbeat_path(state, "images-sync").exists()
    assert status.problems(status.collect(cfg, probe=None, jobs=["images-sync"])) == []
