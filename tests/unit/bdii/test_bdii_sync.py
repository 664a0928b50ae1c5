"""The updater's diff and apply logic on an in-memory LDAP fake (the real slapd: tests/integration/bdii)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.bdii.sync import Changes, OpResult, diff_attrs, plan_sync, sync
from fedcloud_core.ldif import Entry

pytestmark = pytest.mark.unit


class FakeTree:
    """Entries by normalised DN; refuses orphans and non-leaf deletes like slapd; records operations."""

    def __init__(self, entries: list[Entry] = (), refuse: set[str] = frozenset()):  # type: ignore[assignment]
        self.data = {dnlib.normalize(e.dn): e for e in entries}
        self.log: list[tuple[str, str]] = []
        self.refuse = refuse

    def read(self, base: str) -> list[Entry]:
        return [e for e in self.data.values() if dnlib.is_under(e.dn, base)]

    def add(self, dn: str, attrs: Mapping[str, list[str]]) -> OpResult:
        self.log.append(("add", dn))
        if dn in self.refuse:
            return OpResult(False, 21, "invalidAttributeSyntax", "refused by the fake")
        par = dnlib.parent(dn)
        if dnlib.depth(dn) > 1 and dnlib.normalize(par) not in self.data:
            return OpResult(False, 32, "noSuchObject")
        self.data[dnlib.normalize(dn)] = Entry(dn, {k: list(v) for k, v in attrs.items()})
        return OpResult(True)

    def modify(self, dn: str, changes: Changes) -> OpResult:
        self.log.append(("modify", dn))
        e = self.data[dnlib.normalize(dn)]
        for name, (op, values) in changes.items():
            key = next((k for k in e.attrs if k.lower() == name.lower()), name)
            if op == "delete":
                e.attrs.pop(key, None)
            elif op == "add":
                e.attrs.setdefault(key, []).extend(values)
            else:
                e.attrs[key] = list(values)
        return OpResult(True)

    def delete(self, dn: str) -> OpResult:
        self.log.append(("delete", dn))
        key = dnlib.normalize(dn)
        if any(k.endswith("," + key) for k in self.data):
            return OpResult(False, 66, "notAllowedOnNonLeaf")
        del self.data[key]
        return OpResult(True)


def tree_entries() -> list[Entry]:
    return [
        Entry("o=glue", {"objectClass": ["organization"], "o": ["glue"]}),
        Entry(
            "GLUE2GroupID=resource,o=glue",
            {"objectClass": ["GLUE2Group"], "GLUE2GroupID": ["resource"]},
        ),
        Entry(
            "GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue",
            {
                "objectClass": ["GLUE2Service"],
                "GLUE2ServiceID": ["s"],
                "GLUE2EntityOtherInfo": ["a=1", "b=2"],
            },
        ),
        Entry(
            "GLUE2ResourceID=f1,GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue",
            {"objectClass": ["GLUE2Resource"], "GLUE2ResourceID": ["f1"]},
        ),
    ]


def test_initial_load_adds_parents_first() -> None:
    tree = FakeTree()
    res = sync(tree, "o=glue", list(reversed(tree_entries())))
    assert res.failed == 0
    assert res.added == 4
    assert [dnlib.depth(dn) for _op, dn in tree.log] == [1, 2, 3, 4]


def test_no_change_means_no_operation_whatever_the_spelling() -> None:
    tree = FakeTree(tree_entries())
    wanted = tree_entries()
    wanted[2] = Entry(
        "glue2serviceid=s, GLUE2GroupID=resource,O=GLUE",  # other DN spelling
        {"OBJECTCLASS": ["GLUE2Service"], "glue2entityotherinfo": ["b=2", "a=1"]},
    )  # RDN attr implied
    res = sync(tree, "o=glue", wanted)
    assert tree.log == []
    assert res.writes == 0
    assert res.unchanged == 4


def test_minimal_changes_and_leaves_deleted_first() -> None:
    tree = FakeTree(
        [
            *tree_entries(),
            Entry(
                "GLUE2BenchmarkID=b,GLUE2ResourceID=f1,GLUE2ServiceID=s,"
                "GLUE2GroupID=resource,o=glue",
                {"objectClass": ["x"]},
            ),
        ]
    )
    wanted = tree_entries()[:3]
    wanted[2].attrs["GLUE2EntityOtherInfo"] = ["a=1", "c=3"]
    wanted[2].attrs["GLUE2EntityName"] = ["new"]
    wanted.append(
        Entry(
            "GLUE2ResourceID=f2,GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue",
            {"objectClass": ["GLUE2Resource"]},
        )
    )
    plan = plan_sync(tree.read("o=glue"), wanted, base="o=glue")
    assert [e.dn.split(",")[0] for e in plan.adds] == ["GLUE2ResourceID=f2"]
    assert plan.modifies == [
        (
            "GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue",
            {
                "GLUE2EntityOtherInfo": ("replace", ["a=1", "c=3"]),
                "GLUE2EntityName": ("add", ["new"]),
            },
        )
    ]
    assert [d.split(",")[0] for d in plan.deletes] == ["GLUE2BenchmarkID=b", "GLUE2ResourceID=f1"]
    res = sync(tree, "o=glue", wanted)
    assert res.failed == 0
    assert (res.added, res.modified, res.deleted) == (1, 1, 2)
    assert res.writes == 4


def test_diff_attrs_case_insensitive_names_and_deletes() -> None:
    assert diff_attrs({"GLUE2EntityName": ["x"]}, {"glue2entityname": ["x"]}) == {}
    assert diff_attrs({"A": ["1"], "B": ["2"]}, {"a": ["1"]}) == {"B": ("delete", [])}


def test_no_deletes_when_not_allowed() -> None:
    tree = FakeTree(tree_entries())
    res = sync(tree, "o=glue", tree_entries()[:2], allow_delete=False)
    assert tree.log == []
    assert res.suppressed_deletes == 2


def test_failures_are_recorded_and_children_not_attempted() -> None:
    svc = "GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue"
    tree = FakeTree(refuse={svc})
    wanted = tree_entries()
    wanted.append(Entry("GLUE2X=orphan,GLUE2ServiceID=nope,o=glue", {"objectClass": ["x"]}))
    wanted.append(Entry("GLUE2Y=outside,o=grid", {"objectClass": ["x"]}))
    res = sync(tree, "o=glue", wanted)
    assert res.added == 2
    assert res.failed == 4
    text = [str(f) for f in res.failures]
    assert any(t.startswith(f"add {svc}: 21 invalidAttributeSyntax") for t in text)
    assert any("parent entry could not be added" in t for t in text)
    assert any("orphan" in t and "parent entry is missing" in t for t in text)
    assert any("outside" in t and "not below the base" in t for t in text)
    assert (
        "add",
        "GLUE2ResourceID=f1,GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue",
    ) not in tree.log


def test_duplicate_dn_is_reported_once_first_kept() -> None:
    wanted = [*tree_entries(), Entry("o=glue", {"objectClass": ["organization"], "o": ["glue"]})]
    plan = plan_sync([], wanted, base="o=glue")
    assert len(plan.adds) == 4
    assert len(plan.rejected) == 1
    assert "duplicate" in plan.rejected[0].result
