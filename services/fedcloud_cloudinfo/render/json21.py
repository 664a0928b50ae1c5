"""GLUE 2.1 JSON in the shape EGI's cloud-info-api reads (spec section 4).

One object keyed by class; each a list of objects with ``ID``, ``Name``,
``CreationTime``, ``Validity``, ``OtherInfo`` and ``Associations`` (class -> IDs)
plus the class fields. Keys are sorted and lists ordered by ID, so the output is
deterministic for a given model.
"""

from __future__ import annotations

import json
from typing import Any

from ..model import Accelerator, Flavor, Image, Share, Site
from .common import ARGO_STATUS, CAPABILITIES, DOWNTIMES, glue_time
from .glue21 import flavor_shares, image_shares

SERVICE_TYPE = "org.cloud.iaas"
JSON_VALIDITY = (
    43200  # what cloud-info-api expects; CreationTime + Validity in the past drops the site
)


def _base(
    site: Site,
    id_: str,
    name: str | None,
    other: dict[str, Any] | None = None,
    assoc: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    return {
        "ID": id_,
        "Name": name,
        "CreationTime": glue_time(site.creation_time),
        "Validity": JSON_VALIDITY,
        "OtherInfo": other or {},
        "Associations": dict((assoc or {}).items()),
    }


def _service(site: Site) -> dict[str, Any]:
    other: dict[str, Any] = {
        "InfoProviderName": site.provider_name,
        "InfoProviderVersion": site.provider_version,
    }
    if site.gocdb_id:
        other["gocdb_id"] = site.gocdb_id
    service = _base(
        site,
        site.service_id,
        f"Cloud Compute service at {site.name}",
        other,
        {"AdminDomain": [site.name]},
    )
    service.update(
        {
            # the service type EGI's cloud-info-provider 1.2.0 publishes for an IaaS cloud
            # (the GOCDB service type org.openstack.nova is the endpoint's InterfaceName)
            "Type": SERVICE_TYPE,
            "QualityLevel": site.production_level,
            "StatusInfo": ARGO_STATUS.format(site=site.name),
            "Capability": list(CAPABILITIES),
            "Complexity": f"endpointType=1,share={len(site.shares)},resource={len(site.flavors)}",
            "TotalVM": sum(x.total for x in site.shares),
            "RunningVM": sum(x.running for x in site.shares),
            "SuspendedVM": sum(x.suspended for x in site.shares),
            "HaltedVM": sum(x.halted for x in site.shares),
        }
    )
    return service


def _manager(site: Site) -> dict[str, Any]:
    manager = _base(
        site,
        site.manager_id,
        f"Cloud Manager for {site.name}",
        {},
        {"CloudComputingService": [site.service_id]},
    )
    manager.update(
        {"ProductName": "OpenStack Nova", "ProductVersion": site.endpoint.nova_microversion}
    )
    if site.flavors:
        manager.update(
            {
                "InstanceMaxCPU": max(f.vcpus for f in site.flavors),
                "InstanceMinCPU": min(f.vcpus for f in site.flavors),
                "InstanceMaxRAM": max(f.ram for f in site.flavors),
                "InstanceMinRAM": min(f.ram for f in site.flavors),
            }
        )
    return manager


def _endpoint(site: Site) -> dict[str, Any]:
    ep = site.endpoint
    ep_other = {
        k: v
        for k, v in (("KeystoneVersion", ep.keystone_version), ("GlanceVersion", ep.glance_version))
        if v
    }
    endpoint = _base(
        site,
        site.endpoint_id,
        f"OpenStack endpoint at {site.name}",
        ep_other,
        {"CloudComputingService": [site.service_id]},
    )
    endpoint.update(
        {
            "URL": ep.url,
            "Capability": list(CAPABILITIES),
            "QualityLevel": site.production_level,
            "ServingState": site.production_level,
            "InterfaceName": "org.openstack.nova",
            "InterfaceVersion": ep.nova_version,
            "HealthState": "ok",
            "HealthStateInfo": "Endpoint functioning properly",
            "Technology": "webservice",
            "Implementor": "OpenStack Foundation",
            "ImplementationName": "OpenStack Nova",
            "ImplementationVersion": ep.nova_microversion,
            "DowntimeInfo": DOWNTIMES.format(site=site.name),
            "Semantics": "https://docs.openstack.org/api-ref/compute/",
            "Authentication": ep.authentication,
            "IssuerCA": ep.issuer_ca,
            "TrustedCA": sorted(ep.trusted_cas),
        }
    )
    return endpoint


def _accelerator(site: Site, f: Flavor, a: Accelerator, aid: str) -> dict[str, Any]:
    acc = _base(site, aid, f"{a.type} of {f.name}", {}, {"CloudComputingInstanceType": [f.id]})
    acc.update(
        {
            "Type": a.type,
            "Number": a.number,
            "Vendor": a.vendor,
            "Model": a.model,
            "Memory": a.memory,
        }
    )
    return acc


def _instance_type(site: Site, f: Flavor, shares: list[str], aid: str | None) -> dict[str, Any]:
    assoc = {
        "Share": shares,
        "CloudComputingManager": [site.manager_id],
        "CloudComputingEndpoint": [site.endpoint_id],
    }
    if aid:
        assoc["CloudComputingVirtualAccelerator"] = [aid]
    it_other: dict[str, Any] = {f"Benchmark_{t}": v for t, v in f.benchmarks}
    if not f.is_public:
        it_other["public"] = False
    it = _base(site, f.id, f.name, it_other, assoc)
    it.update(
        {
            "Platform": site.platform,
            "CPU": f.vcpus,
            "RAM": f.ram,
            "Disk": f.disk,
            "EphemeralStorage": f.ephemeral,
            "NetworkIn": "undefined",
            "NetworkOut": True,
            "NetworkInfo": "infiniband" if f.infiniband else None,
        }
    )
    return it


def _image(site: Site, img: Image, shares: list[str]) -> dict[str, Any]:
    im = _base(
        site,
        img.id,
        img.name,
        dict(img.other_info),
        {
            "Share": shares,
            "CloudComputingManager": [site.manager_id],
            "CloudComputingEndpoint": [site.endpoint_id],
        },
    )
    im.update(
        {
            # cloud-info-api reads it as a string: never null
            "MarketplaceURL": img.marketplace_url or "",
            "OSPlatform": img.platform,
            "OSFamily": img.os_family,
            "OSName": img.os_name,
            "OSVersion": img.os_version,
            "Version": img.version,
            "Description": img.description,
            "AccessInfo": "none",
            "MinRAM": img.min_ram,
            "DiskSize": img.disk_size,
        }
    )
    return im


def _share(site: Site, share: Share) -> dict[str, Any]:
    sid = site.share_id(share)
    flavors = [f for f in (site.flavor(i) for i in share.flavor_ids) if f is not None]
    sh_other = {
        k: v
        for k, v in (
            ("project_name", share.project_name),
            ("project_domain_name", share.domain_name),
        )
        if v
    }
    sh = _base(
        site,
        sid,
        f"{share.vo} - {share.project_id} share",
        sh_other,
        {
            "CloudComputingService": [site.service_id],
            "CloudComputingEndpoint": [site.endpoint_id],
            "MappingPolicy": [f"{sid}_Policy"],
        },
    )
    sh.update(
        {
            "Description": f"Share in service {site.service_id} for VO {share.vo} "
            f"(Project {share.project_id})",
            "ProjectID": share.project_id,
            "InstanceMaxCPU": max((f.vcpus for f in flavors), default=None),
            "InstanceMaxRAM": max((f.ram for f in flavors), default=None),
            "TotalVM": share.total,
            "RunningVM": share.running,
            "SuspendedVM": share.suspended,
            "HaltedVM": share.halted,
            "MaxVM": share.max_instances
            if share.max_instances is not None and share.max_instances >= 0
            else None,
        }
    )
    return sh


def _mapping_policy(site: Site, share: Share) -> dict[str, Any]:
    sid = site.share_id(share)
    mp = _base(site, f"{sid}_Policy", None, {}, {"Share": [sid], "PolicyUserDomain": [share.vo]})
    mp.update({"Scheme": "org.glite.standard", "Rule": [f"VO:{share.vo}"]})
    return mp


def _access_policy(site: Site) -> dict[str, Any]:
    vos = list(site.all_vos)
    access = _base(
        site,
        f"{site.endpoint_id}_Policy",
        "Access control rules for the OpenStack endpoint",
        {},
        {"CloudComputingEndpoint": [site.endpoint_id], "PolicyUserDomain": vos},
    )
    access.update({"Scheme": "org.glite.standard", "Rule": [f"VO:{vo}" for vo in vos]})
    return access


def site_document(site: Site) -> dict[str, Any]:
    """The whole document: one list per GLUE 2.1 class, each ordered by ID (shares by VO)."""
    fshares, ishares = flavor_shares(site), image_shares(site)
    flavors = sorted(site.flavors, key=lambda x: x.id)
    accel_id = {f.id: f"{f.id}_accelerator" for f in flavors if f.accelerator}
    shares = sorted(site.shares, key=lambda x: (x.vo, x.project_id))
    return {
        "CloudComputingService": [_service(site)],
        "CloudComputingManager": [_manager(site)],
        "CloudComputingEndpoint": [_endpoint(site)],
        "CloudComputingImage": [
            _image(site, img, ishares.get(img.id, []))
            for img in sorted(site.images, key=lambda x: x.id)
        ],
        "CloudComputingInstanceType": [
            _instance_type(site, f, fshares.get(f.id, []), accel_id.get(f.id)) for f in flavors
        ],
        "CloudComputingVirtualAccelerator": [
            _accelerator(site, f, f.accelerator, accel_id[f.id])
            for f in flavors
            if f.accelerator is not None
        ],
        "Share": [_share(site, share) for share in shares],
        "MappingPolicy": [_mapping_policy(site, share) for share in shares],
        "AccessPolicy": [_access_policy(site)],
    }


def render_json(site: Site) -> str:
    """The document, compact: no indentation or blanks (a machine reads it). At 5,000 images
    shared with 50 projects most bytes are the share IDs in every image's Associations,
    which cloud-info-api needs; indentation added ~25% around them (issue 13)."""
    doc = site_document(site)
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
