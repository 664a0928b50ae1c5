"""The publish path (fedcloud_core.bdii.publish) against real slapds (issue 13).

- the applied state (per-DN digests + the suffix's contextCSN) is trusted only while
  nothing else touched the tree: an outside write, a restarted slapd, a corrupted,
  missing or foreign state file each lead to a full resync that ends with the tree
  exactly equal to the wanted entries;
- the bulk first load (slapadd before slapd serves, or one ``ldapadd -c`` into a running
  empty database) reports every failed entry by DN and serves the others;
- a DN that needs escaping (``,`` ``+`` ``=`` ``#``, leading space, non-ASCII) goes
  through every path: slapadd, ldapadd -c, incremental add/modify/delete, full resync,
  LDIF records split without parsing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.bdii.ldap import Ldap3Tree, connect
from fedcloud_core.bdii.publish import (
    BULK_MIN,
    PublishResult,
    load_state,
    prepare,
    publish,
    state_file,
)
from fedcloud_core.bdii.slapd import Slapd
from fedcloud_core.ldif import Entry, render, split_records
from integration.bdii.bdii_testlib import by_dn, ldapsearch, new_slapd

pytestmark = pytest.mark.integration

SVC_ID = "https://keystone.example.org:5000/v3_cloud.compute"
SVC = f"GLUE2ServiceID={SVC_ID},GLUE2GroupID=resource,o=glue"
# every character RFC 4514 escapes, a leading '#' and space, non-ASCII
ODD_ID = " #odd,id+x=y é ü"
ODD_DN = f"GLUE2ApplicationEnvironmentID={dnlib.escape(ODD_ID)},{SVC}"


def image(iid: str, name: str = "img") -> Entry:
    e = Entry(f"GLUE2ApplicationEnvironmentID={dnlib.escape(iid)},{SVC}")
    e.add("objectClass", "GLUE2Entity", "GLUE2ApplicationEnvironment")
    e.add("GLUE2ApplicationEnvironmentID", iid).add("GLUE2EntityName", name)
    e.add("GLUE2ApplicationEnvironmentAppName", name)
    e.add("GLUE2ApplicationEnvironmentComputingManagerForeignKey", f"{SVC_ID}_manager")
    return e


def tree_of(n: int, *, odd_name: str = "odd") -> list[Entry]:
    base = [
        Entry("o=glue").add("objectClass", "organization").add("o", "glue"),
        Entry("GLUE2GroupID=resource,o=glue")
        .add("objectClass", "GLUE2Group")
        .add("GLUE2GroupID", "resource"),
        Entry(SVC)
        .add("objectClass", "GLUE2Entity", "GLUE2Service", "GLUE2ComputingService")
        .add("GLUE2ServiceID", SVC_ID)
        .add("GLUE2ServiceType", "org.openstack.nova")
        .add("GLUE2ServiceQualityLevel", "production")
        .add("GLUE2ServiceAdminDomainForeignKey", "TEST-SITE"),
    ]
    return [*base, image(ODD_ID, odd_name), *(image(f"img-{i:05d}") for i in range(n))]


def live(slapd: Slapd) -> dict[str, dict[str, set[str]]]:
    return by_dn(ldapsearch(slapd.url, "o=glue"))


def assert_equal(slapd: Slapd, wanted: list[Entry]) -> None:
    got, want = live(slapd), by_dn(wanted)
    assert set(got) == set(want)
    for k, attrs in want.items():
        assert got[k] == attrs, k


class Bdii:
    """A slapd of the project template + the publish path's state file."""

    def __init__(self, tmp: Path):
        self.slapd = new_slapd(tmp / "slapd")
        self.state = state_file(tmp / "applied", "o=glue")
        self.tree: Ldap3Tree | None = None

    def connect(self, *, c_clients: bool = True) -> Ldap3Tree:
        if self.tree is not None:
            self.tree.close()
        s = self.slapd
        conn = connect(s.url, bind_dn=s.rootdn(), password=s.password, timeout=30)
        url = s.url if c_clients else None
        self.tree = Ldap3Tree(conn, url=url, bind_dn=s.rootdn(), password=s.password)
        return self.tree

    def start(self, wanted: list[Entry] | None = None) -> PublishResult | None:
        """Start slapd; with ``wanted``: bulk-loaded with slapadd before it serves."""
        prep = prepare(wanted, base="o=glue") if wanted is not None else None
        self.slapd.start({"o=glue": prep.loadable()} if prep else None)
        tree = self.connect()
        if prep is None:
            return None
        return publish(
            tree,
            "o=glue",
            wanted or [],
            state_path=self.state,
            prepared=prep,
            loaded=self.slapd.loaded["o=glue"],
        )

    def publish(self, wanted: list[Entry], **kw: object) -> PublishResult:
        assert self.tree is not None
        return publish(self.tree, "o=glue", wanted, state_path=self.state, **kw)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.tree is not None:
            self.tree.close()
            self.tree = None
        self.slapd.stop()


