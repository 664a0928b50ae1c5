"""GLUE 2.1 LDIF: the cloud classes of the GLUE 2.1 draft (``GLUE2CloudComputing*``).

No published LDAP schema carries these classes; this LDIF loads into a slapd that has
the project's ``GLUE21-cloud.schema`` (next to this package) added after Debian's
``GLUE20.schema``. Same tree as the GLUE 2.0 rendering, same rules (superclasses,
RDN == ID, integers only, sorted values, UTC ``Z`` timestamps).
"""

from __future__ import annotations

from fedcloud_core import ldif
from fedcloud_core.ldif import Entry

from ..model import Flavor, Image, Share, Site
from .common import (
    GROUP_DN,
    UNKNOWN_STR,
    endpoint_entry,
    entity,
    glue_int,
    glue_time,
    rdn,
    service_entry,
    top_entries,
)
from .glue20 import benchmark_type

CC = "GLUE2CloudComputing"


def flavor_shares(site: Site) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for share in site.shares:
        for fid in share.flavor_ids:
            out.setdefault(fid, []).append(site.share_id(share))
    return {k: sorted(v) for k, v in out.items()}


def image_shares(site: Site) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for share in site.shares:
        for iid in share.image_ids:
            out.setdefault(iid, []).append(site.share_id(share))
    return {k: sorted(v) for k, v in out.items()}


def _service(site: Site) -> list[Entry]:
    ep = site.endpoint
    ts = glue_time(site.creation_time)
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    s = service_entry(site, service_dn, ts, service_class=f"{CC}Service")
    s.add(f"{CC}ServiceTotalVM", sum(x.total for x in site.shares))
    s.add(f"{CC}ServiceRunningVM", sum(x.running for x in site.shares))
    s.add(f"{CC}ServiceSuspendedVM", sum(x.suspended for x in site.shares))
    s.add(f"{CC}ServiceHaltedVM", sum(x.halted for x in site.shares))

    endpoint_dn = rdn("GLUE2EndpointID", site.endpoint_id, service_dn)
    e = endpoint_entry(
        site,
        endpoint_dn,
        ts,
        endpoint_class=f"{CC}Endpoint",
        service_fk=f"{CC}EndpointCloudComputingServiceForeignKey",
        other_info=(f"Authentication={ep.authentication}",),
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
        ["GLUE2Entity", "GLUE2Manager", f"{CC}Manager"],
        "GLUE2ManagerID",
        site.manager_id,
    )
    m.add("GLUE2EntityName", f"Cloud Manager for {site.name}")
    m.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
    m.add("GLUE2ManagerProductName", "OpenStack Nova")
    m.add("GLUE2ManagerProductVersion", ep.nova_microversion or UNKNOWN_STR)
    m.add("GLUE2ManagerServiceForeignKey", site.service_id)
    m.add(f"{CC}ManagerCloudComputingServiceForeignKey", site.service_id)
    if site.flavors:
        m.add(f"{CC}ManagerInstanceMaxCPU", max(f.vcpus for f in site.flavors))
        m.add(f"{CC}ManagerInstanceMinCPU", min(f.vcpus for f in site.flavors))
        m.add(f"{CC}ManagerInstanceMaxRAM", max(f.ram for f in site.flavors))
        m.add(f"{CC}ManagerInstanceMinRAM", min(f.ram for f in site.flavors))
    return [s, e, p, m]


def _flavor(site: Site, f: Flavor, shares: list[str]) -> list[Entry]:
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    ts = glue_time(site.creation_time)
    dn = rdn("GLUE2ResourceID", f.id, service_dn)
    r = entity(dn, ["GLUE2Entity", "GLUE2Resource", f"{CC}InstanceType"], "GLUE2ResourceID", f.id)
    r.add("GLUE2EntityName", f.name)
    r.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
    if not f.is_public:
        r.add("GLUE2EntityOtherInfo", "InstanceTypePublic=false")
    r.add("GLUE2ResourceManagerForeignKey", site.manager_id)
    r.add(f"{CC}InstanceTypePlatform", site.platform)
    r.add(f"{CC}InstanceTypeCPU", f.vcpus)
    r.add(f"{CC}InstanceTypeRAM", f.ram)
    r.add(f"{CC}InstanceTypeDisk", f.disk)
    if f.ephemeral:
        r.add(f"{CC}InstanceTypeEphemeralStorage", f.ephemeral)
    r.add(f"{CC}InstanceTypeNetworkIn", "undefined")
    r.add(f"{CC}InstanceTypeNetworkOut", True)
    if f.infiniband:
        r.add(f"{CC}InstanceTypeNetworkInfo", "infiniband")
    r.add(f"{CC}InstanceTypeCloudComputingShareForeignKey", *shares)
    r.add(f"{CC}InstanceTypeCloudComputingManagerForeignKey", site.manager_id)
    r.add(f"{CC}InstanceTypeCloudComputingEndpointForeignKey", site.endpoint_id)
    out = [r]
    if f.accelerator:
        a = f.accelerator
        aid = f"{f.id}_accelerator"
        v = entity(
            rdn(f"{CC}VirtualAcceleratorID", aid, dn),
            ["GLUE2Entity", f"{CC}VirtualAccelerator"],
            f"{CC}VirtualAcceleratorID",
            aid,
        )
        v.add("GLUE2EntityName", f"{a.type} of {f.name}")
        v.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
        v.add(f"{CC}VirtualAcceleratorType", a.type)
        v.add(f"{CC}VirtualAcceleratorNumber", a.number)
        v.add(f"{CC}VirtualAcceleratorVendor", a.vendor)
        v.add(f"{CC}VirtualAcceleratorModel", a.model)
        if a.memory is not None:
            v.add(f"{CC}VirtualAcceleratorMemory", a.memory)
        v.add(f"{CC}VirtualAcceleratorCloudComputingInstanceTypeForeignKey", f.id)
        out.append(v)
    for btype, value in f.benchmarks:
        bid = f"{f.id}_{btype}"
        b = entity(
            rdn("GLUE2BenchmarkID", bid, dn),
            ["GLUE2Entity", "GLUE2Benchmark"],
            "GLUE2BenchmarkID",
            bid,
        )
        b.add("GLUE2EntityName", f"{btype} of {f.name}")
        b.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
        b.add("GLUE2BenchmarkType", benchmark_type(btype)).add("GLUE2BenchmarkValue", value)
        b.add("GLUE2BenchmarkExecutionEnvironmentForeignKey", f.id)
        b.add("GLUE2BenchmarkComputingManagerForeignKey", site.manager_id)
        out.append(b)
    return out


