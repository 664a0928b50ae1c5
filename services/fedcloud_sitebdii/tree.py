"""The site tree: static site entries + re-homed resource BDII entries (pure functions).

::

    o=glue
    GLUE2DomainID=<SITE>,o=glue                     GLUE2Domain + GLUE2AdminDomain
      GLUE2LocationID=<SITE>-location,...           GLUE2Location
      GLUE2ContactID=<SITE>-<type>,...              GLUE2Contact (general, security, sysadmin, usersupport)
      GLUE2GroupID=resource,...                     GLUE2Group
        GLUE2ServiceID=<host>_bdii_site,...         this site BDII (service + endpoint)
        <every entry of every resource BDII>        re-homed from GLUE2GroupID=resource,o=glue
"""

from __future__ import annotations

from collections.abc import Iterable

from fedcloud_core import __version__
from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.config.site import SiteConfig
from fedcloud_core.ldif import Entry

SUFFIX = "o=glue"
RESOURCE_BASE = "GLUE2GroupID=resource,o=glue"
CONTACT_TYPES = ("general", "security", "sysadmin", "usersupport")
UNKNOWN_INFO = "resource BDII not answering; its last data is kept for a limited time"


def domain_dn(site: str) -> str:
    return f"GLUE2DomainID={dnlib.escape(site)},{SUFFIX}"


def group_dn(site: str) -> str:
    return f"GLUE2GroupID=resource,{domain_dn(site)}"


def _fmt_coord(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".")


def static_entries(site: SiteConfig) -> list[Entry]:
    """o=glue, the domain with its location and contacts, and the resource group."""
    name = site.name
    dom = domain_dn(name)
    out = [Entry(SUFFIX).add("objectClass", "organization").add("o", "glue")]
    d = Entry(dom).add("objectClass", "GLUE2Domain", "GLUE2AdminDomain").add("GLUE2DomainID", name)
    d.add("GLUE2EntityName", name)
    if site.description:
        d.add("GLUE2DomainDescription", site.description)
    d.add("GLUE2DomainWWW", site.url)
    d.add("GLUE2AdminDomainDistributed", "false")
    out.append(d)
    if any(v is not None for v in (site.country, site.city, site.latitude, site.longitude)):
        loc_id = f"{name}-location"
        loc = Entry(f"GLUE2LocationID={dnlib.escape(loc_id)},{dom}").add(
            "objectClass", "GLUE2Location"
        )
        loc.add("GLUE2LocationID", loc_id).add("GLUE2EntityName", f"Location of {name}")
        loc.add("GLUE2LocationPlace", site.city).add("GLUE2LocationCountry", site.country)
        if site.latitude is not None:
            loc.add("GLUE2LocationLatitude", _fmt_coord(site.latitude))
        if site.longitude is not None:
            loc.add("GLUE2LocationLongitude", _fmt_coord(site.longitude))
        loc.add("GLUE2LocationDomainForeignKey", name)
        out.append(loc)
    for ctype in CONTACT_TYPES:
        addr = getattr(site.contacts, ctype)
        if not addr:
            continue
        cid = f"{name}-{ctype}"
        c = Entry(f"GLUE2ContactID={dnlib.escape(cid)},{dom}").add("objectClass", "GLUE2Contact")
        c.add("GLUE2ContactID", cid).add("GLUE2EntityName", f"{ctype} contact of {name}")
        c.add("GLUE2ContactDetail", f"mailto:{addr}").add("GLUE2ContactType", ctype)
        c.add("GLUE2ContactDomainForeignKey", name)
        out.append(c)
    out.append(
        Entry(group_dn(name)).add("objectClass", "GLUE2Group").add("GLUE2GroupID", "resource")
    )
    return out


