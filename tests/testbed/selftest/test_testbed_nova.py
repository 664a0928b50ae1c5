"""Nova: flavors with extra specs, servers across projects, actions, usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.integration


def _ts(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def test_flavor_list_has_inline_extra_specs(testbed):
    nova = testbed.nova(testbed.admin_session(), "2.61")
    flavors = {f.name: f for f in nova.flavors.list(is_public=None)}
    for name, info in testbed.seed["flavors"].items():
        f = flavors[name]
        assert (f.vcpus, f.ram, f.disk, f.ephemeral) == (
            info["vcpus"],
            info["ram"],
            info["disk"],
            info["ephemeral"],
        )
        assert f.extra_specs == info["extra_specs"]
    assert flavors["g1.gpu"].extra_specs["Accelerator:Model"] == "A100"
    assert flavors["b1.bench"].extra_specs["accounting:benchmark_value"] == "10.5"


def test_private_flavor_visible_only_to_its_project(testbed):
    info = testbed.seed["flavors"]["p1.private"]
    assert info["is_public"] is False
    granted = testbed.nova(testbed.admin_session("vo-fedcloud")).flavors.list()
    other = testbed.nova(testbed.admin_session("vo-ops")).flavors.list()
    assert "p1.private" in {f.name for f in granted}
    assert "p1.private" not in {f.name for f in other}


def test_all_tenants_changes_since_returns_every_seeded_server(testbed):
    nova = testbed.nova(testbed.admin_session())
    start = _ts(testbed.seed["window"]["start"]) - timedelta(seconds=1)
    found = nova.servers.list(search_opts={"all_tenants": 1, "changes-since": start.isoformat()})
    by_id = {s.id: s for s in found}
    for name, srv in testbed.seed["servers"].items():
        assert srv["id"] in by_id, name
        got = by_id[srv["id"]]
        assert got.tenant_id == srv["project_id"]
        assert got.status == srv["status"], name
        assert got.flavor["vcpus"] == srv["flavor"]["vcpus"]
    states = {s["status"] for s in testbed.seed["servers"].values()}
    assert {"ACTIVE", "SHUTOFF", "SUSPENDED", "SHELVED_OFFLOADED", "DELETED", "ERROR"} <= states
    unmapped = [s for s in testbed.seed["servers"].values() if s["vo"] is None]
    assert unmapped
    assert all(by_id[s["id"]].tenant_id == testbed.project_id("unmapped") for s in unmapped)


def test_changes_before_the_window_excludes_the_seed(testbed):
    # (changes-since after the window is no good test: nova's periodic cleanup of deleted
    # servers bumps their updated_at minutes later, so they show up again - accounting beware)
    nova = testbed.nova(testbed.admin_session(), "2.66")
    before = _ts(testbed.seed["window"]["start"]) - timedelta(seconds=30)
    opts = {
        "all_tenants": 1,
        "changes-since": "2000-01-01T00:00:00Z",
        "changes-before": before.isoformat(),
    }
    ids = {s.id for s in nova.servers.list(search_opts=opts)}
    assert not ids & {s["id"] for s in testbed.seed["servers"].values()}


def test_instance_actions_match_the_seed_timeline(testbed):
    nova = testbed.nova(testbed.admin_session())
    for name in ("fc-cycled", "ops-deleted", "fc-shelved"):
        srv = testbed.seed["servers"][name]
        actions = sorted(nova.instance_action.list(srv["id"]), key=lambda a: a.start_time)
        assert [a.action for a in actions] == [t["action"] for t in srv["timeline"]], name
        for act, step in zip(actions, srv["timeline"], strict=True):
            # nova stamps the action while handling the request: between the seed's
            # request and its observation of the result (1 s slack: nova rounds)
            started = _ts(act.start_time)
            assert _ts(step["requested_at"]) - timedelta(seconds=1) <= started, (name, act.action)
            assert started <= _ts(step["observed_at"]) + timedelta(seconds=1), (name, act.action)


def _usage_rows(nova, project_id, start, end):
    """Every server usage row of one project; simple-tenant-usage 2.40 pages its
    rows at nova's max_limit, so a scaled testbed needs the marker loop."""
    rows, marker = {}, None
    for _page in range(1000):
        usage = nova.usage.get(project_id, start, end, marker=marker, limit=1000)
        page = getattr(usage, "server_usages", [])
        if not page:
            return rows
        rows.update((r["instance_id"], r) for r in page)
        marker = page[-1]["instance_id"]
    raise AssertionError(f"more than 1000 usage pages for project {project_id}")


def test_simple_tenant_usage_counts_servers_per_project(testbed):
    nova = testbed.nova(testbed.admin_session(), "2.40")
    start = (_ts(testbed.seed["window"]["start"]) - timedelta(minutes=1)).replace(tzinfo=None)
    end = (datetime.now(UTC) + timedelta(minutes=1)).replace(tzinfo=None)
    by_project = {}
    for name, srv in testbed.seed["servers"].items():
        if (
            srv["status"] == "ERROR"
        ):  # never scheduled: lives in cell0, not counted by simple-tenant-usage
            continue
        pid = srv["project_id"]
        if pid not in by_project:
            by_project[pid] = _usage_rows(nova, pid, start, end)
        rows = by_project[pid]
        assert srv["id"] in rows, name
        row = rows[srv["id"]]
        assert row["vcpus"] == srv["flavor"]["vcpus"]
        if srv["status"] == "DELETED":
            assert row["state"] == "terminated"
            assert row["ended_at"]


def test_reader_sees_its_project_only_and_cannot_create_a_flavor(testbed):
    from novaclient import exceptions

    sess = testbed.reader_session("vo-ops")
    nova = testbed.nova(sess)
    names = {s.name for s in nova.servers.list()}
    expected = {
        n
        for n, s in testbed.seed["servers"].items()
        if s["project"] == "vo-ops" and s["status"] != "DELETED"
    }
    assert names == expected
    with pytest.raises(exceptions.Forbidden):
        nova.flavors.create("reader-must-not-create", 512, 1, 1)
    with pytest.raises(exceptions.Forbidden):
        nova.servers.list(search_opts={"all_tenants": 1})
