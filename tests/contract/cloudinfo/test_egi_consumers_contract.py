"""Contract: what EGI's consumers read (issue 14, parts 1-2).

GLUE 2.0 - the resource BDII's LDIF and the site BDII's tree of the demo site (the seeded
fakes the golden files use) pass the rules of EGI's GLUE2 validator (suites glue2/general and
egi-glue2/egi-profile) that the issue lists: the Benchmark_t value ``hep-spec06``, every job
total equal to the sum of the per-state counts, the EGI-profile mandatory attributes, GLUE2
enumerations, the consistency of the memory and CPU figures, and a site BDII endpoint URL
with the configured public host and port. The rules are written here from the validator's
documented behaviour (our own code, not the validator's).

GLUE 2.1 JSON - what EGI's cloud-info-api reads (shared/spec/infosys.md section 4), key by
key, plus the keys it looks up in an image's OtherInfo; ``config check`` refuses a JSON
output without ``cloud_info.gocdb_id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fedcloud_appliance import cli
from fedcloud_cloudinfo.collect import CollectOptions, collect
from fedcloud_cloudinfo.model import Site
from fedcloud_cloudinfo.render import RENDERERS
from fedcloud_core import ldif
from fedcloud_core.config import AppConfig, parse_config
from fedcloud_core.errors import ExitCode
from fedcloud_core.ldif import Entry
from fedcloud_core.report import RunReport
from fedcloud_sitebdii import jobs as site_jobs
from fedcloud_sitebdii.source import SourceResult, SourceState
from unit.cloudinfo.cloudinfo_fakes import FakeSource, fixed_site

pytestmark = pytest.mark.contract

# --- the rules -----------------------------------------------------------------------------

# attributes the EGI profile marks mandatory, per objectClass we publish (W034 when missing)
MANDATORY: dict[str, tuple[str, ...]] = {
    "GLUE2Group": ("GLUE2GroupID",),
    "GLUE2Domain": ("GLUE2DomainID",),
    "GLUE2Location": ("GLUE2LocationID",),
    "GLUE2Contact": ("GLUE2ContactID", "GLUE2ContactDetail", "GLUE2ContactType"),
    "GLUE2Service": (
        "GLUE2ServiceID",
        "GLUE2ServiceType",
        "GLUE2ServiceQualityLevel",
        "GLUE2ServiceAdminDomainForeignKey",
    ),
    "GLUE2Endpoint": (
        "GLUE2EndpointID",
        "GLUE2EndpointURL",
        "GLUE2EndpointInterfaceName",
        "GLUE2EndpointImplementationName",
        "GLUE2EndpointImplementationVersion",
        "GLUE2EndpointQualityLevel",
        "GLUE2EndpointHealthState",
        "GLUE2EndpointServingState",
    ),
    "GLUE2Policy": ("GLUE2PolicyID", "GLUE2PolicyScheme", "GLUE2PolicyRule"),
    "GLUE2Share": ("GLUE2ShareID",),
    "GLUE2Manager": ("GLUE2ManagerID", "GLUE2ManagerProductName", "GLUE2ManagerProductVersion"),
    "GLUE2Resource": ("GLUE2ResourceID",),
    "GLUE2ComputingShare": (
        "GLUE2ComputingShareDefaultCPUTime",
        "GLUE2ComputingShareDefaultWallTime",
        "GLUE2ComputingShareMaxSlotsPerJob",
        "GLUE2ComputingShareMaxMainMemory",
        "GLUE2ComputingShareGuaranteedMainMemory",
        "GLUE2ComputingShareMaxVirtualMemory",
        "GLUE2ComputingShareGuaranteedVirtualMemory",
        "GLUE2ComputingShareServingState",
        "GLUE2ComputingShareEstimatedAverageWaitingTime",
        "GLUE2ComputingShareEstimatedWorstWaitingTime",
        "GLUE2ComputingShareFreeSlots",
        "GLUE2ComputingShareUsedSlots",
    ),
    "GLUE2ComputingManager": (
        "GLUE2ComputingManagerTotalPhysicalCPUs",
        "GLUE2ComputingManagerTotalLogicalCPUs",
        "GLUE2ComputingManagerComputingServiceForeignKey",
    ),
    "GLUE2Benchmark": ("GLUE2BenchmarkID", "GLUE2BenchmarkType", "GLUE2BenchmarkValue"),
    "GLUE2ExecutionEnvironment": (
        "GLUE2ExecutionEnvironmentPlatform",
        "GLUE2ExecutionEnvironmentCPUTimeScalingFactor",
        "GLUE2ExecutionEnvironmentWallTimeScalingFactor",
        "GLUE2ExecutionEnvironmentMainMemorySize",
        "GLUE2ExecutionEnvironmentVirtualMemorySize",
        "GLUE2ExecutionEnvironmentOSFamily",
        "GLUE2ExecutionEnvironmentOSName",
        "GLUE2ExecutionEnvironmentOSVersion",
        "GLUE2ExecutionEnvironmentConnectivityIn",
        "GLUE2ExecutionEnvironmentConnectivityOut",
        "GLUE2ExecutionEnvironmentComputingManagerForeignKey",
    ),
    "GLUE2ApplicationEnvironment": (
        "GLUE2ApplicationEnvironmentID",
        "GLUE2ApplicationEnvironmentAppName",
    ),
}

# job totals (W005 / W013 / W025): the total against the per-state counts of the same class
JOB_STATES = ("Running", "Waiting", "Staging", "Suspended", "PreLRMSWaiting")
JOB_CLASSES = ("GLUE2ComputingService", "GLUE2ComputingEndpoint", "GLUE2ComputingShare")

BOOLEAN = {"true", "false", "undefined"}
ENUMS: dict[str, set[str]] = {
    "GLUE2EndpointTechnology": {"corba", "jndi", "webservice"},
    "GLUE2EndpointHealthState": {"critical", "ok", "other", "unknown", "warning"},
    "GLUE2EndpointServingState": {"closed", "draining", "production", "queueing"},
    "GLUE2ComputingShareServingState": {"closed", "draining", "production", "queueing"},
    "GLUE2EndpointQualityLevel": {"development", "pre-production", "production", "testing"},
    "GLUE2ServiceQualityLevel": {"development", "pre-production", "production", "testing"},
    "GLUE2ExecutionEnvironmentOSFamily": {"linux", "macosx", "solaris", "windows"},
    "GLUE2ExecutionEnvironmentPlatform": {
        "amd64",
        "i386",
        "i686",
        "itanium",
        "powerpc",
        "sparc",
        "x86_64",
    },
    "GLUE2ExecutionEnvironmentCPUMultiplicity": {
        "multicpu-multicore",
        "multicpu-singlecore",
        "singlecpu-multicore",
        "singlecpu-singlecore",
    },
    "GLUE2ApplicationEnvironmentState": {
        "installable",
        "installationfailed",
        "installedbroken",
        "installednotverified",
        "installedverified",
        "installingautomatically",
        "installingmanually",
        "notinstallable",
        "pendingremoval",
        "removing",
    },
    "GLUE2PolicyScheme": {"basic", "gacl", "org.glite.standard"},
    "GLUE2ContactType": {"general", "security", "sysadmin", "usersupport"},
    "GLUE2ExecutionEnvironmentVirtualMachine": BOOLEAN,
    "GLUE2ExecutionEnvironmentConnectivityIn": BOOLEAN,
    "GLUE2ExecutionEnvironmentConnectivityOut": BOOLEAN,
    "GLUE2ComputingManagerHomogeneous": BOOLEAN,
    "GLUE2AdminDomainDistributed": BOOLEAN,
}
# GLUE2 Benchmark_t; the EGI benchmark of record is spelled hep-spec06 (not hepspec06).
# HEPscore23 is WLCG's successor benchmark, published under its own name (open enumeration).
BENCHMARKS = {"bogomips", "cfp2006", "cint2006", "linpack", "specfp2000", "specint2000"}
BENCHMARKS |= {"hep-spec06", "hepscore23"}
# GLUE2 URL type: a scheme, then a dotted host name (or an IPv4 address)
URL = re.compile(r"^[a-z0-9+.-]+://([A-Za-z0-9._-]+\.[A-Za-z]{2,6}|\d{1,3}(\.\d{1,3}){3})[:/]")
# "defaults" some publishers leave in and the validator reports as errors (E022-E024)
BAD_DEFAULTS = {"444444", "2146660842"}


def _int(e: Entry, attr: str) -> int:
    """An integer attribute; a missing one (reported as such) compares as the placeholder."""
    values = e.get(attr)
    return int(values[0]) if values else 999999999


def _classes(e: Entry) -> set[str]:
    return set(e.get("objectClass"))


def glue2_problems(entries: Iterable[Entry]) -> list[str]:
    """Every rule above broken by ``entries``, one line each (empty: clean)."""
    out: list[str] = []
    for e in entries:
        classes = _classes(e)
        for cls in sorted(classes):
            for attr in MANDATORY.get(cls, ()):
                if not e.get(attr):
                    out.append(f"{e.dn}: mandatory {attr} missing ({cls})")
        for attr, allowed in ENUMS.items():
            for v in e.get(attr):
                if v not in allowed:
                    out.append(f"{e.dn}: {attr}: {v!r} is not a GLUE2 enumeration value")
        for v in e.get("GLUE2EndpointURL"):
            if not URL.match(v) or "://localhost" in v or "://127." in v:
                out.append(f"{e.dn}: GLUE2EndpointURL {v!r}: not a public GLUE2 URL")
        for v in e.get("GLUE2BenchmarkType"):
            if v not in BENCHMARKS:
                out.append(f"{e.dn}: GLUE2BenchmarkType: {v!r} (the GLUE2 value is hep-spec06)")
        for cls in JOB_CLASSES:
            total = e.get(f"{cls}TotalJobs")
            if cls in classes and total:
                parts = [int(v) for s in JOB_STATES for v in e.get(f"{cls}{s}Jobs")]
                if int(total[0]) != sum(parts):
                    out.append(f"{e.dn}: {cls}TotalJobs {total[0]} != sum of states {parts}")
        for attr, values in e.attrs.items():
            if any(v in BAD_DEFAULTS for v in values):
                out.append(f"{e.dn}: {attr}: a publisher default the validator rejects")
        if "GLUE2ComputingShare" in classes:
            p = "GLUE2ComputingShare"
            if _int(e, f"{p}MaxMainMemory") < 100:
                out.append(f"{e.dn}: MaxMainMemory below 100 MB")
            if _int(e, f"{p}GuaranteedMainMemory") > _int(e, f"{p}MaxMainMemory"):
                out.append(f"{e.dn}: GuaranteedMainMemory > MaxMainMemory")
            if _int(e, f"{p}MaxVirtualMemory") < _int(e, f"{p}MaxMainMemory"):
                out.append(f"{e.dn}: MaxVirtualMemory < MaxMainMemory")
            if _int(e, f"{p}GuaranteedVirtualMemory") > _int(e, f"{p}MaxVirtualMemory"):
                out.append(f"{e.dn}: GuaranteedVirtualMemory > MaxVirtualMemory")
            if _int(e, f"{p}MaxSlotsPerJob") == 0:
                out.append(f"{e.dn}: MaxSlotsPerJob is 0")
        if "GLUE2ComputingManager" in classes:
            p = "GLUE2ComputingManager"
            if _int(e, f"{p}TotalPhysicalCPUs") > _int(e, f"{p}TotalLogicalCPUs"):
                out.append(f"{e.dn}: TotalPhysicalCPUs > TotalLogicalCPUs")
    return out


# --- the demo site -------------------------------------------------------------------------

SITE_BDII_HOST = "site-bdii.example.org"
SITE_BDII_PORT = 2170
CONFIG = """\
site: {name: TEST-SITE, country: NL, latitude: 52.37, longitude: 4.9,
       contacts: {general: grid@example.org, security: sec@example.org}}
