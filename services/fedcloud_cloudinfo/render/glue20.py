"""GLUE 2.0 LDIF: the shape of ``shared/spec/resource-glue20-cloud.ldif``.

GLUE 2.0 classes only (the Debian ``GLUE20.schema`` has no cloud classes), every
superclass written out, RDN value == ID attribute, integers only (placeholders when
unknown), single-valued attributes once, UTC ``Z`` timestamps, lower-case enums,
multi-valued attributes sorted: the same model always renders to the same bytes.
"""

from __future__ import annotations

from fedcloud_core import ldif
from fedcloud_core.ldif import Entry

from ..model import Flavor, Image, Share, Site
from .common import (
    GROUP_DN,
    UNKNOWN_INT,
    UNKNOWN_STR,
    endpoint_entry,
    entity,
    glue_int,
    glue_time,
    rdn,
    service_entry,
    top_entries,
)

BENCHMARK_TYPES = {"hepspec06": "hep-spec06", "hepspec": "hep-spec06", "hs06": "hep-spec06"}


def benchmark_type(name: str) -> str:
    """The GLUE2 Benchmark_t value of a benchmark name (``hepspec06`` -> ``hep-spec06``)."""
    key = name.strip().lower()
    return BENCHMARK_TYPES.get(key, key)


def manager_cpus(site: Site) -> tuple[int, int]:
    """(TotalLogicalCPUs, TotalPhysicalCPUs) of the manager: the hypervisor totals, else the
    GLUE2 placeholder. Without a CPU topology every logical CPU counts as a physical one (the
    physical count never exceeds the logical one)."""
    logical = glue_int(site.total_logical_cpus)
    if site.total_physical_cpus is None:
        return logical, logical
    return logical, min(glue_int(site.total_physical_cpus), logical)


def image_vos(site: Site) -> dict[str, list[str]]:
    """Image id -> sorted VOs that see it, only for images not visible to every share."""
    seen: dict[str, set[str]] = {}
    for share in site.shares:
        for iid in share.image_ids:
            seen.setdefault(iid, set()).add(share.project_id)
    everyone = {s.project_id for s in site.shares}
    by_project = {s.project_id: s.vo for s in site.shares}
    return {iid: sorted({by_project[p] for p in ps}) for iid, ps in seen.items() if ps != everyone}


def service_entries(site: Site) -> list[Entry]:
    ep = site.endpoint
    ts = glue_time(site.creation_time)
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    s = service_entry(site, service_dn, ts, service_class="GLUE2ComputingService")
    # total == running + waiting + suspended (halted servers count as suspended jobs)
    s.add("GLUE2ComputingServiceTotalJobs", sum(x.total for x in site.shares))
    s.add("GLUE2ComputingServiceRunningJobs", sum(x.running for x in site.shares))
    s.add("GLUE2ComputingServiceWaitingJobs", sum(x.waiting for x in site.shares))
    s.add("GLUE2ComputingServiceSuspendedJobs", sum(x.suspended + x.halted for x in site.shares))

    endpoint_dn = rdn("GLUE2EndpointID", site.endpoint_id, service_dn)
    e = endpoint_entry(
        site,
        endpoint_dn,
        ts,
        endpoint_class="GLUE2ComputingEndpoint",
        service_fk="GLUE2ComputingEndpointComputingServiceForeignKey",
    )

    policy_id = f"{site.endpoint_id}_Policy"
    p = entity(
        rdn("GLUE2PolicyID", policy_id, endpoint_dn),
        ["GLUE2Entity", "GLUE2Policy", "GLUE2AccessPolicy"],
        "GLUE2PolicyID",
        policy_id,
    )
    p.add("GLUE2EntityName", "Access control rules for the OpenStack endpoint")
    p.add("GLUE2EntityCreationTime", ts)
    p.add("GLUE2PolicyScheme", "org.glite.standard")
    vos = site.all_vos
    p.add("GLUE2PolicyRule", *(f"VO:{vo}" for vo in vos) if vos else [UNKNOWN_STR])
    p.add("GLUE2PolicyUserDomainForeignKey", *vos)
    p.add("GLUE2AccessPolicyEndpointForeignKey", site.endpoint_id)

    m = entity(
        rdn("GLUE2ManagerID", site.manager_id, service_dn),
        ["GLUE2Entity", "GLUE2Manager", "GLUE2ComputingManager"],
        "GLUE2ManagerID",
        site.manager_id,
    )
    m.add("GLUE2EntityName", f"Cloud Manager for {site.name}")
    m.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
    m.add("GLUE2ManagerProductName", "OpenStack Nova")
    m.add("GLUE2ManagerProductVersion", ep.nova_microversion or UNKNOWN_STR)
    m.add("GLUE2ManagerServiceForeignKey", site.service_id)
    m.add("GLUE2ComputingManagerComputingServiceForeignKey", site.service_id)
    logical, physical = manager_cpus(site)
    m.add("GLUE2ComputingManagerTotalPhysicalCPUs", physical)
    m.add("GLUE2ComputingManagerTotalLogicalCPUs", logical)
    m.add("GLUE2ComputingManagerHomogeneous", len({(f.vcpus, f.ram) for f in site.flavors}) <= 1)
    return [s, e, p, m]