@pytest.fixture
def bdii(tmp_path: Path) -> Iterator[Bdii]:
    b = Bdii(tmp_path)
    yield b
    b.stop()


def test_bulk_first_load_then_no_change_reads_and_writes_nothing(bdii: Bdii) -> None:
    wanted = tree_of(30)
    res = bdii.start(wanted)
    assert res is not None
    assert res.mode == "loaded"
    assert res.failures == []
    assert_equal(bdii.slapd, wanted)
    assert bdii.tree is not None
    before = dict(bdii.tree.ops)
    res = bdii.publish(wanted)
    assert (res.mode, res.writes, res.failed) == ("unchanged", 0, 0)
    ops = {k: v - before.get(k, 0) for k, v in bdii.tree.ops.items() if v != before.get(k, 0)}
    assert ops == {"csn": 1}  # no search of the tree, no write


def test_outside_write_leads_to_full_resync_ending_equal(bdii: Bdii) -> None:
    wanted = tree_of(20)
    bdii.start(wanted)
    tree = bdii.tree
    assert tree is not None
    # someone else: deletes an image, changes another, adds a stray entry
    tree.conn.delete(wanted[5].dn)
    tree.conn.modify(wanted[6].dn, {"GLUE2EntityName": [("MODIFY_REPLACE", ["tampered"])]})
    stray = image("stray")
    tree.conn.add(stray.dn, attributes=stray.attrs)
    res = bdii.publish(wanted)
    assert res.mode == "full"
    assert "contextCSN" in res.reason
    assert (res.added, res.modified, res.deleted, res.failed) == (1, 1, 1, 0)
    assert_equal(bdii.slapd, wanted)
    # and the next cycle trusts the state again
    assert bdii.publish(wanted).mode == "unchanged"


