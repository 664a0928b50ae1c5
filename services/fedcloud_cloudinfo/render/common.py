"""Helpers shared by the LDIF renderers: DNs, timestamps, placeholders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.ldif import Entry

if TYPE_CHECKING:
    from ..model import Site

SUFFIX = "o=glue"
GROUP_DN = f"GLUE2GroupID=resource,{SUFFIX}"
UNKNOWN_INT = 999999999  # GLUE2 placeholder for an unknown integer
UNKNOWN_STR = "UNDEFINEDVALUE"
CAPABILITIES = ("executionmanagement.dynamicvmdeploy", "security.accounting")
ARGO_STATUS = "https://argo.egi.eu/egi/report-status/Critical/SITES/{site}"
DOWNTIMES = "https://goc.egi.eu/portal/index.php?Page_Type=Downtimes_Calendar&site={site}"


def escape_rdn_value(value: str) -> str:
    """RFC 4514 escaping of an attribute value in a DN (``=`` too; controls as hex pairs)."""
    return dnlib.escape(value).replace("=", "\\=")  # dnlib.escape writes no "=" of its own


def rdn(attr: str, value: str, parent: str) -> str:
    return f"{attr}={escape_rdn_value(value)},{parent}"


def glue_time(ts: datetime) -> str:
    """UTC ``YYYY-MM-DDThh:mm:ssZ`` (no microseconds, no offset)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def glue_int(value: int | None) -> int:
    """An INTEGER attribute value: the GLUE2 placeholder when unknown or unlimited (-1)."""
    if value is None or value < 0:
        return UNKNOWN_INT
    return int(value)


def top_entries() -> list[Entry]:
    """The suffix and the ``resource`` group at the top of every snapshot."""
    return [
        Entry(SUFFIX).add("objectClass", "organization").add("o", "glue"),
        Entry(GROUP_DN).add("objectClass", "GLUE2Group").add("GLUE2GroupID", "resource"),
    ]


def entity(dn: str, classes: list[str], id_attr: str, id_value: str) -> Entry:
    e = Entry(dn)
    e.add("objectClass", *classes)
    e.add(id_attr, id_value)
    return e


def endpoint_entry(
    site: Site,
    dn: str,
    ts: str,
    *,
    endpoint_class: str,
    service_fk: str,
    other_info: tuple[str, ...] = (),
) -> Entry:
    """The Nova endpoint entry, shared by the GLUE 2.0 and 2.1 renderers (they differ in
    the endpoint class and the name of the service foreign key)."""
    ep = site.endpoint
    e = entity(
        dn, ["GLUE2Entity", "GLUE2Endpoint", endpoint_class], "GLUE2EndpointID", site.endpoint_id
    )
    e.add("GLUE2EntityName", f"OpenStack endpoint at {site.name}")
    e.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
    other = []
    if ep.keystone_version:
        other.append(f"KeystoneVersion={ep.keystone_version}")
    if ep.glance_version:
        other.append(f"GlanceVersion={ep.glance_version}")
    other.extend(other_info)
    e.add("GLUE2EntityOtherInfo", *other)
    e.add("GLUE2EndpointURL", ep.url)
    e.add("GLUE2EndpointCapability", *CAPABILITIES)
    e.add("GLUE2EndpointTechnology", "webservice")
    e.add("GLUE2EndpointInterfaceName", "org.openstack.nova")
    e.add("GLUE2EndpointInterfaceVersion", ep.nova_version)
    e.add("GLUE2EndpointSemantics", "https://docs.openstack.org/api-ref/compute/")
    e.add("GLUE2EndpointImplementor", "OpenStack Foundation")
    e.add("GLUE2EndpointImplementationName", "OpenStack Nova")
    e.add("GLUE2EndpointImplementationVersion", ep.nova_microversion or UNKNOWN_STR)
    e.add("GLUE2EndpointQualityLevel", site.production_level)
    e.add("GLUE2EndpointHealthState", "ok")
    e.add("GLUE2EndpointHealthStateInfo", "Endpoint functioning properly")
    e.add("GLUE2EndpointServingState", site.production_level)
    e.add("GLUE2EndpointIssuerCA", ep.issuer_ca)
    e.add("GLUE2EndpointTrustedCA", *sorted(ep.trusted_cas))
    e.add("GLUE2EndpointDowntimeInfo", DOWNTIMES.format(site=site.name))
    e.add("GLUE2EndpointServiceForeignKey", site.service_id)
    e.add(service_fk, site.service_id)
    return e


def service_entry(site: Site, dn: str, ts: str, *, service_class: str) -> Entry:
    """The cloud compute service entry's common attributes (GLUE 2.0 and 2.1 differ in the
    service class and add their own job/VM counters)."""
    s = entity(
        dn, ["GLUE2Entity", "GLUE2Service", service_class], "GLUE2ServiceID", site.service_id
    )
    s.add("GLUE2EntityName", f"Cloud Compute service at {site.name}")
    s.add("GLUE2EntityCreationTime", ts).add("GLUE2EntityValidity", site.validity)
    s.add(
        "GLUE2EntityOtherInfo",
        f"InfoProviderName={site.provider_name}",
        f"InfoProviderVersion={site.provider_version}",
    )
    if site.gocdb_id:
        s.add("GLUE2EntityOtherInfo", f"gocdb_id={site.gocdb_id}")
    s.add("GLUE2ServiceType", "org.openstack.nova")
    s.add("GLUE2ServiceQualityLevel", site.production_level)
    s.add("GLUE2ServiceAdminDomainForeignKey", site.name)
    s.add("GLUE2ServiceCapability", *CAPABILITIES)
    s.add("GLUE2ServiceStatusInfo", ARGO_STATUS.format(site=site.name))
    s.add(
        "GLUE2ServiceComplexity",
        f"endpointType=1,share={len(site.shares)},resource={len(site.flavors)}",
    )
    return s