def flavor_entries(site: Site, f: Flavor) -> list[Entry]:
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    dn = rdn("GLUE2ResourceID", f.id, service_dn)
    r = entity(
        dn, ["GLUE2Entity", "GLUE2Resource", "GLUE2ExecutionEnvironment"], "GLUE2ResourceID", f.id
    )
    r.add("GLUE2EntityName", f.name)
    r.add("GLUE2EntityCreationTime", glue_time(site.creation_time))
    r.add("GLUE2EntityValidity", site.validity)
    other = [f"InstanceTypeDisk={f.disk}"]
    if f.ephemeral:
        other.append(f"InstanceTypeEphemeral={f.ephemeral}")
    if f.accelerator:
        a = f.accelerator
        other.append(f"AcceleratorType={a.type}")
        other.append(f"AcceleratorNumber={a.number}")
        if a.vendor:
            other.append(f"AcceleratorVendor={a.vendor}")
        if a.model:
            other.append(f"AcceleratorModel={a.model}")
        if a.memory is not None:
            other.append(f"AcceleratorMemory={a.memory}")
    if not f.is_public:
        other.append("InstanceTypePublic=false")
    r.add("GLUE2EntityOtherInfo", *other)
    r.add("GLUE2ResourceManagerForeignKey", site.manager_id)
    r.add("GLUE2ExecutionEnvironmentComputingManagerForeignKey", site.manager_id)
    r.add("GLUE2ExecutionEnvironmentPlatform", site.platform)
    r.add("GLUE2ExecutionEnvironmentVirtualMachine", True)
    r.add("GLUE2ExecutionEnvironmentMainMemorySize", f.ram)
    r.add("GLUE2ExecutionEnvironmentVirtualMemorySize", f.ram)
    r.add("GLUE2ExecutionEnvironmentLogicalCPUs", f.vcpus)
    r.add("GLUE2ExecutionEnvironmentPhysicalCPUs", f.vcpus)
    r.add(
        "GLUE2ExecutionEnvironmentCPUMultiplicity",
        "singlecpu-multicore" if f.vcpus > 1 else "singlecpu-singlecore",
    )
    r.add("GLUE2ExecutionEnvironmentCPUVendor", "virtual")
    r.add("GLUE2ExecutionEnvironmentCPUModel", "virtual")
    r.add("GLUE2ExecutionEnvironmentCPUTimeScalingFactor", "1.0")
    r.add("GLUE2ExecutionEnvironmentWallTimeScalingFactor", "1.0")
    r.add("GLUE2ExecutionEnvironmentOSFamily", "linux")
    # a flavor has no OS (the image has): the GLUE2 string placeholder
    r.add("GLUE2ExecutionEnvironmentOSName", UNKNOWN_STR)
    r.add("GLUE2ExecutionEnvironmentOSVersion", UNKNOWN_STR)
    r.add("GLUE2ExecutionEnvironmentConnectivityIn", "undefined")
    r.add("GLUE2ExecutionEnvironmentConnectivityOut", True)
    if f.infiniband:
        r.add("GLUE2ExecutionEnvironmentNetworkInfo", "infiniband")
    out = [r]
    for btype, value in f.benchmarks:
        bid = f"{f.id}_{btype}"
        b = entity(
            rdn("GLUE2BenchmarkID", bid, dn),
            ["GLUE2Entity", "GLUE2Benchmark"],
            "GLUE2BenchmarkID",
            bid,
        )
        b.add("GLUE2EntityName", f"{btype} of {f.name}")
        b.add("GLUE2EntityCreationTime", glue_time(site.creation_time))
        b.add("GLUE2EntityValidity", site.validity)
        b.add("GLUE2BenchmarkType", benchmark_type(btype)).add("GLUE2BenchmarkValue", value)
        b.add("GLUE2BenchmarkExecutionEnvironmentForeignKey", f.id)
        b.add("GLUE2BenchmarkComputingManagerForeignKey", site.manager_id)
        out.append(b)
    return out


