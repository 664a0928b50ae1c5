"""Snapshot health, the site tree and the resource BDII cache, with fakes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedcloud_core.bdii.errors import LdapUnavailable
from fedcloud_core.bdii.ldap import LdapUrl
from fedcloud_core.bdii.slapd import SlapdSettings, hash_password, render_config
from fedcloud_core.bdii.snapshot_reader import Health, load_snapshot
from fedcloud_core.config.site import SiteConfig
from fedcloud_core.ldif import Entry
from fedcloud_sitebdii import source, tree

pytestmark = pytest.mark.unit

BASE = "GLUE2GroupID=resource,o=glue"
SVC = Entry(
    f"GLUE2ServiceID=s,{BASE}",
    {"objectClass": ["GLUE2Service"], "GLUE2ServiceAdminDomainForeignKey": ["X"]},
)
EP = Entry(
    f"GLUE2EndpointID=e,GLUE2ServiceID=s,{BASE}",
    {"objectClass": ["GLUE2Entity", "GLUE2Endpoint"], "GLUE2EndpointHealthState": ["ok"]},
)


def test_snapshot_health(tmp_path: Path) -> None:
    p = tmp_path / "snap.ldif"
    assert load_snapshot(p, max_age=60, base=BASE).health is Health.MISSING
    p.write_text("dn: o=glue\no: glue\n")
    assert load_snapshot(p, max_age=60, base=BASE).health is Health.EMPTY
    p.write_text("dn: o=glue\nbroken\n")
    assert load_snapshot(p, max_age=60, base=BASE).health is Health.INVALID
    p.write_text(f"dn: {SVC.dn}\nobjectClass: GLUE2Service\n")
    snap = load_snapshot(p, max_age=60, base=BASE)
    assert snap.health is Health.OK
    assert snap.authoritative
    old = p.stat().st_mtime - 120
    os.utime(p, (old, old))
    snap = load_snapshot(p, max_age=60, base=BASE)
    assert snap.health is Health.STALE
    assert snap.usable
    assert not snap.authoritative


def test_static_entries_and_rehome() -> None:
    site = SiteConfig(
        name="S1",
        url="https://s.example",
        country="DE",
        latitude=1.5,
        contacts={"security": "sec@s.example"},
    )
    entries = tree.static_entries(site)
    dns = [e.dn for e in entries]
    assert dns == [
        "o=glue",
        "GLUE2DomainID=S1,o=glue",
        "GLUE2LocationID=S1-location,GLUE2DomainID=S1,o=glue",
        "GLUE2ContactID=S1-security,GLUE2DomainID=S1,o=glue",
        "GLUE2GroupID=resource,GLUE2DomainID=S1,o=glue",
    ]
    assert entries[3].get("GLUE2ContactDetail") == ["mailto:sec@s.example"]
    moved, skipped = tree.rehome([Entry("o=glue"), Entry(BASE), SVC, EP], "S1")
    assert skipped == 2
    assert [e.dn for e in moved] == [
        "GLUE2ServiceID=s,GLUE2GroupID=resource,GLUE2DomainID=S1,o=glue",
        "GLUE2EndpointID=e,GLUE2ServiceID=s,GLUE2GroupID=resource,GLUE2DomainID=S1,o=glue",
    ]
    assert tree.foreign_domains(moved, "S1") == {"X"}
    marked = tree.mark_unknown(moved)
    assert marked[1].get("GLUE2EndpointHealthState") == ["unknown"]
    assert moved[1].get("GLUE2EndpointHealthState") == ["ok"]  # input untouched
    assert marked[0].attrs == moved[0].attrs


def test_bdii_site_endpoint() -> None:
    svc, ep = tree.bdii_site_entries(
        SiteConfig(name="S1"), "bdii.s.example", 2170, quality="production"
    )
    assert ep.first("GLUE2EndpointURL") == "ldap://bdii.s.example:2170/GLUE2DomainID=S1,o=glue"
    assert ep.first("GLUE2EndpointInterfaceName") == "bdii_site"
    assert svc.first("GLUE2ServiceAdminDomainForeignKey") == "S1"


def test_source_keeps_then_drops(tmp_path: Path) -> None:
    calls: list[str] = []

    def up(url: LdapUrl, base: str, timeout: int) -> list[Entry]:
        calls.append(base)
        return [Entry(BASE), SVC]

    def down(url: LdapUrl, base: str, timeout: int) -> list[Entry]:
        raise LdapUnavailable("connection refused")

    def empty(url: LdapUrl, base: str, timeout: int) -> list[Entry]:
        return []

    kw = {"cache_dir": tmp_path, "keep_for": 100, "timeout": 1}
    assert source.query("ldap://r:2170", fetch=up, **kw).state is source.SourceState.OK
    assert calls == [BASE]
    kept = source.query("ldap://r:2170", fetch=down, **kw)
    assert kept.state is source.SourceState.KEPT
    assert len(kept.entries) == 2
    assert "refused" in (kept.problem or "")
    assert source.query("ldap://r:2170", fetch=empty, **kw).state is source.SourceState.KEPT
    later = source.query("ldap://r:2170", fetch=down, now=kept_time(tmp_path) + 101, **kw)
    assert later.state is source.SourceState.DROPPED
    assert "dropped" in (later.problem or "")
    never = source.query("ldap://other:2170", fetch=down, **kw)
    assert never.state is source.SourceState.DROPPED
    assert "no earlier data" in (never.problem or "")


def kept_time(cache_dir: Path) -> float:
    return next(cache_dir.glob("*.ldif")).stat().st_mtime


def test_source_base_from_url() -> None:
    assert source.source_base(LdapUrl.parse("ldap://h:2170/o=glue")) == BASE
    assert source.source_base(LdapUrl.parse("ldap://h:2170/mds-vo-name=resource,o=grid")) == BASE
    assert (
        source.source_base(LdapUrl.parse("ldap://h/GLUE2GroupID=x,o=glue"))
        == "GLUE2GroupID=x,o=glue"
    )
    with pytest.raises(ValueError, match="not an ldap"):
        LdapUrl.parse("http://h:2170")


def test_render_config_hashes_the_password(tmp_path: Path) -> None:
    s = SlapdSettings(role="unit", host="127.0.0.1", port=2170, data_dir=tmp_path, maxsize_mb=2048)
    h = hash_password("s3cret", salt=b"12345678")
    text = render_config(s, h)
    assert h.startswith("{SSHA}")
    assert "s3cret" not in text
    assert text.count(f"rootpw          {h}") == 3
    assert f"maxsize         {2048 * 1024 * 1024}" in text
    assert 'suffix          "o=glue"' in text
    assert "include         /etc/ldap/schema/GLUE20.schema" in text
    assert "GLUE2ApplicationEnvironmentID" in text
    assert "GLUE2PolicyRule" in text
