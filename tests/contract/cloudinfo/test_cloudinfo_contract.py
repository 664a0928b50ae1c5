"""Contract: golden outputs of the three renderers, and every rendered LDIF loads into a
real slapd with Debian's GLUE 2.0 schema (GLUE 2.1 with the project's schema added)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from fedcloud_cloudinfo.collect import CollectOptions, collect
from fedcloud_cloudinfo.render import RENDERERS
from fedcloud_core import ldif
from fedcloud_core.config import parse_config
from fedcloud_core.report import RunReport
from unit.cloudinfo.cloudinfo_fakes import FakeSource, fixed_site

pytestmark = pytest.mark.contract

GOLDEN = Path(__file__).parent / "golden"
FILES = {"glue20-ldif": "glue20.ldif", "glue21-ldif": "glue21.ldif", "glue21-json": "glue21.json"}
SCHEMA21 = (
    Path(__file__).resolve().parents[3] / "services" / "fedcloud_cloudinfo" / "GLUE21-cloud.schema"
)


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_golden(fmt: str) -> None:
    text = RENDERERS[fmt](fixed_site())
    golden = GOLDEN / FILES[fmt]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), (
        f"{fmt} differs from {golden} (UPDATE_GOLDEN=1)"
    )
    assert RENDERERS[fmt](fixed_site()) == text  # deterministic


def test_json_has_what_cloud_info_api_reads() -> None:
    doc = json.loads(RENDERERS["glue21-json"](fixed_site()))
    svc = doc["CloudComputingService"][0]
    assert svc["CreationTime"] == "2026-11-21T10:00:00Z"
    assert svc["Validity"] == 43200
    assert svc["OtherInfo"]["gocdb_id"] == "12345G0"
    assert svc["Associations"]["AdminDomain"] == ["TEST-SITE"]
    assert doc["CloudComputingEndpoint"][0]["URL"] == "https://keystone.example.org:5000/v3"
    shares = {s["ProjectID"]: s for s in doc["Share"]}
    assert set(shares) == {"4a5b6c7d", "9e8d7c6b"}
    mp = {
        m["Associations"]["Share"][0]: m["Associations"]["PolicyUserDomain"][0]
        for m in doc["MappingPolicy"]
    }
    assert mp == {s["ID"]: s["ID"].split("_share_")[1].rsplit("_", 1)[0] for s in doc["Share"]}
    img = {i["ID"]: i for i in doc["CloudComputingImage"]}
    assert len(img["3b1f6f0e"]["Associations"]["Share"]) == 2
    assert img["9a9a9a9a"]["Associations"]["Share"] == [shares["9e8d7c6b"]["ID"]]
    assert img["3b1f6f0e"]["MarketplaceURL"].startswith("https://appdb.egi.eu/")
    assert img["3b1f6f0e"]["OtherInfo"]["base_mpuri"].endswith("xxxx:1234/")
    its = {i["Name"]: i for i in doc["CloudComputingInstanceType"]}
    assert its["g1.large"]["Associations"]["Share"] == [shares["9e8d7c6b"]["ID"]]
    assert doc["CloudComputingVirtualAccelerator"][0]["Model"] == "A100"


def _schema_attrs(path: Path) -> set[str]:
    return {
        m.lower()
        for m in re.findall(r"NAME \(?\s*'([A-Za-z0-9]+)'", path.read_text(encoding="utf-8"))
    }


def test_glue21_renderer_uses_only_declared_names() -> None:
    declared = _schema_attrs(SCHEMA21) | _schema_attrs(Path("/etc/ldap/schema/GLUE20.schema"))
    declared |= {"objectclass", "o", "organization"}
    used: set[str] = set()
    for e in ldif.parse(RENDERERS["glue21-ldif"](fixed_site())):
        used |= {a.lower() for a in e.attrs}
        used |= {v.lower() for v in e.get("objectClass")}
    assert used - declared == set()
    assert any(n.startswith("glue2cloudcomputing") for n in used)


def _site_from_fake():
    cfg = parse_config(
        "site: {name: TEST-SITE}\nvos: {ops: {projects: [ops-project]}, fedcloud.egi.eu: {projects: [p-fc]}}\n",
        source="test",
        environ={},
    )
    return collect(FakeSource(), cfg, RunReport(job="t"), CollectOptions(publish_all_images=True))


def _assert_loads(slapd, text: str, name: str) -> None:
    slapd.wipe()
    res = slapd.load(text, name)
    n = len(ldif.parse(text))
    assert res.skipped == "", f"slapd rejected entries:\n{res.skipped}\n{res.stderr}"
    assert res.returncode == 0, res.stderr
    assert res.added == n
    found = slapd.search("o=glue", "(objectClass=*)", "dn")
    assert found.count("dn:") == n


@pytest.mark.parametrize("which", ["fixed", "collected"])
def test_glue20_loads_into_debian_schema(slapd_glue20, which: str) -> None:
    site = fixed_site() if which == "fixed" else _site_from_fake()
    _assert_loads(slapd_glue20, RENDERERS["glue20-ldif"](site), f"g20-{which}")


@pytest.mark.parametrize("which", ["fixed", "collected"])
def test_glue21_loads_with_project_schema(slapd_glue21, which: str) -> None:
    site = fixed_site() if which == "fixed" else _site_from_fake()
    _assert_loads(slapd_glue21, RENDERERS["glue21-ldif"](site), f"g21-{which}")


def test_glue21_is_rejected_without_project_schema(slapd_glue20) -> None:
    """Proves the check can fail: the stock schema does not know the cloud classes."""
    slapd_glue20.wipe()
    res = slapd_glue20.load(RENDERERS["glue21-ldif"](fixed_site()), "g21-on-g20")
    assert "GLUE2CloudComputing" in res.skipped


def test_spec_example_loads(slapd_glue20) -> None:
    example = (
        Path(__file__).resolve().parents[2] / "fixtures" / "glue" / "resource-glue20-cloud.ldif"
    )
    _assert_loads(slapd_glue20, example.read_text(encoding="utf-8"), "spec-example")
