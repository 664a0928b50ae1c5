"""Which servers' instance actions are read: only those whose history can change the record."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fedcloud_accounting.checkpoint import CheckpointStore
from fedcloud_accounting.extract.facts import Action
from fedcloud_accounting.extract.openstack import server_from_api
from fedcloud_accounting.extract.timeline import history_matters
from fedcloud_accounting.extractor import Extractor
from fedcloud_accounting.record.validate import parse_cloud_message
from unit.accounting.accounting_fakes import (
    END,
    P1,
    FakeSource,
    MemoryWriter,
    at,
    make_config,
    server,
)

pytestmark = pytest.mark.unit
BUILD = timedelta(seconds=300)
SEC = 1 / 3600  # one second, in the hours of at()


def launched(sid: str, created: float, launch: float, updated: float, **kw):
    return replace(server(sid, created=created, updated=updated, **kw), launched=at(launch))


def run(tmp_path, source, now=END, **acct):
    writer = MemoryWriter()
    store = CheckpointStore(tmp_path / "state" / "accounting" / "checkpoints.json")
    report = Extractor(make_config(tmp_path, **acct), source, writer, store, now=lambda: now).run()
    recs = {}
    for queue, body in writer.messages:
        if queue == "cloud":
            recs.update({r["VMUUID"]: r for r in parse_cloud_message(body.decode())[1]})
    reads = [arg for call, arg in source.calls if call == "actions"]
    return report, recs, reads


def test_a_server_active_since_its_launch_is_not_read_one_that_changed_in_the_window_is(
    tmp_path,
):
    src = FakeSource(
        servers_by_project={
            P1: [
                launched("untouched", 0, 30 * SEC, 30 * SEC),
                # stopped and started inside the window: the start saved it, updated moved
                launched("cycled", 0, 30 * SEC, 200),
            ]
        },
        actions_by_server={
            "untouched": [Action("create", at(0))],
            "cycled": [Action("create", at(0)), Action("stop", at(100)), Action("start", at(200))],
        },
    )
    report, recs, reads = run(tmp_path, src)
    assert reads == ["cycled"]
    assert report.counts["action_lists_skipped"] == 1
    assert report.counts["action_lists_read"] == 1
    whole = int((END - at(0)).total_seconds())
    assert (recs["untouched"]["WallDuration"], recs["untouched"]["SuspendDuration"]) == (
        str(whole),
        "0",
    )
    assert recs["cycled"]["SuspendDuration"] == str(100 * 3600)
    assert recs["untouched"]["Status"] == recs["cycled"]["Status"] == "started"


def test_a_server_respawned_long_after_its_creation_is_read_though_updated_is_launched_at(
    tmp_path,
):
    # shelved at 10 h, unshelved at 50 h: Nova set launched_at (and updated) at the unshelve
    src = FakeSource(
        servers_by_project={P1: [launched("unshelved", 0, 50, 50)]},
        actions_by_server={
            "unshelved": [
                Action("create", at(0)),
                Action("shelve", at(10)),
                Action("unshelve", at(50)),
            ]
        },
    )
    _, recs, reads = run(tmp_path, src)
    assert reads == ["unshelved"]
    assert recs["unshelved"]["SuspendDuration"] == str(40 * 3600)


@pytest.mark.parametrize(
    ("change", "read"),
    [
        ({}, False),
        ({"updated": at(30 * SEC) + timedelta(seconds=1)}, False),  # saved the next second
        ({"updated": at(30 * SEC) + timedelta(seconds=3)}, True),  # saved again later
        ({"updated": at(30 * SEC) - timedelta(seconds=3)}, True),  # clocks disagree: read
        ({"status": "SHUTOFF"}, True),
        ({"status": "PAUSED"}, True),
        ({"task_state": "powering-off"}, True),
        ({"terminated": at(5)}, True),
        ({"launched": None}, True),  # ACTIVE without launched_at: nothing proves anything
        ({"updated": None}, True),
        (
            {"launched": at(0) + timedelta(seconds=301), "updated": at(0) + timedelta(seconds=301)},
            True,
        ),
        (
            {"launched": at(0) + timedelta(seconds=300), "updated": at(0) + timedelta(seconds=300)},
            False,
        ),
        ({"status": "ERROR", "launched": None}, False),  # never launched: used nothing
        ({"status": "ERROR"}, True),  # launched, then ERROR
    ],
)
def test_history_matters(change, read):
    s = replace(launched("s", 0, 30 * SEC, 30 * SEC), **change)
    assert history_matters(s, BUILD) is read


def test_zero_max_build_reads_every_launched_server(tmp_path):
    s = launched("untouched", 0, 30 * SEC, 30 * SEC)
    assert history_matters(s, timedelta(0))
    src = FakeSource(
        servers_by_project={P1: [s, server("err", status="ERROR")]},
        actions_by_server={"untouched": [Action("create", at(0))]},
    )
    report, _, reads = run(tmp_path, src, max_build_seconds=0)
    assert reads == ["untouched"]  # the never-launched ERROR server needs no history, still
    assert report.counts["action_lists_skipped"] == 1


def test_the_records_are_the_same_with_and_without_the_shortcut(tmp_path):
    servers = [
        launched("a", 0, 30 * SEC, 30 * SEC),
        launched("b", 1, 1 + 60 * SEC, 1 + 61 * SEC, flavor=None, flavor_ref="m1.large"),
        launched("c", 2, 2 + 10 * SEC, 40),
        launched("d", 3, 90, 90),
        replace(server("e", created=4, status="ERROR"), updated=at(4)),
    ]
    actions = {
        "a": [Action("create", at(0))],
        "b": [Action("create", at(1))],
        "c": [Action("create", at(2)), Action("suspend", at(20)), Action("resume", at(40))],
        "d": [
            Action("create", at(3)),
            Action("stop", at(5)),
            Action("start", at(50)),
            Action("rebuild", at(90)),
        ],
        "e": [Action("create", at(4))],
    }
    out = []
    for i, build in enumerate((300, 0)):
        src = FakeSource(servers_by_project={P1: servers}, actions_by_server=actions)
        out.append(run(tmp_path / str(i), src, max_build_seconds=build))
    assert out[0][1] == out[1][1]
    assert sorted(out[0][2]) == ["c", "d"]
    assert sorted(out[1][2]) == ["a", "b", "c", "d"]


def test_an_hourly_run_reads_a_skipped_server_once_it_changes(tmp_path):
    s = launched("vm", 0, 30 * SEC, 30 * SEC)
    src = FakeSource(
        servers_by_project={P1: [s]}, actions_by_server={"vm": [Action("create", at(0))]}
    )
    _, _, reads = run(tmp_path, src)
    assert reads == []
    # stopped after the first run: the stop saved the instance
    later = END + timedelta(hours=1)
    src.servers_by_project[P1] = [replace(s, status="SHUTOFF", updated=END + timedelta(minutes=5))]
    src.actions_by_server["vm"].append(Action("stop", END + timedelta(minutes=5)))
    src.calls.clear()
    _, recs, reads = run(tmp_path, src, now=later)
    assert reads == ["vm"]
    assert recs["vm"]["SuspendDuration"] == str(55 * 60)
    assert recs["vm"]["Status"] == "suspended"


def test_the_task_state_is_read_from_nova():
    base = {"id": "x", "created": "2026-01-01T00:00:00Z", "status": "ACTIVE"}
    assert server_from_api(base).task_state is None
    assert server_from_api({**base, "OS-EXT-STS:task_state": None}).task_state is None
    assert server_from_api({**base, "OS-EXT-STS:task_state": "rebooting"}).task_state == "rebooting"