vos: {ops: {projects: [ops-project]}, fedcloud.egi.eu: {projects: [p-fc]}}
"""


def _cfg(extra: str = "") -> AppConfig:
    return parse_config(CONFIG + extra, source="test", environ={})


def _collected(forbidden: bool = False) -> Site:
    src = FakeSource()
    src.hypervisors_forbidden = forbidden
    return collect(src, _cfg(), RunReport(job="t"), CollectOptions(publish_all_images=True))


SITES = {
    "fixed": fixed_site,
    "collected": _collected,
    "collected-as-reader": lambda: _collected(forbidden=True),
}


def _resource(which: str) -> list[Entry]:
    return ldif.parse(RENDERERS["glue20-ldif"](SITES[which]()))


def _site_tree(resource: list[Entry], cfg: AppConfig) -> list[Entry]:
    result = SourceResult(url="ldap://cloud-bdii.example.org:2170", state=SourceState.OK)
    result.entries = resource
    return site_jobs.build_tree(cfg, [result], RunReport(job="t"))


SITE_EXTRA = f"site_bdii: {{public_hostname: {SITE_BDII_HOST}, public_port: {SITE_BDII_PORT}}}\n"


# --- GLUE 2.0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", sorted(SITES))
def test_resource_bdii_ldif_passes_the_rules(which: str) -> None:
    entries = _resource(which)
    assert glue2_problems(entries) == []
    text = ldif.render(entries)
    assert "hepspec06" not in text.lower().replace("hep-spec06", "")
    assert any(e.get("GLUE2BenchmarkType") == ["hep-spec06"] for e in entries)


@pytest.mark.parametrize("which", sorted(SITES))
def test_site_bdii_tree_passes_the_rules(which: str) -> None:
    tree = _site_tree(_resource(which), _cfg(SITE_EXTRA))
    assert glue2_problems(tree) == []
    shares = [e for e in tree if "GLUE2ComputingShare" in _classes(e)]
    assert shares
    assert all(e.dn.endswith(",GLUE2DomainID=TEST-SITE,o=glue") for e in shares)


def test_job_totals_count_every_published_state() -> None:
    """The demo site's servers: ACTIVE 2, BUILD 1, SUSPENDED 1, PAUSED 1, SHUTOFF 1,
    SHELVED_OFFLOADED 1 and ERROR 1 in ops; ACTIVE 1 in fedcloud.egi.eu."""
    entries = _resource("collected")
    (svc,) = [e for e in entries if "GLUE2ComputingService" in _classes(e)]
    got = {s: _int(svc, f"GLUE2ComputingService{s}Jobs") for s in ("Total", "Running")}
    got |= {s: _int(svc, f"GLUE2ComputingService{s}Jobs") for s in ("Waiting", "Suspended")}
    # ERROR is in no state and so in no total; halted (SHUTOFF, SHELVED*) count as suspended
    assert got == {"Total": 8, "Running": 3, "Waiting": 1, "Suspended": 4}


def test_mandatory_values_come_from_openstack_where_it_has_them() -> None:
    entries = _resource("collected")
    (mgr,) = [e for e in entries if "GLUE2ComputingManager" in _classes(e)]
    assert (mgr.first("GLUE2ComputingManagerTotalLogicalCPUs"),) == ("96",)
    assert mgr.first("GLUE2ComputingManagerTotalPhysicalCPUs") == "48"
    ops = next(e for e in entries if e.get("GLUE2ShareID") and "_share_ops_" in e.dn)
    assert ops.first("GLUE2ComputingShareUsedSlots") == "5"  # quota usage
    assert ops.first("GLUE2ComputingShareFreeSlots") == "15"  # cores quota 20 - 5
    assert ops.first("GLUE2ComputingShareGuaranteedMainMemory") == "2048"  # smallest flavor
    reader = _resource("collected-as-reader")
    (mgr,) = [e for e in reader if "GLUE2ComputingManager" in _classes(e)]
    assert mgr.first("GLUE2ComputingManagerTotalLogicalCPUs") == "999999999"  # placeholder


def test_rules_catch_the_reported_defects() -> None:
    """The checker itself fails on the issue's findings (so a regression fails CI)."""
    entries = _resource("fixed")
    svc = next(e for e in entries if "GLUE2ComputingService" in _classes(e))
    svc.attrs["GLUE2ComputingServiceTotalJobs"] = ["12"]
    bench = next(e for e in entries if e.get("GLUE2BenchmarkType"))
    bench.attrs["GLUE2BenchmarkType"] = ["hepspec06"]
    share = next(e for e in entries if "GLUE2ComputingShare" in _classes(e))
    del share.attrs["GLUE2ComputingShareFreeSlots"]
    problems = "\n".join(glue2_problems(entries))
    assert "TotalJobs 12" in problems
    assert "'hepspec06'" in problems
    assert "mandatory GLUE2ComputingShareFreeSlots missing" in problems
    site = _site_tree(_resource("fixed"), _cfg(SITE_EXTRA))
    ep = next(e for e in site if e.get("GLUE2EndpointInterfaceName") == ["bdii_site"])
    ep.attrs["GLUE2EndpointTechnology"] = ["ldap"]
    ep.attrs["GLUE2EndpointURL"] = ["ldap://localhost:2170/GLUE2DomainID=TEST-SITE,o=glue"]
    problems = "\n".join(glue2_problems(site))
    assert "'ldap' is not a GLUE2 enumeration value" in problems
    assert "ldap://localhost:2170/GLUE2DomainID=TEST-SITE,o=glue': not a public" in problems


