"""The next run asks Nova only for the servers changed since the last listing, same records."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fedcloud_accounting.action_cache import ActionCache
from fedcloud_accounting.checkpoint import CheckpointStore
from fedcloud_accounting.extract.facts import Action
from fedcloud_accounting.extractor import Extractor, Window, action_cache_dir, server_cache_dir
from fedcloud_accounting.server_cache import ServerCache
from unit.accounting.accounting_fakes import (
    FLEET_END,
    LARGE,
    MemoryWriter,
    fleet,
    fleet_config,
    fleet_projects,
)

pytestmark = pytest.mark.unit
HOUR = timedelta(hours=1)


def run(tmp, src, now, *, cached=True, start=None, dry_run=False, projects=50):
    cfg = fleet_config(tmp, projects, ip_records=True)
    writer = MemoryWriter()
    ex = Extractor(
        cfg,
        src,
        writer,
        CheckpointStore(tmp / "state" / "accounting" / "checkpoints.json"),
        now=lambda: now,
        dry_run=dry_run,
        action_cache=ActionCache(action_cache_dir(cfg)) if cached else None,
        server_cache=ServerCache(server_cache_dir(cfg)) if cached else None,
        window=Window(extract_from=start, extract_to=now),
    )
    src.calls.clear()
    report = ex.run()
    assert report.exit_code == 0, report.render_text()
    return report, sorted(writer.messages)


def calls(src, kind):
    return [arg for call, arg in src.calls if call == kind]


def first(src, pid, cond):
    return next((i, s) for i, s in enumerate(src.servers_by_project[pid]) if cond(s))


def change_some(src, when):
    """What an hour brings: a stop, a deletion, a rename, a new server (each saves it in Nova)."""
    p0, p1, p2, p3 = fleet_projects()[:4]
    i, s = first(src, p0, lambda s: s.status == "ACTIVE" and s.updated == s.launched)
    src.servers_by_project[p0][i] = replace(s, status="SHUTOFF", updated=when)
    src.actions_by_server[s.id] = [*src.actions_by_server[s.id], Action("stop", when)]
    i, s = first(src, p1, lambda s: s.terminated is None)
    src.servers_by_project[p1][i] = replace(
        s, status="DELETED", terminated=when, updated=when + timedelta(seconds=1)
    )
    src.actions_by_server[s.id] = [*src.actions_by_server[s.id], Action("delete", when)]
    i, s = first(src, p2, lambda s: s.terminated is None)
    src.servers_by_project[p2][i] = replace(s, name="renamed", updated=when)
    new = replace(
        src.servers_by_project[p3][0],
        id="ffffffff-new",
        name="new",
        created=when,
        launched=when + timedelta(seconds=20),
        updated=when + timedelta(seconds=20),
        terminated=None,
        status="ACTIVE",
        flavor=LARGE,
    )
    src.servers_by_project[p3].append(new)
    src.actions_by_server[new.id] = [Action("create", when)]


def test_the_next_run_lists_only_changes_and_queues_what_a_complete_listing_queues(tmp_path):
    src = fleet(400)
    first, _ = run(tmp_path / "a", src, FLEET_END)
    assert first.counts["server_lists_full"] == 50
    assert len(calls(src, "servers")) == 50
    change_some(src, FLEET_END + timedelta(minutes=20))
    later = FLEET_END + HOUR
    report, got = run(tmp_path / "a", src, later)
    assert report.counts["server_lists_changes_only"] == 50
    assert calls(src, "servers") == []
    since = FLEET_END - timedelta(minutes=10)  # the checkpoint, less the clock-skew margin
    assert {s for _, s in calls(src, "changed_servers")} == {since}
    # the same window with no state at all: every server listed
    _, want = run(tmp_path / "b", src, later, cached=False, start=FLEET_END)
    assert got == want
    recs = b"".join(body for _, body in got)
    assert b"MachineName: renamed" in recs
    assert b"VMUUID: ffffffff-new" in recs
    assert report.counts["records_cloud"] == 400 - 20 + 1  # 20 deleted before; one new
    # deleted within the window: its final record; the stopped one: suspended since
    assert recs.count(b"Status: completed") == 1


def test_a_day_old_complete_listing_or_a_window_after_the_listing_lists_everything(tmp_path):
    src = fleet(100)
    run(tmp_path, src, FLEET_END)
    report, _ = run(tmp_path, src, FLEET_END + timedelta(hours=23))
    assert report.counts["server_lists_changes_only"] == 50
    report, _ = run(tmp_path, src, FLEET_END + timedelta(hours=24, minutes=1))
    assert report.counts["server_lists_full"] == 50  # the last complete one is > 24 h old
    # a window starting after the last listing (less the margin) cannot trust it
    last = FLEET_END + timedelta(hours=24, minutes=1)
    report, _ = run(tmp_path, src, last + HOUR, start=last - timedelta(minutes=5))
    assert report.counts["server_lists_full"] == 50


def test_an_unreadable_listing_is_ignored_and_rewritten_a_dry_run_writes_none(tmp_path):
    src = fleet(100)
    run(tmp_path, src, FLEET_END, dry_run=True)
    root = tmp_path / "state" / "accounting" / "servers"
    assert not root.exists() or not any(root.iterdir())
    run(tmp_path, src, FLEET_END)
    f = root / f"{fleet_projects()[0]}.json"
    f.write_text('{"version": 1, "listed_at": "garbage"')
    report, _ = run(tmp_path, src, FLEET_END + HOUR)
    assert report.counts["server_lists_full"] == 1
    assert report.counts["server_lists_changes_only"] == 49
    assert ServerCache(root).load(fleet_projects()[0]) is not None


def test_a_listing_keeps_every_fact_of_a_server(tmp_path):
    src = fleet(60)
    cache = ServerCache(tmp_path)
    pid = fleet_projects()[0]
    servers = src.servers_by_project[pid]
    assert any(s.flavor is not None for s in servers)
    cache.save(pid, servers, FLEET_END, FLEET_END - HOUR)
    got = cache.load(pid)
    assert got is not None
    assert (got.listed_at, got.full_at) == (FLEET_END, FLEET_END - HOUR)
    alive = [s for s in servers if s.terminated is None]
    assert [got.servers[s.id] for s in alive] == alive
    assert len(got.servers) == len(alive)
    assert cache.load("../x") is None


def test_a_listing_of_a_newer_release_stops_the_run_untouched(tmp_path):
    from fedcloud_core.errors import StateVersionError

    src = fleet(100)
    run(tmp_path, src, FLEET_END)
    f = tmp_path / "state" / "accounting" / "servers" / f"{fleet_projects()[0]}.json"
    f.write_text('{"version": 99, "servers": {}}\n')
    with pytest.raises(StateVersionError, match="accounting server list"):
        run(tmp_path, src, FLEET_END + HOUR)
    assert f.read_text() == '{"version": 99, "servers": {}}\n'


def test_a_complete_listing_of_many_projects_lists_deleted_servers_and_ips_once(tmp_path):
    src = fleet(400)
    run(tmp_path / "a", src, FLEET_END, cached=False)
    assert len(calls(src, "deleted_servers")) == 1
    assert {d for _, d in calls(src, "servers")} == {None}  # alive ones only, per project
    assert len(calls(src, "all_floating_ips")) == 1  # floating IPs too
    assert calls(src, "floating_ips") == []
    # nine projects: listed one by one, deleted servers included; the same messages
    few = fleet(400, projects=9)
    run(tmp_path / "b", few, FLEET_END, cached=False, projects=9)
    assert calls(few, "deleted_servers") == []
    assert None not in {d for _, d in calls(few, "servers")}
    assert calls(few, "all_floating_ips") == []
    assert len(calls(few, "floating_ips")) == 9
    # with listings kept, the next run asks only for changes, per project
    run(tmp_path / "a", src, FLEET_END)
    run(tmp_path / "a", src, FLEET_END + HOUR)
    assert calls(src, "deleted_servers") == []
