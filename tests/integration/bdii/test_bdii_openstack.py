"""End to end on the real local OpenStack: testbed -> cloud-info -> bdii-update (own slapd) -> ldapsearch.

Expected figures come from the snapshots cloud-info writes (parsed independently),
never from hard-coded results; the OpenStack changes are made and undone here.
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedcloud_cloudinfo import bdii_update
from fedcloud_cloudinfo.jobs import CLOUD_INFO_JOB
from fedcloud_core.bdii.dn import normalize
from fedcloud_core.config import AppConfig, parse_config
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.ldif import Entry, parse
from fedcloud_core.report import RunReport, RunStatus
from integration.bdii.bdii_testlib import context_csn, free_port, ldapsearch

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The 'interface' argument is deprecated:UserWarning"),
]


def make_config(
    seed: dict[str, Any], state: Path, port: int, clouds_yaml: str | None = None
) -> AppConfig:
    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in sorted(seed["vo_map"].items()):
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    doc = {
        "site": {"name": "TEST-SITE"},
        "openstack": {"cloud": "testbed-admin", "clouds_yaml": clouds_yaml or seed["clouds_yaml"]},
        "vos": vos,
        "paths": {"state_dir": str(state)},
        "cloud_info": {"timeout": 60},
        "bdii": {"port": port, "maxsize_mb": 64},
    }
    return parse_config(json.dumps(doc), source="testbed", environ={})


def cycle(cfg: AppConfig) -> tuple[RunReport, RunReport]:
    ci = execute(
        CLOUD_INFO_JOB,
        JobContext(
            config=cfg, options=argparse.Namespace(format=None, output=None, all_images=None)
        ),
        store=False,
    )
    bu = bdii_update.run(JobContext(config=cfg, options=argparse.Namespace(with_slapd=True)))
    return ci, bu


def snapshot_entries(cfg: AppConfig) -> dict[str, dict[str, set[str]]]:
    text = (cfg.paths.state_dir / "cloud-info" / "snapshot.ldif").read_text(encoding="utf-8")
    return by_dn(parse(text))


def by_dn(entries: list[Entry]) -> dict[str, dict[str, set[str]]]:
    return {normalize(e.dn): {k.lower(): set(v) for k, v in e.attrs.items()} for e in entries}


def expected_ops(
    old: dict[str, dict[str, set[str]]], new: dict[str, dict[str, set[str]]]
) -> tuple[int, int, int]:
    added = len(set(new) - set(old))
    deleted = len(set(old) - set(new))
    modified = sum(1 for k in set(new) & set(old) if new[k] != old[k])
    return added, modified, deleted


def writes(r: RunReport) -> tuple[int, int, int]:
    return int(r.counts["added"]), int(r.counts["modified"]), int(r.counts["deleted"])


def test_openstack_to_resource_bdii(testbed: Any, tmp_path: Path, supervised_cleanup: None) -> None:
    seed = testbed.seed
    port = free_port()
    cfg = make_config(seed, tmp_path / "state", port)
    url = f"ldap://127.0.0.1:{port}"

    ci, bu = cycle(cfg)
    assert ci.status is RunStatus.OK, ci.render_text()
    assert bu.errors == [], bu.render_text()
    assert bu.counts["failed"] == 0
    snap = snapshot_entries(cfg)
    served = by_dn(ldapsearch(url, "o=glue"))
    assert set(snap) <= set(served)
    assert len(served) == len(snap | by_dn(bdii_update.base_entries()))
    for dn, attrs in snap.items():
        assert served[dn] == attrs, dn
    classes = {c.lower() for e in served.values() for c in e["objectclass"]}
    assert {
        "glue2computingservice",
        "glue2computingendpoint",
        "glue2accesspolicy",
        "glue2computingmanager",
        "glue2executionenvironment",
        "glue2applicationenvironment",
        "glue2computingshare",
        "glue2mappingpolicy",
    } <= classes

    # a cycle with no change in OpenStack writes nothing
    csn = context_csn(url)
    ci, bu = cycle(cfg)
    assert ci.status is RunStatus.OK
    assert writes(bu) == (0, 0, 0), bu.render_text()
    assert context_csn(url) == csn

    # a new flavor and a new marketplace image appear; once deleted, they disappear: minimal operations
    sess = testbed.admin_session()
    nova, glance = testbed.nova(sess), testbed.glance(sess)
    tag = uuid.uuid4().hex[:8]
    flavor = nova.flavors.create(f"bdii-e2e-{tag}", 512, 1, 1)
    image = glance.images.create(
        name=f"bdii-e2e-{tag}",
        disk_format="raw",
        container_format="bare",
        visibility="public",
        vmcatcher_event_ad_mpuri=f"https://appdb.example.org/store/vo/image/{tag}/",
    )
    try:
        glance.images.upload(image["id"], io.BytesIO(b"\0" * 4096))
        before = snap
        ci, bu = cycle(cfg)
        assert ci.status is RunStatus.OK, ci.render_text()
        after = snapshot_entries(cfg)
        added, modified, deleted = expected_ops(before, after)
        assert added >= 2
        assert deleted == 0
        assert writes(bu) == (added, modified, deleted)
        ids = {
            v
            for e in after.values()
            for k in ("glue2resourceid", "glue2applicationenvironmentid")
            for v in e.get(k, set())
        }
        assert {flavor.id, image["id"]} <= ids
    finally:
        flavor.delete()
        glance.images.delete(image["id"])
    ci, bu = cycle(cfg)
    assert ci.status is RunStatus.OK
    final = snapshot_entries(cfg)
    assert writes(bu) == expected_ops(after, final)
    assert bu.counts["deleted"] >= 2
    assert bu.errors == []
    assert (
        by_dn(ldapsearch(url, "o=glue")).keys()
        == final.keys() | by_dn(bdii_update.base_entries()).keys()
    )

    # OpenStack unreachable: cloud-info fails, the snapshot and the published data stay
    clouds = yaml.safe_load(Path(seed["clouds_yaml"]).read_text())
    clouds["clouds"]["testbed-admin"]["auth"]["auth_url"] = f"http://127.0.0.1:{free_port()}/v3"
    dead = tmp_path / "clouds-dead.yaml"
    dead.write_text(yaml.safe_dump(clouds))
    dead_cfg = make_config(seed, tmp_path / "state", port, clouds_yaml=str(dead))
    snap_file = tmp_path / "state" / "cloud-info" / "snapshot.ldif"
    mtime, csn = snap_file.stat().st_mtime, context_csn(url)
    ci, bu = cycle(dead_cfg)
    assert ci.status is RunStatus.FAILED
    assert snap_file.stat().st_mtime == mtime
    assert writes(bu) == (0, 0, 0)
    assert bu.errors == []
    assert context_csn(url) == csn
    assert (
        by_dn(ldapsearch(url, "o=glue")).keys()
        == final.keys() | by_dn(bdii_update.base_entries()).keys()
    )
