"""Usage from a fake action timeline: wall, suspended, CPU time, status; host time zone has no effect."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fedcloud_accounting.extract.facts import Action, epoch, parse_time
from fedcloud_accounting.extract.timeline import usage
from fedcloud_accounting.record.build import Lookups, SiteInfo, cloud_record, status_of
from unit.accounting.accounting_fakes import END, LARGE, SMALL, T0, at, server

pytestmark = pytest.mark.unit
H = 3600
SITE = SiteInfo("TEST-SITE", "svc", "fedcloud-appliance/test (OpenStack)")


def test_running_server_counts_from_creation_to_window_end():
    u = usage(at(0), None, [Action("create", at(0)), Action("reboot", at(5))], at(10))
    assert (u.wall, u.suspended, u.state, u.ended) == (10 * H, 0, "running", False)


@pytest.mark.parametrize(
    ("off", "on"),
    [("stop", "start"), ("suspend", "resume"), ("pause", "unpause"), ("shelve", "unshelve")],
)
def test_each_off_state_goes_to_suspend_duration(off, on):
    acts = [Action(off, at(2)), Action(on, at(5))]
    u = usage(at(0), None, acts, at(10))
    assert (u.wall, u.suspended, u.state) == (7 * H, 3 * H, "running")


def test_shelve_offload_stays_shelved_until_unshelve():
    acts = [
        Action("shelve", at(1)),
        Action("shelveOffload", at(1.5)),
        Action("start", at(2)),
        Action("unshelve", at(4)),
    ]
    u = usage(at(0), None, acts, at(6))
    assert (u.wall, u.suspended) == (3 * H, 3 * H)


def test_shutoff_can_count_as_running_when_configured():
    acts = [Action("stop", at(2)), Action("start", at(5))]
    u = usage(at(0), None, acts, at(10), shutoff_is_suspended=False)
    assert (u.wall, u.suspended) == (10 * H, 0)


def test_terminated_server_ends_at_termination_and_is_completed():
    u = usage(at(0), at(4), [Action("stop", at(1)), Action("delete", at(4))], at(10))
    assert (u.wall, u.suspended, u.ended, u.horizon) == (1 * H, 3 * H, True, at(4))


def test_actions_after_the_window_end_do_not_count():
    acts = [Action("stop", at(2)), Action("start", at(20))]
    u = usage(at(0), at(30), acts, at(10))
    assert (u.wall, u.suspended, u.state, u.ended) == (2 * H, 8 * H, "stopped", False)


def test_server_created_after_window_end_is_not_reported():
    assert usage(at(11), None, [], at(10)) is None


def test_values_are_cumulative_and_monotonic_over_growing_windows():
    acts = [Action("suspend", at(3)), Action("resume", at(7))]
    previous = (0, 0)
    for end in range(1, 12):
        u = usage(at(0), None, acts, at(end))
        assert u.wall + u.suspended == end * H
        assert u.wall >= previous[0]
        assert u.suspended >= previous[1]
        previous = (u.wall, u.suspended)


@pytest.mark.parametrize(
    ("state_actions", "nova", "terminated", "expected"),
    [
        ([], "ACTIVE", None, "started"),
        ([Action("stop", at(1))], "SHUTOFF", None, "suspended"),
        ([Action("suspend", at(1))], "SUSPENDED", None, "suspended"),
        ([Action("pause", at(1))], "PAUSED", None, "paused"),
        ([Action("shelve", at(1))], "SHELVED_OFFLOADED", None, "suspended"),
        ([], "ERROR", None, "error"),
        ([], "UNKNOWN", None, "unknown"),
        ([], "DELETED", 2, "completed"),
    ],
)
def test_status_mapping(state_actions, nova, terminated, expected):
    s = server("x", status=nova, terminated=terminated)
    u = usage(s.created, s.terminated, state_actions, at(10))
    assert status_of(s, u) == expected


def test_record_cpu_memory_disk_benchmark_from_flavor():
    s = server("x", flavor=LARGE)
    u = usage(s.created, None, [Action("stop", at(1)), Action("start", at(2))], at(10))
    rec = cloud_record(s, u, LARGE, "ops", SITE, Lookups(), 1)
    assert (rec.cpu_count, rec.memory, rec.disk) == (8, 16384, 100)  # root 80 + ephemeral 20
    assert (rec.wall_duration, rec.suspend_duration, rec.cpu_duration) == (9 * H, H, 9 * H * 8)
    rec2 = cloud_record(
        server("y"), usage(at(0), None, [], at(1)), SMALL, "ops", SITE, Lookups(), 0
    )
    assert (rec2.benchmark_type, rec2.benchmark) == ("HEPSPEC", 10.5)


def test_parse_time_reads_openstack_formats_as_utc():
    want = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    for text in ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000000", "2024-05-01T14:00:00+02:00"):
        assert parse_time(text) == want
    with pytest.raises(ValueError, match="naive"):
        epoch(datetime(2024, 5, 1))


@pytest.fixture
def madrid(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Madrid")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _wire_for_standard_vm() -> dict[str, str]:
    s = server("tz", created=0, terminated=30)
    u = usage(s.created, s.terminated, [Action("suspend", at(10)), Action("resume", at(12))], END)
    return cloud_record(s, u, SMALL, "ops", SITE, Lookups(), 0).to_wire()


def test_records_do_not_depend_on_the_host_time_zone(madrid):
    assert time.localtime(epoch(T0)).tm_gmtoff == 2 * H  # really running in CEST
    wire = _wire_for_standard_vm()
    assert (
        wire["StartTime"] == str(int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())) == "1714521600"
    )
    assert wire["EndTime"] == str(1714521600 + 30 * H)
    assert (wire["WallDuration"], wire["SuspendDuration"]) == (str(28 * H), str(2 * H))
    # naive Nova times are read as UTC, not as local time
    assert parse_time("2024-05-01T00:00:00") == T0
    tz = timezone(timedelta(hours=2))
    assert epoch(datetime(2024, 5, 1, 2, 0, tzinfo=tz)) == epoch(T0)


def test_server_that_never_launched_used_nothing():
    u = usage(at(0), None, [Action("create", at(0))], at(10), launched=False)
    assert (u.wall, u.suspended, u.ended) == (0, 0, False)
