"""The EGI-profile figures against the real testbed (issue 14 part 1).

With the admin cloud: the rendered GLUE 2.0 LDIF passes the contract's rules (totals = sums,
mandatory attributes, enumerations) and carries real hypervisor totals and quota usage. With
the reader user (a project reader, not an admin): the quota usage of its project is readable
in the same single quota call, the hypervisor list is not (403), and the collection then
publishes placeholders without reporting an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contract.cloudinfo.test_egi_consumers_contract import glue2_problems
from fedcloud_cloudinfo import collect as collect_mod
from fedcloud_cloudinfo.collect import CollectOptions, collect
from fedcloud_cloudinfo.render import RENDERERS
from fedcloud_cloudinfo.source import OpenStackSource
from fedcloud_core import ldif
from fedcloud_core.config import AppConfig, parse_config
from fedcloud_core.errors import PermanentError
from fedcloud_core.openstack import OpenStackClients
from fedcloud_core.report import RunReport

pytestmark = [pytest.mark.integration]


def _config(seed: dict[str, Any], cloud: str, state: Path) -> AppConfig:
    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in sorted(seed["vo_map"].items()):
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    doc = {
        "site": {"name": "TEST-SITE"},
        "openstack": {"cloud": cloud, "clouds_yaml": seed["clouds_yaml"]},
        "vos": vos,
        "paths": {"state_dir": str(state)},
        "cloud_info": {"timeout": 120},
    }
    return parse_config(json.dumps(doc), source="testbed", environ={})


def _source(cfg: AppConfig) -> OpenStackSource:
    # the testbed listens on 127.0.0.1; a site publishes its public Keystone URL
    return OpenStackSource(
        OpenStackClients.from_config(cfg.openstack),
        endpoint_url="https://keystone.testbed.example.org:5000/v3",
    )


def test_admin_collection_passes_the_egi_rules(seed: dict[str, Any], tmp_path: Path) -> None:
    cfg = _config(seed, "testbed-admin", tmp_path)
    report = RunReport(job="t")
    site = collect(_source(cfg), cfg, report, CollectOptions(timeout=120))
    assert report.errors == []
    assert site.total_logical_cpus is not None
    assert site.total_logical_cpus > 0
    entries = ldif.parse(RENDERERS["glue20-ldif"](site))
    assert glue2_problems(entries) == []
    (mgr,) = [e for e in entries if "GLUE2ComputingManager" in e.get("objectClass")]
    assert mgr.first("GLUE2ComputingManagerTotalLogicalCPUs") == str(site.total_logical_cpus)
    for share in site.shares:
        assert share.used_cores is not None  # quota-set detail: usage in the same call
        assert share.total == share.running + share.waiting + share.suspended + share.halted


def test_reader_gets_usage_and_placeholders_not_errors(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    cfg = _config(seed, "testbed-reader", tmp_path)
    src = _source(cfg)
    with pytest.raises(PermanentError, match="403"):
        src.capacity()
    assert collect_mod._capacity(src) == {}  # what collect() publishes: placeholders
    readable = 0
    for pid in seed["vo_map"]:
        try:
            quotas = src.quotas(pid)
        except PermanentError:
            continue  # a project the reader has no role in
        readable += 1
        assert "cores_in_use" in quotas
    assert readable >= 1
