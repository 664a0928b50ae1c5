"""The instance-action cache: unchanged servers cost no API call, and records stay the same."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from fedcloud_accounting.action_cache import SETTLED, ActionCache
from fedcloud_accounting.checkpoint import CheckpointStore
from fedcloud_accounting.extract.facts import Action
from fedcloud_accounting.extractor import Extractor, Window, action_cache_dir
from fedcloud_accounting.record.validate import parse_cloud_message
from unit.accounting.accounting_fakes import (
    END,
    P1,
    P2,
    MemoryWriter,
    at,
    make_config,
    server,
    standard_source,
)

pytestmark = pytest.mark.unit


def settled_source():
    """The standard source with every server last updated well before END."""
    src = standard_source()
    for pid, servers in src.servers_by_project.items():
        src.servers_by_project[pid] = [dataclasses.replace(s, updated=at(60)) for s in servers]
    return src


def run_once(tmp_path, src, *, now=END, dry_run=False, **acct):
    cfg = make_config(tmp_path, **acct)
    writer = MemoryWriter()
    ex = Extractor(
        cfg,
        src,
        writer,
        CheckpointStore(tmp_path / "state" / "accounting" / "checkpoints.json"),
        now=lambda: now,
        dry_run=dry_run,
        action_cache=ActionCache(action_cache_dir(cfg)) if cfg.accounting.cache_actions else None,
        window=Window(extract_from=at(0), extract_to=END),
    )
    src.calls.clear()
    report = ex.run()
    records = sorted(
        (
            r
            for q, body in writer.messages
            if q == "cloud"
            for r in parse_cloud_message(body.decode())[1]
        ),
        key=lambda r: r["VMUUID"],
    )
    read = sorted(sid for what, sid in src.calls if what == "actions")
    return report, records, read


def test_second_run_reads_no_action_of_an_unchanged_server_and_builds_the_same_records(tmp_path):
    src = settled_source()
    report1, records1, read1 = run_once(tmp_path, src)
    assert read1 == ["a-run", "b-stop", "c-del", "d-shelve", "e-p2"]
    assert report1.counts["action_lists_read"] == 5
    report2, records2, read2 = run_once(tmp_path, src)
    assert read2 == []
    assert report2.counts["action_lists_cached"] == 5
    assert records2 == records1
    # the suspended time of the stopped-and-restarted server came from the cached actions
    b = next(r for r in records2 if r["VMUUID"] == "b-stop")
    assert b["SuspendDuration"] == str(10 * 3600)


def test_a_server_whose_updated_time_moved_is_read_again(tmp_path):
    src = settled_source()
    run_once(tmp_path, src)
    # b-stop is stopped again: Nova saves the instance (updated moves) and logs the action
    src.servers_by_project[P1][1] = dataclasses.replace(
        src.servers_by_project[P1][1], updated=at(200)
    )
    src.actions_by_server["b-stop"].append(Action("stop", at(100)))
    _, records, read = run_once(tmp_path, src)
    assert read == ["b-stop"]
    b = next(r for r in records if r["VMUUID"] == "b-stop")
    assert b["SuspendDuration"] == str((10 + 140) * 3600)  # 20h..30h, then 100h..END (240h)


def test_a_history_read_soon_after_the_last_update_is_not_kept(tmp_path):
    src = standard_source()
    recent = END - SETTLED + timedelta(seconds=1)  # updated 4:59 before the read: not settled
    src.servers_by_project[P2] = [
        dataclasses.replace(src.servers_by_project[P2][0], updated=recent)
    ]
    run_once(tmp_path, src)
    _, _, read = run_once(tmp_path, src)
    assert read == ["a-run", "b-stop", "c-del", "d-shelve", "e-p2"]  # updated None: never kept
    src.servers_by_project[P2] = [
        dataclasses.replace(src.servers_by_project[P2][0], updated=at(60))
    ]
    run_once(tmp_path, src)
    _, _, read = run_once(tmp_path, src)
    assert "e-p2" not in read


def test_an_unreadable_cache_file_is_ignored_and_rewritten(tmp_path):
    src = settled_source()
    _, records1, _ = run_once(tmp_path, src)
    path = tmp_path / "state" / "accounting" / "actions" / f"{P1}.json"
    path.write_text("{not json", encoding="utf-8")
    _, records2, read = run_once(tmp_path, src)
    assert read == ["a-run", "b-stop", "c-del", "d-shelve"]  # P1 read again, P2 from the cache
    assert records2 == records1
    assert set(json.loads(path.read_text())["servers"]) == {"a-run", "b-stop", "c-del", "d-shelve"}


def test_servers_no_longer_listed_are_dropped_from_the_cache(tmp_path):
    src = settled_source()
    run_once(tmp_path, src)
    del src.servers_by_project[P1][2]  # c-del: its deletion is now before the window
    run_once(tmp_path, src)
    doc = json.loads((tmp_path / "state" / "accounting" / "actions" / f"{P1}.json").read_text())
    assert sorted(doc["servers"]) == ["a-run", "b-stop", "d-shelve"]


def test_dry_run_and_disabled_cache_write_nothing(tmp_path):
    src = settled_source()
    run_once(tmp_path / "dry", src, dry_run=True)
    assert not (tmp_path / "dry" / "state" / "accounting" / "actions").exists()
    _, _, read = run_once(tmp_path / "off", src, cache_actions=False)
    _, _, read2 = run_once(tmp_path / "off", src, cache_actions=False)
    assert read == read2 == ["a-run", "b-stop", "c-del", "d-shelve", "e-p2"]
    assert not (tmp_path / "off" / "state" / "accounting" / "actions").exists()


def test_a_project_id_unusable_as_a_file_name_gets_no_cache(tmp_path):
    cache = ActionCache(tmp_path)
    s = server("x", updated=0)
    assert cache.save("../evil", [s], {"x": []}, END) is False
    assert cache.load("../evil") == {}
    assert list(tmp_path.iterdir()) == []


def test_the_file_of_a_project_no_longer_accounted_is_removed(tmp_path):
    src = settled_source()
    run_once(tmp_path, src)
    root = tmp_path / "state" / "accounting" / "actions"
    assert sorted(f.stem for f in root.iterdir()) == sorted([P1, P2])
    cfg = make_config(tmp_path)
    cfg = cfg.model_copy(update={"vos": {k: v for k, v in cfg.vos.items() if k == "ops"}})
    ex = Extractor(
        cfg,
        src,
        MemoryWriter(),
        CheckpointStore(tmp_path / "state" / "accounting" / "checkpoints.json"),
        now=lambda: END,
        action_cache=ActionCache(root),
        window=Window(extract_from=at(0), extract_to=END),
    )
    assert ex.run().counts["projects"] == 1
    assert [f.stem for f in root.iterdir()] == [P1]