def _image(site: Site, img: Image, shares: list[str]) -> Entry:
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    a = entity(
        rdn(f"{CC}ImageID", img.id, service_dn),
        ["GLUE2Entity", f"{CC}Image"],
        f"{CC}ImageID",
        img.id,
    )
    a.add("GLUE2EntityName", img.name)
    a.add("GLUE2EntityCreationTime", glue_time(site.creation_time))
    a.add("GLUE2EntityValidity", site.validity)
    a.add("GLUE2EntityOtherInfo", *(f"{k}={v}" for k, v in img.other_info))
    a.add(f"{CC}ImageVersion", img.version)
    a.add(f"{CC}ImageMarketplaceURL", img.marketplace_url)
    a.add(f"{CC}ImageOSFamily", img.os_family)
    a.add(f"{CC}ImageOSName", img.os_name)
    a.add(f"{CC}ImageOSVersion", img.os_version)
    a.add(f"{CC}ImageOSPlatform", img.platform)
    a.add(f"{CC}ImageDescription", img.description)
    a.add(f"{CC}ImageAccessInfo", "none")
    if img.min_ram:
        a.add(f"{CC}ImageMinRAM", img.min_ram)
    if img.disk_size:
        a.add(f"{CC}ImageDiskSize", img.disk_size)
    a.add(f"{CC}ImageCloudComputingShareForeignKey", *shares)
    a.add(f"{CC}ImageCloudComputingManagerForeignKey", site.manager_id)
    a.add(f"{CC}ImageCloudComputingEndpointForeignKey", site.endpoint_id)
    return a


def _share(site: Site, share: Share) -> list[Entry]:
    service_dn = rdn("GLUE2ServiceID", site.service_id, GROUP_DN)
    ts = glue_time(site.creation_time)
    sid = site.share_id(share)
    share_dn = rdn("GLUE2ShareID", sid, service_dn)
    s = entity(share_dn, ["GLUE2Entity", "GLUE2Share", f"{CC}Share"], "GLUE2ShareID", sid)
    s.add("GLUE2EntityName", f"{share.vo} - {share.project_id} share")
    s.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
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
    s.add(f"{CC}ShareCloudComputingServiceForeignKey", site.service_id)
    s.add(f"{CC}ShareCloudComputingEndpointForeignKey", site.endpoint_id)
    flavors = [f for f in (site.flavor(i) for i in flavor_ids) if f is not None]
    if flavors:
        s.add(f"{CC}ShareInstanceMaxCPU", max(f.vcpus for f in flavors))
        s.add(f"{CC}ShareInstanceMaxRAM", max(f.ram for f in flavors))
    s.add(f"{CC}ShareTotalVM", share.total)
    s.add(f"{CC}ShareRunningVM", share.running)
    s.add(f"{CC}ShareSuspendedVM", share.suspended)
    s.add(f"{CC}ShareHaltedVM", share.halted)
    s.add(f"{CC}ShareMaxVM", glue_int(share.max_instances))
    s.add(f"{CC}ShareProjectID", share.project_id)

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


def glue21_entries(site: Site) -> list[Entry]:
    entries = top_entries() + _service(site)
    fshares = flavor_shares(site)
    for f in sorted(site.flavors, key=lambda x: x.id):
        entries += _flavor(site, f, fshares.get(f.id, []))
    ishares = image_shares(site)
    for img in sorted(site.images, key=lambda x: x.id):
        entries.append(_image(site, img, ishares.get(img.id, [])))
    for share in sorted(site.shares, key=lambda x: (x.vo, x.project_id)):
        entries += _share(site, share)
    return entries


def render_glue21(site: Site) -> str:
    return ldif.render(glue21_entries(site))