def _site_endpoint(cfg: AppConfig) -> Entry:
    tree = _site_tree(_resource("fixed"), cfg)
    (ep,) = [e for e in tree if e.get("GLUE2EndpointInterfaceName") == ["bdii_site"]]
    return ep


def test_site_endpoint_url_is_the_configured_public_host_and_port() -> None:
    ep = _site_endpoint(_cfg("site_bdii: {public_hostname: bdii.example.org, public_port: 2171}"))
    assert ep.get("GLUE2EndpointURL") == [
        "ldap://bdii.example.org:2171/GLUE2DomainID=TEST-SITE,o=glue"
    ]
    assert ep.get("GLUE2EndpointTechnology") == ["webservice"]


def test_site_endpoint_default_is_the_fqdn_and_2170(monkeypatch) -> None:
    monkeypatch.setattr("socket.getfqdn", lambda *a: "cloud.example.org")
    ep = _site_endpoint(_cfg())
    assert ep.get("GLUE2EndpointURL") == [
        "ldap://cloud.example.org:2170/GLUE2DomainID=TEST-SITE,o=glue"
    ]


def test_site_endpoint_is_never_localhost(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr("socket.getfqdn", lambda *a: "localhost")
    with pytest.raises(Exception, match=r"site_bdii\.public_hostname"):
        _site_endpoint(_cfg())
    conf = tmp_path / "appliance.yaml"
    conf.write_text(CONFIG + f"paths: {{state_dir: {tmp_path}}}\n", encoding="utf-8")
    assert cli.main(["config", "check", "--config", str(conf)]) == ExitCode.CONFIG
    assert "site_bdii.public_hostname" in capsys.readouterr().err
    conf.write_text(CONFIG + "site_bdii: {public_hostname: 127.0.0.1}\n", encoding="utf-8")
    assert cli.main(["config", "check", "--config", str(conf)]) == ExitCode.CONFIG
    assert "site_bdii.public_hostname" in capsys.readouterr().err


@pytest.mark.parametrize("which", sorted(SITES))
def test_site_tree_loads_into_slapd(slapd_glue20, which: str) -> None:
    tree = _site_tree(_resource(which), _cfg(SITE_EXTRA))
    text = ldif.render(tree)
    slapd_glue20.wipe()
    res = slapd_glue20.load(text, f"site-{which}")
    assert res.skipped == "", f"slapd rejected entries:\n{res.skipped}\n{res.stderr}"
    assert res.returncode == 0, res.stderr
    assert res.added == len(tree)


# --- GLUE 2.1 JSON: what cloud-info-api reads ------------------------------------------------


def _json(site: Site) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(RENDERERS["glue21-json"](site))
    return doc


@pytest.mark.parametrize("which", ["fixed", "collected"])
def test_json_has_every_key_the_consumer_reads(which: str) -> None:
    site = SITES[which]()
    doc = _json(site)
    svc = doc["CloudComputingService"][0]
    created = datetime.strptime(svc["CreationTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert isinstance(svc["Validity"], int)
    assert svc["Validity"] >= 43200
    assert created + timedelta(seconds=svc["Validity"]) > created
    assert svc["Type"] == "org.cloud.iaas"  # as cloud-info-provider 1.2.0 publishes
    if site.gocdb_id:
        assert svc["OtherInfo"]["gocdb_id"] == site.gocdb_id
    assert svc["Associations"]["AdminDomain"][0] == "TEST-SITE"
    ep = doc["CloudComputingEndpoint"][0]
    assert ep["URL"].startswith("https://")
    assert "TrustedCA" in ep
    assert "TrustedCAs" not in ep
    assert isinstance(ep["TrustedCA"], list)
    share_ids = set()
    for share in doc["Share"]:
        assert isinstance(share["ID"], str)
        assert isinstance(share["Name"], str)
        assert isinstance(share["ProjectID"], str)
        assert share["ProjectID"]
        share_ids.add(share["ID"])
    vo_of = {}
    for mp in doc["MappingPolicy"]:
        (sid,) = mp["Associations"]["Share"]
        vo_of[sid] = mp["Associations"]["PolicyUserDomain"][0]
    assert set(vo_of) == share_ids  # every share has its VO
    for img in doc["CloudComputingImage"]:
        assert set(img["Associations"]["Share"]) <= share_ids
        assert isinstance(img["MarketplaceURL"], str)  # read as a string: never null
        assert isinstance(img["OtherInfo"], dict)
        assert isinstance(img["Name"], str)
    for it in doc["CloudComputingInstanceType"]:
        assert isinstance(it["Name"], str)
        assert set(it["Associations"]["Share"]) <= share_ids


def _consumer_image(img: dict[str, Any]) -> dict[str, str]:
    """How cloud-info-api names an image (egi_id, version) from MarketplaceURL + OtherInfo."""
    other, mpuri = img.get("OtherInfo", {}), img.get("MarketplaceURL") or ""
    if "registry.egi.eu" in mpuri:
        return {
            "egi_id": other.get("eu.egi.cloud.image_ref", mpuri),
            "version": other.get("eu.egi.cloud.tag", ""),
        }
    return {"egi_id": "", "version": ""}


def test_json_registry_image_keeps_its_egi_keys() -> None:
    for site, image_id in ((fixed_site(), "5e5e5e5e"), (_collected(), "i-reg")):
        imgs = {i["ID"]: i for i in _json(site)["CloudComputingImage"]}
        other = imgs[image_id]["OtherInfo"]
        assert other["eu.egi.cloud.image_ref"] == "egi_vm_images/ubuntu:22.04"
        assert other["eu.egi.cloud.tag"] == "2025-09-04-4d7122d6"
        assert "image_ref" not in other
        assert "tag" not in other
        assert _consumer_image(imgs[image_id]) == {
            "egi_id": "egi_vm_images/ubuntu:22.04",
            "version": "2025-09-04-4d7122d6",
        }
    # the rest of the appliance attributes pass through as they are
    reg = {i["ID"]: i for i in _json(_collected())["CloudComputingImage"]}["i-reg"]
    assert reg["OtherInfo"]["org.openstack.glance.os_distro"] == "ubuntu"


def test_config_check_requires_gocdb_id_for_json(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("socket.getfqdn", lambda *a: "cloud.example.org")
    conf = tmp_path / "appliance.yaml"
    conf.write_text(CONFIG + "cloud_info: {format: glue21-json}\n", encoding="utf-8")
    assert cli.main(["config", "check", "--config", str(conf)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "cloud_info.gocdb_id" in err
    assert "glue21-json" in err
    conf.write_text(
        CONFIG + "cloud_info: {format: glue21-json, gocdb_id: 12345G0}\n", encoding="utf-8"
    )
    assert cli.main(["config", "check", "--config", str(conf)]) == ExitCode.OK
    conf.write_text(CONFIG, encoding="utf-8")  # LDIF output: gocdb_id stays optional
    assert cli.main(["config", "check", "--config", str(conf)]) == ExitCode.OK