def test_slapd_restart_leads_to_full_resync_ending_equal(bdii: Bdii) -> None:
    wanted = tree_of(BULK_MIN + 10)  # enough for the ldapadd -c bulk path
    bdii.start(wanted)
    bdii.stop()
    bdii.start()  # new, empty database: the state's contextCSN is gone
    assert bdii.tree is not None
    res = bdii.publish(wanted)
    assert res.mode == "full"
    assert res.failed == 0
    assert res.added == len(wanted)
    assert bdii.tree.ops["bulk_add"] == 1  # one ldapadd -c, not one LDAP add per entry
    assert_equal(bdii.slapd, wanted)


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing", "foreign", "newer"])
def test_damaged_state_file_leads_to_full_resync_ending_equal(bdii: Bdii, damage: str) -> None:
    wanted = tree_of(10)
    bdii.start(wanted)
    tree = bdii.tree
    assert tree is not None
    # the tree is changed behind the state's back without changing the contextCSN check
    # (the state is damaged instead): the resync must still repair it from the live tree
    changed = [*wanted[:-1], image("new-one")]
    doc = json.loads(bdii.state.read_text(encoding="utf-8"))
    if damage == "corrupt":
        bdii.state.write_text('{"version": 1, "keys": [', encoding="utf-8")
    elif damage == "truncated":
        doc["dns"] = doc["dns"][:-1]
        bdii.state.write_text(json.dumps(doc), encoding="utf-8")
    elif damage == "missing":
        bdii.state.unlink()
    elif damage == "foreign":
        doc["suffix"] = "o=grid"
        bdii.state.write_text(json.dumps(doc), encoding="utf-8")
    else:
        doc["version"] = 99
        bdii.state.write_text(json.dumps(doc), encoding="utf-8")
    res = bdii.publish(changed)
    assert res.mode == "full", res
    assert res.reason
    assert (res.added, res.deleted, res.failed) == (1, 1, 0)
    assert_equal(bdii.slapd, changed)
    st, why = load_state(bdii.state, "o=glue")
    if damage == "newer":
        # refused as a state (StateVersionError), then rewritten in this release's version:
        # the applied state is a cache of what slapd holds, nothing is lost
        assert json.loads(bdii.state.read_text(encoding="utf-8"))["version"] == 1
    assert st is not None
    assert why is None
    assert bdii.publish(changed).mode == "unchanged"


def test_stale_input_deletes_nothing_even_with_a_state(bdii: Bdii) -> None:
    wanted = tree_of(10)
    bdii.start(wanted)
    res = bdii.publish(wanted[:4], allow_delete=False)  # an empty/stale snapshot
    assert res.deleted == 0
    assert res.suppressed_deletes == len(wanted) - 4
    assert_equal(bdii.slapd, wanted)
    bdii.state.unlink()  # and on a full resync
    res = bdii.publish(wanted[:4], allow_delete=False)
    assert res.mode == "full"
    assert res.deleted == 0
    assert_equal(bdii.slapd, wanted)


def _bad(iid: str) -> Entry:
    e = image(iid)
    e.add("GLUE2NoSuchAttribute", "x")  # the schema refuses it
    return e


def test_failed_entry_in_slapadd_first_load_is_reported_by_dn(bdii: Bdii) -> None:
    wanted = tree_of(10)
    bad = _bad("bad-one")
    child = Entry(f"GLUE2ApplicationEnvironmentID=child,{bad.dn}")  # below the failed one
    child.add("objectClass", "GLUE2Entity", "GLUE2ApplicationEnvironment")
    child.add("GLUE2ApplicationEnvironmentID", "child").add("GLUE2EntityName", "c")
    child.add("GLUE2ApplicationEnvironmentAppName", "c")
    child.add("GLUE2ApplicationEnvironmentComputingManagerForeignKey", "m")
    res = bdii.start([*wanted[:5], bad, child, *wanted[5:]])
    assert res is not None
    failed = {f.dn: f for f in res.failures}
    assert set(failed) == {bad.dn, child.dn}
    assert "GLUE2NoSuchAttribute" in failed[bad.dn].result
    assert "parent" in failed[child.dn].result
    assert_equal(bdii.slapd, wanted)  # every other entry is served, no orphan
    # the failed entry is tried again next cycle and reported again; the rest untouched
    res = bdii.publish([*wanted[:5], bad, *wanted[5:]])
    assert [f.dn for f in res.failures] == [bad.dn]
    assert (res.added, res.modified, res.deleted) == (0, 0, 0)


def test_failed_entry_in_ldapadd_bulk_load_is_reported_by_dn(bdii: Bdii) -> None:
    wanted = tree_of(BULK_MIN)
    bad = _bad("bad-two")
    bdii.start()
    assert bdii.tree is not None
    res = bdii.publish([*wanted[:50], bad, *wanted[50:]])
    assert bdii.tree.ops["bulk_add"] == 1
    assert [(f.op, f.dn) for f in res.failures] == [("add", bad.dn)]
    assert "GLUE2NoSuchAttribute" in res.failures[0].result or "undefined" in res.failures[0].result
    assert_equal(bdii.slapd, wanted)