def image_entry(site: Site, img: Image, vos: list[str] | None) -> Entry:
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    a = entity(
        rdn("GLUE2ApplicationEnvironmentID", img.id, service_dn),
        ["GLUE2Entity", "GLUE2ApplicationEnvironment"],
        "GLUE2ApplicationEnvironmentID",
        img.id,
    )
    a.add("GLUE2EntityName", img.name)
    a.add("GLUE2EntityCreationTime", glue_time(site.creation_time))
    a.add("GLUE2EntityValidity", site.validity)
    other = []
    if img.os_name:
        other.append(f"OSName={img.os_name}")
    if img.os_version:
        other.append(f"OSVersion={img.os_version}")
    if img.platform:
        other.append(f"OSPlatform={img.platform}")
    if img.min_ram:
        other.append(f"MinRAM={img.min_ram}")
    if img.disk_size:
        other.append(f"DiskSize={img.disk_size}")
    other += [f"{k}={v}" for k, v in img.other_info]
    other += [f"VO={vo}" for vo in vos or ()]
    a.add("GLUE2EntityOtherInfo", *other)
    a.add("GLUE2ApplicationEnvironmentAppName", img.name)
    a.add("GLUE2ApplicationEnvironmentAppVersion", img.version)
    a.add("GLUE2ApplicationEnvironmentRepository", img.marketplace_url)
    a.add("GLUE2ApplicationEnvironmentDescription", img.description)
    a.add("GLUE2ApplicationEnvironmentState", "installednotverified")
    a.add("GLUE2ApplicationEnvironmentComputingManagerForeignKey", site.manager_id)
    return a