def bdii_site_entries(site: SiteConfig, host: str, port: int, *, quality: str) -> list[Entry]:
    """This site BDII as a GLUE2 service with one ``bdii_site`` endpoint.

    ``host`` and ``port`` are the public ones (``SiteBdiiConfig.published_host()``, never a
    loopback name): top-level BDIIs and users follow this URL."""
    sid = f"{host}_bdii_site"
    eid = f"{sid}_endpoint"
    sdn = f"GLUE2ServiceID={dnlib.escape(sid)},{group_dn(site.name)}"
    svc = Entry(sdn).add("objectClass", "GLUE2Entity", "GLUE2Service").add("GLUE2ServiceID", sid)
    svc.add("GLUE2EntityName", f"Site BDII of {site.name}")
    svc.add("GLUE2ServiceType", "bdii_site").add("GLUE2ServiceQualityLevel", quality)
    svc.add("GLUE2ServiceCapability", "information.discovery")
    svc.add("GLUE2ServiceAdminDomainForeignKey", site.name)
    ep = Entry(f"GLUE2EndpointID={dnlib.escape(eid)},{sdn}")
    ep.add("objectClass", "GLUE2Entity", "GLUE2Endpoint").add("GLUE2EndpointID", eid)
    ep.add("GLUE2EntityName", f"Site BDII endpoint of {site.name}")
    ep.add("GLUE2EndpointURL", f"ldap://{host}:{port}/{domain_dn(site.name)}")
    ep.add("GLUE2EndpointCapability", "information.discovery")
    ep.add("GLUE2EndpointTechnology", "webservice")  # GLUE2 EndpointTechnology_t: not "ldap"
    ep.add("GLUE2EndpointInterfaceName", "bdii_site").add("GLUE2EndpointInterfaceVersion", "2.0")
    ep.add("GLUE2EndpointImplementationName", "fedcloud-appliance site-bdii")
    ep.add("GLUE2EndpointImplementationVersion", __version__)
    ep.add("GLUE2EndpointQualityLevel", quality)
    ep.add("GLUE2EndpointHealthState", "ok").add("GLUE2EndpointHealthStateInfo", "answering")
    ep.add("GLUE2EndpointServingState", "production")
    ep.add("GLUE2EndpointServiceForeignKey", sid)
    return [svc, ep]


def rehome(
    entries: Iterable[Entry], site: str, old_base: str = RESOURCE_BASE
) -> tuple[list[Entry], int]:
    """Entries below ``old_base`` moved below the site's resource group; (moved, skipped)."""
    new_base = group_dn(site)
    out: list[Entry] = []
    skipped = 0
    for e in entries:
        try:
            new = dnlib.rehome(e.dn, old_base, new_base)
        except dnlib.DnError:
            new = None
        if new is None or dnlib.normalize(new) == dnlib.normalize(new_base):
            skipped += 1  # outside the resource group, or the group itself (we publish our own)
            continue
        out.append(Entry(new, {k: list(v) for k, v in e.attrs.items()}))
    return out, skipped


def is_endpoint(e: Entry) -> bool:
    return any(v.lower() == "glue2endpoint" for v in e.get("objectClass"))


def mark_unknown(entries: Iterable[Entry]) -> list[Entry]:
    """Copies with every endpoint's health set to ``unknown`` (data of a silent resource BDII)."""
    out = []
    for e in entries:
        attrs = {k: list(v) for k, v in e.attrs.items()}
        if is_endpoint(e):
            for k in [
                k
                for k in attrs
                if k.lower() in ("glue2endpointhealthstate", "glue2endpointhealthstateinfo")
            ]:
                del attrs[k]
            attrs["GLUE2EndpointHealthState"] = ["unknown"]
            attrs["GLUE2EndpointHealthStateInfo"] = [UNKNOWN_INFO]
        out.append(Entry(e.dn, attrs))
    return out


def foreign_domains(entries: Iterable[Entry], site: str) -> set[str]:
    """AdminDomain foreign keys of services that differ from the site name (a misconfiguration)."""
    out = set()
    for e in entries:
        for v in e.get("GLUE2ServiceAdminDomainForeignKey"):
            if v != site:
                out.add(v)
    return out


def grid_entries(site: str) -> list[Entry]:
    """``mds-vo-name=<SITE>,o=grid``: the base GOCDB's site BDII URL names (answered, no GLUE 1.3 data)."""
    return [
        Entry("o=grid").add("objectClass", "organization").add("o", "grid"),
        Entry(f"mds-vo-name={dnlib.escape(site)},o=grid")
        .add("objectClass", "MdsVo")
        .add("mds-vo-name", site),
    ]