@pytest.mark.parametrize("c_clients", [True, False])
def test_dn_needing_escapes_goes_through_every_path(bdii: Bdii, c_clients: bool) -> None:
    odd = dnlib.normalize(ODD_DN)
    # 1. slapadd first load
    wanted = tree_of(BULK_MIN)
    bdii.start(wanted)
    assert odd in live(bdii.slapd)
    tree = bdii.connect(c_clients=c_clients)
    # 2. incremental modify of the odd entry (from LDIF records split without parsing)
    renamed = tree_of(BULK_MIN, odd_name="renamed")
    recs = split_records(render(renamed))
    assert recs is not None
    assert any(r.dn == ODD_DN for r in recs)
    res = publish(tree, "o=glue", recs, state_path=bdii.state)
    assert (res.mode, res.modified, res.failed) == ("incremental", 1, 0)
    assert live(bdii.slapd)[odd]["glue2entityname"] == {"renamed"}
    # 3. incremental delete, then add
    without = [e for e in renamed if e.dn != ODD_DN]
    res = bdii.publish(without)
    assert (res.deleted, res.failed) == (1, 0)
    assert odd not in live(bdii.slapd)
    res = bdii.publish(renamed)
    assert (res.added, res.failed) == (1, 0)
    assert odd in live(bdii.slapd)
    # 4. full resync after an outside delete of the odd entry (read of the live tree)
    tree.conn.delete(ODD_DN)
    res = bdii.publish(renamed)
    assert (res.mode, res.added, res.failed) == ("full", 1, 0)
    assert_equal(bdii.slapd, renamed)
    # 5. an emptied database refilled in bulk (ldapadd -c) or one add at a time
    bdii.stop()
    bdii.start()
    tree = bdii.connect(c_clients=c_clients)
    res = bdii.publish(renamed)
    assert (res.mode, res.failed) == ("full", 0)
    assert tree.ops["bulk_add"] == (1 if c_clients else 0)
    assert_equal(bdii.slapd, renamed)


def test_records_go_to_slapadd_as_text_and_a_refused_one_is_cleaned_or_reported(
    bdii: Bdii,
) -> None:
    wanted = tree_of(10)
    text = render([*wanted, _bad("bad-three")])
    # a record slapadd refuses as written (a repeated value) but that is fine once cleaned
    line = "GLUE2ApplicationEnvironmentID: img-00003\n"
    assert line in text
    text = text.replace(line, line + line)
    recs = split_records(text)
    assert recs is not None
    prep = prepare(recs, base="o=glue")
    items = prep.loadable()
    # all passed on as text, but the one whose RDN value is base64 in the LDIF
    assert [x.dn for x in items if isinstance(x, Entry)] == [ODD_DN]
    bdii.slapd.start({"o=glue": items})
    res = publish(
        bdii.connect(),
        "o=glue",
        recs,
        state_path=bdii.state,
        prepared=prep,
        loaded=bdii.slapd.loaded["o=glue"],
    )
    assert [f.dn for f in res.failures] == [_bad("bad-three").dn]
    assert_equal(bdii.slapd, wanted)


def test_without_slapadd_the_first_load_goes_over_ldap(tmp_path: Path) -> None:
    from dataclasses import replace

    b = Bdii(tmp_path)
    b.slapd.settings = replace(b.slapd.settings, slapadd_bin=str(tmp_path / "no-slapadd"))
    try:
        wanted = tree_of(BULK_MIN)
        prep = prepare(wanted, base="o=glue")
        b.slapd.start({"o=glue": prep.loadable()})
        assert b.slapd.loaded == {}  # not loaded: the publish path fills it
        tree = b.connect()
        res = b.publish(wanted)
        assert (res.mode, res.failed, tree.ops["bulk_add"]) == ("full", 0, 1)
        assert_equal(b.slapd, wanted)
    finally:
        b.stop()
