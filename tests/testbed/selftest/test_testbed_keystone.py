"""Keystone: projects, VO tags, the appliance's read-only user."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_seeded_projects_carry_their_vo_tag(testbed):
    ks = testbed.keystone(testbed.admin_session())
    projects = {p.name: p for p in ks.projects.list(domain="default")}
    for name, info in testbed.seed["projects"].items():
        assert projects[name].id == info["id"]
        assert sorted(ks.projects.list_tags(info["id"])) == sorted(info["tags"])
    assert projects["unmapped"].tags == []


def test_projects_filtered_by_tag_give_the_vo_mapping(testbed):
    ks = testbed.keystone(testbed.admin_session())
    by_tag = {
        p.id: t.removeprefix("VO:")
        for t in {f"VO:{vo}" for vo in testbed.seed["vo_map"].values()}
        for p in ks.projects.list(tags=t)
    }
    assert by_tag == testbed.seed["vo_map"]
    assert len(set(by_tag.values())) >= 2  # at least two VOs, one VO on two projects
    assert len(by_tag) > len(set(by_tag.values()))


def test_system_reader_lists_projects_and_users_but_cannot_write(testbed):
    from keystoneauth1 import exceptions

    ks = testbed.keystone(testbed.reader_session(system=True))
    names = {p.name for p in ks.projects.list()}
    assert set(testbed.seed["projects"]) <= names
    users = {u.name: u.id for u in ks.users.list()}
    assert users["alice"] == testbed.seed["users"]["alice"]["id"]
    with pytest.raises(exceptions.Forbidden):
        ks.projects.create("reader-must-not-create", domain="default")


def test_reader_holds_only_the_reader_role(testbed):
    ks = testbed.keystone(testbed.admin_session())
    reader_id = testbed.seed["users"]["fedcloud-reader"]["id"]
    roles = {r.id: r.name for r in ks.roles.list()}
    assignments = ks.role_assignments.list(user=reader_id)
    assert assignments, "the reader has no role at all"
    assert {roles[a.role["id"]] for a in assignments} == {"reader"}
    scoped = {a.scope["project"]["id"] for a in assignments if "project" in a.scope}
    seeded = {p["id"] for n, p in testbed.seed["projects"].items() if n != "admin"}
    assert seeded <= scoped  # (scale-* projects add more)
    assert testbed.seed["projects"]["admin"]["id"] not in scoped
    assert any("system" in a.scope for a in assignments)
