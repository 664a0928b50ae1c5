"""The usage source backed by the real OpenStack APIs, all on one keystoneauth1 session.

Nova and Keystone through their client libraries, Glance through glanceclient, Neutron
and Cinder as plain REST calls on the same session (the catalog gives their URLs).
Every call has the session's timeout; connection failures and 5xx answers are
retried a bounded number of times with backoff by keystoneauth, then turned by
:func:`fedcloud_core.openstack.classify_openstack_error` into the core's
:class:`~fedcloud_core.errors.OpenStackError` that names the call (401/403 permanent,
connection failures and 5xx transient, as in every service).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ks_exc

from fedcloud_core.errors import (
    OpenStackError,
    OpenStackRefused,
    OpenStackRequestFailed,
    OpenStackUnavailable,
)
from fedcloud_core.openstack import OpenStackClients, classify_openstack_error

from .facts import Action, Flavor, FloatingIP, Image, Project, Server, Volume, parse_time

log = logging.getLogger(__name__)

T = TypeVar("T")
NOVA_MICROVERSION = "2.61"
_NOVA_HEADERS = {
    "X-OpenStack-Nova-API-Version": NOVA_MICROVERSION,
    "OpenStack-API-Version": f"compute {NOVA_MICROVERSION}",
}
RETRIES = 2  # bounded retries (keystoneauth backs off between them)
PAGE = 1000
MAX_PAGES = 10_000  # bound on pagination loops
# Attributes of a Keystone project that are not properties
_PROJECT_FIELDS = {
    "id",
    "name",
    "description",
    "domain_id",
    "enabled",
    "parent_id",
    "is_domain",
    "links",
    "tags",
    "options",
}


def _as_source_error(what: str, exc: BaseException) -> OpenStackError | None:
    """The API failure ``exc`` as an :class:`OpenStackError` (the core's one classification),
    or ``None`` for a programming error."""
    err = classify_openstack_error(exc, what)
    return err if isinstance(err, OpenStackError) else None


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except Exception as exc:
        err = _as_source_error(what, exc)
        if err is None or err is exc:
            raise
        raise err from exc


def _forbidden(exc: BaseException) -> bool:
    return isinstance(classify_openstack_error(exc, ""), OpenStackRefused)


def _flavor_from(info: dict[str, Any], *, embedded: bool) -> Flavor:
    return Flavor(
        id=None if embedded else str(info.get("id")),
        name=str(info.get("original_name") if embedded else info.get("name") or ""),
        vcpus=int(info.get("vcpus") or 0),
        ram_mb=int(info.get("ram") or 0),
        disk_gb=int(info.get("disk") or 0),
        ephemeral_gb=int(info.get("OS-FLV-EXT-DATA:ephemeral", info.get("ephemeral")) or 0),
        extra_specs={str(k): str(v) for k, v in (info.get("extra_specs") or {}).items()},
    )


def server_from_api(info: dict[str, Any]) -> Server:
    """Nova's server JSON (microversion >= 2.47) -> :class:`Server`."""
    flavor_info = info.get("flavor") or {}
    embedded = "vcpus" in flavor_info
    image = info.get("image")
    created = parse_time(info.get("created"))
    if created is None:
        raise ValueError(f"server {info.get('id')} has no creation time")
    return Server(
        id=str(info["id"]),
        name=str(info.get("name") or ""),
        project_id=str(info.get("tenant_id") or info.get("project_id") or ""),
        user_id=info.get("user_id"),
        status=str(info.get("status") or "UNKNOWN").upper(),
        created=created,
        terminated=parse_time(info.get("OS-SRV-USG:terminated_at")),
        launched=parse_time(info.get("OS-SRV-USG:launched_at")),
        updated=parse_time(info.get("updated")),
        task_state=str(info["OS-EXT-STS:task_state"])
        if info.get("OS-EXT-STS:task_state")
        else None,
        image_id=str(image["id"]) if isinstance(image, dict) and image.get("id") else None,
        flavor=_flavor_from(flavor_info, embedded=True) if embedded else None,
        flavor_ref=str(flavor_info.get("id") or flavor_info.get("original_name") or "") or None,
    )


class OpenStackUsageSource:
    """Reads usage facts from Nova, Keystone, Glance, Neutron and Cinder. No I/O until called."""

    def __init__(self, clients: OpenStackClients):
        self.clients = clients
        self._nova: Any = None
        self._compute: adapter.Adapter | None = None

    @property
    def nova(self) -> Any:
        """Nova at microversion 2.61: embedded flavors (>= 2.47) with extra specs in lists."""
        if self._nova is None:
            from novaclient import client as nova_client

            self._nova = nova_client.Client(
                NOVA_MICROVERSION,
                session=self.clients.session,
                region_name=self.clients.region_name,
                endpoint_type=self.clients.interface,
                connect_retries=RETRIES,
            )
        return self._nova

    # ------------------------------------------------------------------ REST helpers

    def _adapter(self, *service_types: str) -> adapter.Adapter:
        last: Exception | None = None
        for st in service_types:
            ad = adapter.Adapter(
                self.clients.session,
                service_type=st,
                interface=self.clients.interface,
                region_name=self.clients.region_name,
                connect_retries=RETRIES,
                status_code_retries=RETRIES,
                retriable_status_codes=[502, 503, 504],
            )
            try:
                if ad.get_endpoint():
                    return ad
            except ks_exc.EndpointNotFound as exc:
                last = exc
        raise OpenStackRequestFailed(
            f"no {' or '.join(service_types)} endpoint in the catalog: {last}"
        )

    def _compute_adapter(self) -> adapter.Adapter:
        """Nova on the session, straight: novaclient's resource objects cost more than the
        answers (instance actions and servers are read this way, per server and in bulk)."""
        if self._compute is None:
            self._compute = self._adapter("compute")
        return self._compute

    def _paged(
        self,
        ad: adapter.Adapter,
        path: str,
        key: str,
        params: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Iterator[dict]:
        url: str | None = path
        query: dict[str, Any] | None = {**params, "limit": PAGE}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            resp = ad.get(url, params=query, headers=headers, raise_exc=True)
            try:
                body = json.loads(resp.content)
            except ValueError as exc:
                raise OpenStackUnavailable(f"{path}: the answer is not JSON: {exc}") from None
            yield from body.get(key) or []
            nxt = [
                link["href"] for link in body.get(f"{key}_links") or [] if link.get("rel") == "next"
            ]
            # the next page: the same path on our endpoint with the link's query (markers,
            # filters), not the link itself - behind a proxy Nova and Neutron may put
            # their internal address in it
            url, query = (path, parse_qs(urlsplit(nxt[0]).query)) if nxt else (None, None)
        raise OpenStackRequestFailed(f"{path}: more than {MAX_PAGES} pages; giving up")

    # ------------------------------------------------------------------ UsageSource

    def projects(self) -> Sequence[Project]:
        def fetch() -> list[Project]:
            out = []
            for p in self.clients.keystone.projects.list():
                info = p.to_dict() if hasattr(p, "to_dict") else dict(p._info)
                props = {
                    k: str(v) for k, v in info.items() if k not in _PROJECT_FIELDS and v is not None
                }
                out.append(
                    Project(
                        id=str(info["id"]),
                        name=str(info.get("name") or ""),
                        properties=props,
                        tags=tuple(str(t) for t in info.get("tags") or ()),
                    )
                )
            return out

        return _call("keystone projects.list", fetch)

    def user_names(self) -> dict[str, str]:
        try:
            users = list(self.clients.keystone.users.list())
        except Exception as exc:
            if _forbidden(exc):
                log.info("Keystone users are not readable (%s): GlobalUserName is left out", exc)
                return {}
            err = _as_source_error("keystone users.list", exc)
            if err is None:
                raise
            raise err from exc
        return {str(u.id): str(getattr(u, "name", "")) for u in users}

    def flavors(self) -> Sequence[Flavor]:
        def fetch() -> list[Flavor]:
            return [
                _flavor_from(f.to_dict(), embedded=False)
                for f in self.nova.flavors.list(is_public=None)
            ]

        return _call("nova flavors.list", fetch)

    def images(self) -> Sequence[Image]:
        def fetch() -> list[Image]:
            out = []
            # visibility=all: community images are not listed otherwise
            for img in self.clients.glance.images.list(filters={"visibility": "all"}):
                mpuri = img.get("vmcatcher_event_ad_mpuri")
                out.append(
                    Image(
                        id=str(img["id"]),
                        name=str(img.get("name") or ""),
                        mpuri=str(mpuri) if mpuri else None,
                    )
                )
            return out

        return _call("glance images.list", fetch)

    def _server_list(
        self, what: str, params: dict[str, Any], project_id: str | None
    ) -> list[Server]:
        """``GET /servers/detail`` page by page (Nova's ``servers_links``), sorted by id.

        Straight on the session, each page's JSON turned into facts as it comes:
        novaclient would wrap each server in a resource object and deep-copy it again
        for ``to_dict()``, most of a big listing's client time. ``project_id``: only
        that project's servers are kept (defensive: never account another project's
        server under this one).
        """

        def fetch() -> list[Server]:
            seen: dict[str, Server] = {}
            pages = self._paged(
                self._compute_adapter(), "/servers/detail", "servers", params, _NOVA_HEADERS
            )
            for info in pages:
                if project_id is not None and str(info.get("tenant_id", project_id)) != project_id:
                    continue
                seen[str(info["id"])] = server_from_api(info)
            return [seen[k] for k in sorted(seen)]

        return _call(what, fetch)

    def servers(self, project_id: str, deleted_since: datetime | None) -> Sequence[Server]:
        base = {"all_tenants": 1, "project_id": project_id}
        alive = self._server_list(f"nova servers.list (project {project_id})", base, project_id)
        if deleted_since is None:
            return alive
        since = deleted_since.strftime("%Y-%m-%dT%H:%M:%SZ")
        deleted = self._server_list(
            f"nova servers.list deleted since {since} (project {project_id})",
            {**base, "deleted": "True", "changes-since": since},
            project_id,
        )
        seen = {s.id: s for s in [*alive, *deleted]}
        return [seen[k] for k in sorted(seen)]

    def deleted_servers(self, since: datetime) -> Sequence[Server]:
        text = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._server_list(
            f"nova servers.list deleted since {text} (all projects)",
            {"all_tenants": 1, "deleted": "True", "changes-since": text},
            None,
        )

    def changed_servers(self, project_id: str, since: datetime) -> Sequence[Server]:
        text = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        # with changes-since and no 'deleted' filter Nova lists the deleted servers too
        return self._server_list(
            f"nova servers.list changed since {text} (project {project_id})",
            {"all_tenants": 1, "project_id": project_id, "changes-since": text},
            project_id,
        )

    def actions(self, server_id: str) -> Sequence[Action]:
        def fetch() -> list[Action]:
            ad = self._compute_adapter()
            path = f"/servers/{quote(server_id, safe='')}/os-instance-actions"
            out = []
            params: dict[str, Any] = {"limit": PAGE}
            for _ in range(MAX_PAGES):  # newest first; a full page may have a next one
                resp = ad.get(path, params=params, headers=_NOVA_HEADERS, raise_exc=True)
                try:
                    page = json.loads(resp.content).get("instanceActions") or []
                except (ValueError, AttributeError) as exc:
                    raise OpenStackUnavailable(f"{path}: the answer is not JSON: {exc}") from None
                for a in page:
                    t = parse_time(a.get("start_time"))
                    if t is not None:
                        out.append(Action(name=str(a.get("action")), time=t))
                if len(page) < PAGE:
                    return out
                marker = page[-1].get("request_id")
                if not marker:
                    return out
                params = {"limit": PAGE, "marker": marker}
            raise OpenStackRequestFailed(f"more than {MAX_PAGES} pages of actions; giving up")

        return _call(f"nova instance actions of {server_id}", fetch)

    def all_floating_ips(self) -> dict[str, list[FloatingIP]]:
        def fetch() -> dict[str, list[FloatingIP]]:
            ad = self._adapter("network")
            fips = list(self._paged(ad, "/v2.0/floatingips", "floatingips", {}))
            # the server behind a bound address: Neutron's port_details (fip-port-details),
            # else the port itself, asked for only where it is missing
            unknown = sorted(
                {
                    str(f["port_id"])
                    for f in fips
                    if f.get("port_id") and not isinstance(f.get("port_details"), dict)
                }
            )
            devices: dict[str, Any] = {}
            for i in range(0, len(unknown), 100):
                for p in self._paged(
                    ad,
                    "/v2.0/ports",
                    "ports",
                    {"id": unknown[i : i + 100], "fields": ["id", "device_id"]},
                ):
                    devices[p["id"]] = p.get("device_id")
            out: dict[str, list[FloatingIP]] = {}
            for f in fips:
                owner = str(f.get("project_id") or f.get("tenant_id") or "")
                port = f.get("port_id")
                details = f.get("port_details")
                device = None
                if port:
                    device = (
                        details.get("device_id") if isinstance(details, dict) else devices.get(port)
                    )
                out.setdefault(owner, []).append(
                    FloatingIP(
                        id=str(f["id"]),
                        address=str(f.get("floating_ip_address") or ""),
                        project_id=owner,
                        port_id=port,
                        device_id=device,
                    )
                )
            return {k: sorted(v, key=lambda x: x.id) for k, v in out.items()}

        return _call("neutron floating IPs (all projects)", fetch)

    def floating_ips(self, project_id: str) -> Sequence[FloatingIP]:
        def fetch() -> list[FloatingIP]:
            ad = self._adapter("network")
            ports = {
                p["id"]: p.get("device_id")
                for p in self._paged(
                    ad,
                    "/v2.0/ports",
                    "ports",
                    {"project_id": project_id, "fields": ["id", "device_id"]},
                )
            }
            out = []
            for f in self._paged(
                ad, "/v2.0/floatingips", "floatingips", {"project_id": project_id}
            ):
                if str(f.get("project_id") or f.get("tenant_id")) != project_id:
                    continue
                port = f.get("port_id")
                out.append(
                    FloatingIP(
                        id=str(f["id"]),
                        address=str(f.get("floating_ip_address") or ""),
                        project_id=project_id,
                        port_id=port,
                        device_id=ports.get(port) if port else None,
                    )
                )
            return sorted(out, key=lambda x: x.id)

        return _call(f"neutron floating IPs (project {project_id})", fetch)

    def volumes(self, project_id: str) -> Sequence[Volume]:
        def fetch() -> list[Volume]:
            ad = self._adapter("block-storage", "volumev3")
            out = []
            for v in self._paged(
                ad, "/volumes/detail", "volumes", {"all_tenants": 1, "project_id": project_id}
            ):
                owner = str(v.get("os-vol-tenant-attr:tenant_id") or project_id)
                created = parse_time(v.get("created_at"))
                if owner != project_id or created is None:
                    continue
                out.append(
                    Volume(
                        id=str(v["id"]),
                        name=str(v.get("name") or ""),
                        project_id=owner,
                        user_id=v.get("user_id"),
                        size_gb=int(v.get("size") or 0),
                        created=created,
                        status=str(v.get("status") or ""),
                    )
                )
            return sorted(out, key=lambda x: x.id)

        return _call(f"cinder volumes (project {project_id})", fetch)
