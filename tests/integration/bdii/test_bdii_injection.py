"""Issue 18 defect 2 against a real slapd: an image name (and an ID) full of line breaks.

cloud-info collects a cloud whose image name carries every character some reader
takes as a line break, shaped as a second entry; bdii-update loads the snapshot into
a real slapd; the real ldapsearch and the site BDII's source reader (LDAP -> cached
LDIF -> parse) must see exactly one image entry with the exact name, and no other DN.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedcloud_cloudinfo import bdii_update
from fedcloud_cloudinfo.collect import CollectOptions, collect
from fedcloud_cloudinfo.render.glue20 import glue20_entries
from fedcloud_cloudinfo.source import RawFlavor, RawImage
from fedcloud_core.bdii.dn import normalize
from fedcloud_core.bdii.ldap import Ldap3Tree, connect
from fedcloud_core.bdii.slapd import Slapd
from fedcloud_core.config import parse_config
from fedcloud_core.jobs import JobContext
from fedcloud_core.ldif import Record, parse, render
from fedcloud_core.report import RunReport
from fedcloud_sitebdii.source import SourceState, query
from integration.bdii.bdii_testlib import ldapsearch
from unit.cloudinfo.cloudinfo_fakes import MPURI, NOW, FakeSource

pytestmark = pytest.mark.integration

BREAKERS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\r\n"
EVIL_DN = "GLUE2ApplicationEnvironmentID=evil,GLUE2GroupID=resource,o=glue"


def evil_name(sep: str) -> str:
    """Split at ``sep``: a blank line, then a second entry. ASCII-only when ``sep`` is."""
    return f"Ubuntu 22.04{sep}{sep}dn: {EVIL_DN}{sep}objectClass: GLUE2Entity{sep}x "


def _config(state_dir: Path) -> Any:
    data = {
        "site": {"name": "TEST-SITE"},
        "paths": {"state_dir": str(state_dir)},
        "vos": {"ops": {"projects": ["ops-project"]}, "fedcloud.egi.eu": {"projects": ["p-fc"]}},
    }
    return parse_config(yaml.safe_dump(data), environ={})


def _bdii_update(slapd: Slapd, cfg: Any) -> tuple[RunReport, int]:
    tree = Ldap3Tree(connect(slapd.url, bind_dn=slapd.rootdn(), password=slapd.password))
    ctx = JobContext(
        config=cfg,
        options=argparse.Namespace(),
        deps=bdii_update.BdiiUpdateDeps(trees={"o=glue": tree}),
    )
    try:
        return bdii_update.run(ctx), tree.writes
    finally:
        tree.close()


def test_evil_image_name_and_flavor_id_load_as_exactly_one_entry_each(
    resource_slapd: Slapd, state_dir: Path
) -> None:
    cfg = _config(state_dir)
    src = FakeSource()
    names = {f"i-{n}": evil_name(sep) for n, sep in enumerate(BREAKERS)}
    src.image_list = [
        RawImage(i, name, "public", "p-admin", {"marketplace": MPURI.format(i)})
        for i, name in names.items()
    ]
    flavor_id = "f\x0c1,\x1cx"  # goes into a DN (GLUE2ResourceID=...)
    src.flavor_list = [RawFlavor(flavor_id, "m1\x0bsmall", 1, 2048, 20)]
    report = RunReport(job="cloud-info")
    site = collect(src, cfg, report, CollectOptions(), now=NOW)
    assert {i.id: i.name for i in site.images} == names
    text = render(glue20_entries(site))
    entries = parse(text)
    snap = state_dir / "cloud-info" / "snapshot.ldif"
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.write_text(text, encoding="utf-8")

    up, writes = _bdii_update(resource_slapd, cfg)
    assert up.errors == [], up.errors
    assert writes > 0

    served = ldapsearch(resource_slapd.url, "o=glue")  # the real client
    assert {normalize(e.dn) for e in served} == {normalize(e.dn) for e in entries}
    assert normalize(EVIL_DN) not in {normalize(e.dn) for e in served}
    assert _images(served) == {i: [name] for i, name in names.items()}  # one entry each
    (flavor,) = [e for e in served if "GLUE2ExecutionEnvironment" in e.get("objectClass")]
    assert flavor.get("GLUE2ResourceID") == [flavor_id]
    assert flavor.get("GLUE2EntityName") == ["m1\x0bsmall"]

    # slapd's spelling of the escaped DNs compares equal to ours: the next cycle writes nothing
    again, writes = _bdii_update(resource_slapd, cfg)
    assert again.errors == []
    assert writes == 0

    # the site BDII's reader: LDAP -> cached LDIF -> parse gives the same single image
    for attempt in ("live", "cached"):
        fetch = None if attempt == "live" else _silent
        kw = {} if fetch is None else {"fetch": fetch}
        got = query(
            f"{resource_slapd.url}/GLUE2GroupID=resource,o=glue",
            cache_dir=state_dir / "site-cache",
            keep_for=600,
            timeout=10,
            **kw,
        )
        assert got.state is (SourceState.OK if attempt == "live" else SourceState.KEPT)
        assert _images(got.entries) == {i: [name] for i, name in names.items()}, attempt
        assert normalize(EVIL_DN) not in {normalize(e.dn) for e in got.entries}


def _images(entries: list[Any]) -> dict[str, list[str]]:
    """Image ID -> names, over every image entry (a duplicate ID would fail the count).
    LDIF records (the site BDII's reader keeps them unparsed) are parsed here."""
    entries = [e.entry() if isinstance(e, Record) else e for e in entries]
    imgs = [e for e in entries if "GLUE2ApplicationEnvironment" in e.get("objectClass")]
    out = {e.first("GLUE2ApplicationEnvironmentID"): e.get("GLUE2EntityName") for e in imgs}
    assert len(out) == len(imgs)
    return out


def _silent(*_: Any) -> list[Any]:
    raise OSError("resource BDII silent (test)")
