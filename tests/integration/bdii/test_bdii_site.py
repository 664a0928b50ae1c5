"""site-bdii against real slapds: a resource BDII and the site BDII on two free ports of 127.0.0.1."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedcloud_core.bdii.dn import normalize
from fedcloud_core.bdii.ldap import Ldap3Tree, connect
from fedcloud_core.bdii.slapd import Slapd
from fedcloud_core.bdii.sync import sync
from fedcloud_core.config import AppConfig, parse_config
from fedcloud_core.jobs import JobContext
from fedcloud_core.ldif import Entry, parse
from fedcloud_core.report import RunReport
from fedcloud_sitebdii import jobs as site_jobs
from fedcloud_sitebdii import source
from integration.bdii.bdii_testlib import (
    context_csn,
    example_text,
    free_port,
    ldapsearch,
    new_slapd,
)

pytestmark = pytest.mark.integration

SITE = "TEST-SITE"
DOMAIN = f"GLUE2DomainID={SITE},o=glue"


def load(slapd: Slapd, entries: list[Entry]) -> None:
    tree = Ldap3Tree(connect(slapd.url, bind_dn=slapd.rootdn(), password=slapd.password))
    try:
        assert sync(tree, "o=glue", entries).failed == 0
    finally:
        tree.close()


@pytest.fixture
def resource(tmp_path: Path) -> Iterator[Slapd]:
    """A resource BDII of its own (these tests stop it), loaded with the example tree."""
    s = new_slapd(tmp_path / "resource")
    s.start()
    load(s, parse(example_text()))
    yield s
    s.stop()


def site_config(state_dir: Path, resource_url: str, port: int, **extra: Any) -> AppConfig:
    data = {
        "site": {
            "name": SITE,
            "description": "A test cloud site",
            "url": "https://cloud.example.org",
            "country": "NL",
            "city": "Amsterdam",
            "latitude": 52.37,
            "longitude": 4.9,
            "contacts": {
                "general": "grid-admin@example.org",
                "security": "security@example.org",
                "sysadmin": "sysadmin@example.org",
                "usersupport": "support@example.org",
            },
        },
        "paths": {"state_dir": str(state_dir)},
        "site_bdii": {
            "resource_bdiis": [resource_url],
            "port": port,
            "public_hostname": "bdii.example.org",
            "keep_missing_for": 600,
            "maxsize_mb": 64,
            **extra,
        },
    }
    return parse_config(yaml.safe_dump(data), environ={})


def run_site(cfg: AppConfig) -> RunReport:
    return site_jobs.run(JobContext(config=cfg, options=argparse.Namespace(with_slapd=True)))


def endpoint_states(url: str) -> dict[str, str]:
    found = ldapsearch(
        url,
        DOMAIN,
        "(objectClass=GLUE2Endpoint)",
        "GLUE2EndpointInterfaceName",
        "GLUE2EndpointHealthState",
    )
    return {
        e.first("GLUE2EndpointInterfaceName") or "": e.first("GLUE2EndpointHealthState") or ""
        for e in found
    }


def test_site_bdii_aggregates_and_answers_the_domain_base(
    resource: Slapd, tmp_path: Path, supervised_cleanup: None
) -> None:
    port = free_port()
    cfg = site_config(tmp_path / "state", resource.url, port)
    report = run_site(cfg)
    assert report.errors == [], report.errors
    assert report.details["publish"] == "loaded"  # the same path as the resource BDII
    url = f"ldap://127.0.0.1:{port}"

    got = {normalize(e.dn): e for e in ldapsearch(url, DOMAIN)}
    # every resource entry below the resource group, re-homed (images included)
    for e in parse(example_text()):
        if e.dn in ("o=glue", "GLUE2GroupID=resource,o=glue"):
            continue
        new = e.dn.replace("GLUE2GroupID=resource,o=glue", f"GLUE2GroupID=resource,{DOMAIN}")
        assert normalize(new) in got, new
        assert {k.lower(): set(v) for k, v in got[normalize(new)].attrs.items()} == {
            k.lower(): set(v) for k, v in e.attrs.items()
        }
    assert any(k.startswith("glue2applicationenvironmentid=") for k in got)
    dom = got[normalize(DOMAIN)]
    assert set(dom.get("objectClass")) == {"GLUE2Domain", "GLUE2AdminDomain"}
    assert dom.first("GLUE2DomainWWW") == "https://cloud.example.org"
    loc = next(e for e in got.values() if "GLUE2Location" in e.get("objectClass"))
    assert (loc.first("GLUE2LocationCountry"), loc.first("GLUE2LocationLatitude")) == (
        "NL",
        "52.37",
    )
    contacts = {
        e.first("GLUE2ContactType"): e.first("GLUE2ContactDetail")
        for e in got.values()
        if "GLUE2Contact" in e.get("objectClass")
    }
    assert contacts == {
        "general": "mailto:grid-admin@example.org",
        "security": "mailto:security@example.org",
        "sysadmin": "mailto:sysadmin@example.org",
        "usersupport": "mailto:support@example.org",
    }
    site_ep = next(e for e in got.values() if e.first("GLUE2EndpointInterfaceName") == "bdii_site")
    assert site_ep.first("GLUE2EndpointURL") == f"ldap://bdii.example.org:2170/{DOMAIN}"
    assert (
        len(got) == 11 + 1 + 1 + 4 + 1 + 2
    )  # resource entries, domain, location, contacts, group, bdii_site
    # the GOCDB-style base answers too
    assert (
        ldapsearch(url, f"mds-vo-name={SITE},o=grid", "-s", "base")[0].first("mds-vo-name") == SITE
    )

    csn = context_csn(url)
    again = run_site(cfg)
    assert (again.counts["added"], again.counts["modified"], again.counts["deleted"]) == (0, 0, 0)
    assert again.details["publish"] == "unchanged"
    assert again.counts["sources_unchanged"] == 1  # its contextCSN did not move: not read
    assert context_csn(url) == csn


def test_change_at_the_resource_bdii_reaches_the_site(
    resource: Slapd, tmp_path: Path, supervised_cleanup: None
) -> None:
    port = free_port()
    cfg = site_config(tmp_path / "state", resource.url, port)
    assert run_site(cfg).errors == []
    entries = parse(example_text())
    image = next(e for e in entries if e.dn.startswith("GLUE2ApplicationEnvironmentID="))
    image.attrs["GLUE2EntityName"] = ["renamed at the resource BDII"]
    load(resource, entries)  # the resource BDII's contextCSN moves
    report = run_site(cfg)
    assert report.errors == []
    assert "sources_unchanged" not in report.counts
    assert (report.counts["modified"], report.details["publish"]) == (1, "incremental")
    url = f"ldap://127.0.0.1:{port}"
    names = {e.first("GLUE2EntityName") for e in ldapsearch(url, DOMAIN)}
    assert "renamed at the resource BDII" in names


def test_silent_resource_bdii_is_kept_as_unknown_then_dropped(
    resource: Slapd, tmp_path: Path, supervised_cleanup: None
) -> None:
    port = free_port()
    state = tmp_path / "state"
    cfg = site_config(state, resource.url, port, keep_missing_for=300, timeout=2)
    url = f"ldap://127.0.0.1:{port}"
    assert run_site(cfg).errors == []
    assert endpoint_states(url) == {"org.openstack.nova": "ok", "bdii_site": "ok"}
    full = len(ldapsearch(url, DOMAIN))

    resource.stop()
    kept = run_site(cfg)
    assert kept.errors == []
    assert kept.counts["sources_kept"] == 1
    assert any("kept" in w for w in kept.warnings)
    assert endpoint_states(url) == {"org.openstack.nova": "unknown", "bdii_site": "ok"}
    assert len(ldapsearch(url, DOMAIN)) == full
    assert kept.counts["modified"] == 1  # only the endpoint's health changed

    # the silence lasts longer than keep_missing_for: the resource BDII's data is dropped
    cache = next((state / "site-bdii" / "cache").glob("*.ldif"))
    old = cache.stat().st_mtime - 301
    os.utime(cache, (old, old))
    dropped = run_site(cfg)
    assert dropped.counts["sources_dropped"] == 1
    assert any("dropped" in e for e in dropped.errors)
    left = ldapsearch(url, DOMAIN)
    assert len(left) == 1 + 1 + 4 + 1 + 2
    assert dropped.counts["deleted"] == 11
    assert endpoint_states(url) == {"bdii_site": "ok"}
    assert source.SourceState.DROPPED.value == dropped.details["sources"][resource.url]
