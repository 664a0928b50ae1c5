"""Issue 13 building blocks without slapd: DN fast path, fast LDIF parse, records, digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.bdii.publish import entry_digest, prepare, record_digest
from fedcloud_core.ldif import Entry, LdifError, _parse_lines, parse, render, split_records

DNS = [
    "GLUE2ServiceID=https://k.example.org:5000/v3?a=b,GLUE2GroupID=resource,o=Glue",
    "GLUE2ApplicationEnvironmentID=ÄÖ-é,GLUE2GroupID=resource,O=GLUE",
    "ou=People,dc=Example,dc=ORG",
    "o=glue",
    "cn=a\\,b,o=glue",
    "cn=a\\2Cb,o=glue",
    "a=1+b=2,o=glue",
    "b=2+a=1,o=glue",
    "cn=\\#x,o=glue",
    "cn=\\ lead,o=glue",
    "cn=x , o=glue",
    "cn=x;o=glue",
    'cn=\\"q\\",o=glue',
    "cn=a=b=c,o=glue",
]


@pytest.mark.parametrize("dn", DNS)
def test_normalize_fast_path_equals_the_full_parse(dn: str) -> None:
    full = ",".join(dnlib._norm_rdn(r) for r in dnlib.split_dn(dn))
    assert dnlib.normalize(dn) == full
    key = dnlib.normalize(dn)
    assert dnlib.parent_key(key) == ",".join(dnlib.split_dn(key)[1:])
    assert dnlib.key_depth(key) == len(dnlib.split_dn(key))


@pytest.mark.parametrize("dn", ["a=b,,o=glue", "=x,o=glue", "noequals,o=glue", "cn=x\\"])
def test_normalize_fast_path_keeps_the_errors(dn: str) -> None:
    with pytest.raises(dnlib.DnError):
        dnlib.normalize(dn)


def _odd_entries() -> list[Entry]:
    odd = " #odd,id+x=y é\u2028"
    return [
        Entry("o=glue").add("objectClass", "organization").add("o", "glue"),
        Entry(f"GLUE2GroupID={dnlib.escape(odd)},o=glue")
        .add("objectClass", "GLUE2Group")
        .add("GLUE2GroupID", odd)
        .add("description", "x" * 200, " lead", "trail ", ":colon", "<lt", "ünï", "a\nb"),
    ]


def test_fast_parse_equals_line_parser_and_round_trips() -> None:
    text = render(_odd_entries())
    assert parse(text) == _parse_lines(text) == _odd_entries()
    crlf = text.replace("\n", "\r\n")
    assert parse(crlf) == _odd_entries()


@pytest.mark.parametrize(
    "text",
    ["dn: o=glue\nno colon\n", "o: glue\n", "dn: o=glue\nx:: ***\n", "dn: o=x\na:< file:/\n"],
)
def test_fast_parse_errors_name_the_line(text: str) -> None:
    with pytest.raises(LdifError, match="line"):
        parse(text)


def test_split_records_gives_dns_and_texts_that_parse_back() -> None:
    entries = _odd_entries()
    recs = split_records(render(entries))
    assert recs is not None
    assert [r.dn for r in recs] == [e.dn for e in entries]
    assert [r.entry() for r in recs] == entries


@pytest.mark.parametrize(
    "text",
    [
        "# comment\ndn: o=glue\no: glue\n",
        "version: 1\n\ndn: o=glue\n",
        "dn: o=glue\r\no: glue\r\n",
        "dn: o=glue\nbroken line\n",
        "dn: o=glue\n\n\n\ndn: o=grid\n",
    ],
)
def test_split_records_declines_what_it_does_not_write(text: str) -> None:
    assert split_records(text) is None


def test_entry_digest_ignores_order_case_and_repeats_but_not_values() -> None:
    a = Entry("o=x", {"objectClass": ["a", "b"], "Desc": ["1"]})
    b = Entry("o=x", {"desc": ["1", "1"], "objectclass": ["b", "a"]})
    c = Entry("o=x", {"objectClass": ["a", "b"], "Desc": ["2"]})
    assert entry_digest(a) == entry_digest(b) != entry_digest(c)
    # values that would collide if joined naively
    d = Entry("o=x", {"a": ["x,y"]})
    e = Entry("o=x", {"a": ["x", "y"]})
    assert entry_digest(d) != entry_digest(e)


def test_prepare_rejects_by_dn_and_accepts_children_of_kept_entries() -> None:
    base = Entry("o=glue").add("objectClass", "organization").add("o", "glue")
    orphan = Entry("cn=c,cn=missing,o=glue").add("objectClass", "x")
    outside = Entry("cn=x,o=grid").add("objectClass", "x")
    dup = Entry("O=GLUE").add("objectClass", "organization")
    p = prepare([base, orphan, outside, dup], base="o=glue")
    assert {(f.dn, f.result.split(" ")[0]) for f in p.rejected} == {
        ("cn=c,cn=missing,o=glue", "parent"),
        ("cn=x,o=grid", "not"),
        ("O=GLUE", "duplicate"),
    }
    kept = prepare([base, orphan], base="o=glue", keep={"cn=missing,o=glue": True})
    assert list(kept.entries) == ["o=glue", "cn=c,cn=missing,o=glue"]
    # a record is digested by its text and parsed only on demand
    recs = split_records(render([base]))
    assert recs is not None
    pr = prepare(recs, base="o=glue")
    assert pr.digests["o=glue"] == record_digest(recs[0])
    assert pr.entry("o=glue").attrs == {"objectClass": ["organization"], "o": ["glue"]}


@pytest.mark.parametrize("dn", [*DNS, "", " o=glue ", "cn=a, o=glue", "cn=x,", ",o=glue"])
def test_split_dn_fast_path_equals_the_escape_aware_split(dn: str) -> None:
    pieces, _ = dnlib._split_unescaped(dn, ",;")
    try:
        want: list[str] | str = [dnlib._strip_unescaped(p) for p in pieces]
        if want == [""]:
            want = []
        elif any(not p for p in want):
            want = "error"
    except dnlib.DnError:
        want = "error"
    try:
        got: list[str] | str = dnlib.split_dn(dn)
    except dnlib.DnError:
        got = "error"
    assert got == want


def test_record_with_dn_keeps_the_attributes() -> None:
    entries = _odd_entries()
    recs = split_records(render(entries))
    assert recs is not None
    moved = recs[1].with_dn("cn=é moved,o=glue")
    assert moved.entry() == Entry("cn=é moved,o=glue", entries[1].attrs)


@pytest.mark.parametrize(
    "dn",
    [
        "GLUE2ServiceID=https://a:5000/v3,GLUE2GroupID=resource,o=glue",
        "GLUE2ServiceID=s,GLUE2GroupID=Resource,O=GLUE",  # other spelling: the full path
        "GLUE2ServiceID=a\\,b,GLUE2GroupID=resource,o=glue",
        "GLUE2GroupID=resource,o=glue",  # the group itself: ours is published instead
        "GLUE2ServiceID=x,GLUE2GroupID=other,o=glue",  # outside: skipped
    ],
)
def test_site_rehome_of_records_equals_the_entry_rehome(dn: str) -> None:
    from fedcloud_sitebdii import jobs, tree

    e = Entry(dn).add("objectClass", "GLUE2Service")
    recs = split_records(render([e]))
    assert recs is not None
    base = "GLUE2GroupID=resource,o=glue"
    moved, skipped = jobs.rehome(recs, "SITE", base)
    want, want_skipped = tree.rehome([e], "SITE", base)
    assert skipped == want_skipped
    assert [dnlib.normalize(m.dn) for m in moved] == [dnlib.normalize(w.dn) for w in want]
    assert [m.entry().attrs for m in moved if hasattr(m, "entry")] == [w.attrs for w in want]


def test_snapshot_read_again_only_when_its_content_changed(tmp_path: Path) -> None:
    import os

    from fedcloud_core.bdii.snapshot_reader import Health, load_snapshot

    group = Entry("GLUE2GroupID=resource,o=glue").add("objectClass", "GLUE2Group")
    img = Entry("GLUE2ApplicationEnvironmentID=i,GLUE2GroupID=resource,o=glue")
    img.add("objectClass", "GLUE2ApplicationEnvironment")
    path = tmp_path / "snapshot.ldif"

    def write(entries: list[Entry]) -> None:  # as cloud-info does: a new file renamed over
        tmp = tmp_path / "new.ldif"
        tmp.write_text(render(entries), encoding="utf-8")
        tmp.replace(path)

    kw = {"max_age": 3600.0, "base": "GLUE2GroupID=resource,o=glue", "records": True}
    write([group, img])
    first = load_snapshot(path, **kw)
    assert first.health is Health.OK
    assert [r.dn for r in first.records] == [group.dn, img.dn]
    again = load_snapshot(path, **kw)  # same file: not read again, same records
    assert again.records is first.records
    assert again.digest == first.digest
    write([group, img])  # the same content rewritten
    same = load_snapshot(path, **kw)
    assert same.records is first.records
    assert same.digest == first.digest
    old = path.stat().st_mtime - 7200  # older than max_age: stale, and so another digest
    os.utime(path, (old, old))
    stale = load_snapshot(path, **kw)
    assert stale.health is Health.STALE
    assert stale.digest != first.digest
    write([group])  # other content: read and split again
    empty = load_snapshot(path, **kw)
    assert empty.health is Health.EMPTY
    assert [r.dn for r in empty.records] == [group.dn]