def share_entries(site: Site, share: Share) -> list[Entry]:
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    ts = glue_time(site.creation_time)
    sid = site.share_id(share)
    share_dn = rdn("GLUE2ShareID", sid, service_dn)
    s = entity(share_dn, ["GLUE2Entity", "GLUE2Share", "GLUE2ComputingShare"], "GLUE2ShareID", sid)
    s.add("GLUE2EntityName", f"{share.vo} - {share.project_id} share")
    s.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
    s.add("GLUE2EntityOtherInfo", f"ProjectID={share.project_id}")
    if share.project_name:
        s.add("GLUE2EntityOtherInfo", f"project_name={share.project_name}")
    if share.domain_name:
        s.add("GLUE2EntityOtherInfo", f"project_domain_name={share.domain_name}")
    s.add(
        "GLUE2ShareDescription",
        f"Share in service {site.service_id} for VO {share.vo} (Project {share.project_id})",
    )
    s.add("GLUE2ShareServiceForeignKey", site.service_id)
    s.add("GLUE2ShareEndpointForeignKey", site.endpoint_id)
    flavor_ids = sorted(share.flavor_ids)
    s.add("GLUE2ShareResourceForeignKey", *flavor_ids)
    s.add("GLUE2ComputingShareServingState", site.production_level)
    s.add("GLUE2ComputingShareMaxRunningJobs", glue_int(share.max_instances))
    # no time limits and no queue in a cloud: the GLUE2 integer placeholder
    s.add("GLUE2ComputingShareDefaultCPUTime", UNKNOWN_INT)
    s.add("GLUE2ComputingShareDefaultWallTime", UNKNOWN_INT)
    # total == running + waiting + suspended (halted servers count as suspended jobs)
    s.add("GLUE2ComputingShareTotalJobs", share.total)
    s.add("GLUE2ComputingShareRunningJobs", share.running)
    s.add("GLUE2ComputingShareWaitingJobs", share.waiting)
    s.add("GLUE2ComputingShareSuspendedJobs", share.suspended + share.halted)
    s.add("GLUE2ComputingShareEstimatedAverageWaitingTime", UNKNOWN_INT)
    s.add("GLUE2ComputingShareEstimatedWorstWaitingTime", UNKNOWN_INT)
    s.add("GLUE2ComputingShareFreeSlots", glue_int(share.free_cores))
    s.add("GLUE2ComputingShareUsedSlots", glue_int(share.used_cores))
    flavors = [f for f in (site.flavor(i) for i in flavor_ids) if f is not None]
    # a VM gets exactly its flavor's RAM (no swap): the smallest flavor's is guaranteed
    max_ram = max((f.ram for f in flavors), default=None)
    min_ram = min((f.ram for f in flavors), default=None)
    s.add("GLUE2ComputingShareMaxMainMemory", glue_int(max_ram))
    s.add("GLUE2ComputingShareGuaranteedMainMemory", glue_int(min_ram))
    s.add("GLUE2ComputingShareMaxVirtualMemory", glue_int(max_ram))
    s.add("GLUE2ComputingShareGuaranteedVirtualMemory", glue_int(min_ram))
    s.add(
        "GLUE2ComputingShareMaxSlotsPerJob", glue_int(max((f.vcpus for f in flavors), default=None))
    )
    s.add("GLUE2ComputingShareComputingServiceForeignKey", site.service_id)
    s.add("GLUE2ComputingShareComputingEndpointForeignKey", site.endpoint_id)
    s.add("GLUE2ComputingShareExecutionEnvironmentForeignKey", *flavor_ids)

    pid = f"{sid}_Policy"
    p = entity(
        rdn("GLUE2PolicyID", pid, share_dn),
        ["GLUE2Entity", "GLUE2Policy", "GLUE2MappingPolicy"],
        "GLUE2PolicyID",
        pid,
    )
    p.add("GLUE2EntityCreationTime", ts)
    p.add("GLUE2PolicyScheme", "org.glite.standard")
    p.add("GLUE2PolicyRule", f"VO:{share.vo}")
    p.add("GLUE2PolicyUserDomainForeignKey", share.vo)
    p.add("GLUE2MappingPolicyShareForeignKey", sid)
    return [s, p]


def glue20_entries(site: Site) -> list[Entry]:
    """Every entry of the snapshot, parents before children, in a stable order."""
    entries = top_entries() + service_entries(site)
    for f in sorted(site.flavors, key=lambda x: x.id):
        entries += flavor_entries(site, f)
    restricted = image_vos(site)
    for img in sorted(site.images, key=lambda x: x.id):
        entries.append(image_entry(site, img, restricted.get(img.id)))
    for share in sorted(site.shares, key=lambda x: (x.vo, x.project_id)):
        entries += share_entries(site, share)
    return entries


def render_glue20(site: Site) -> str:
    return ldif.render(glue20_entries(site))
