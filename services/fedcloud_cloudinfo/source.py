"""Where cloud-info reads OpenStack: a small interface and its real implementation.

:class:`CloudSource` is what :func:`fedcloud_cloudinfo.collect.collect` depends on;
unit tests pass a fake. :class:`OpenStackSource` wraps the Nova (microversion 2.61,
extra specs inline), Glance v2 and Keystone v3 clients of
:class:`fedcloud_core.openstack.OpenStackClients` and counts every HTTP request
made through their shared session (``api_calls``).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from fedcloud_core.errors import FedcloudError, OpenStackUnavailable
from fedcloud_core.openstack import classify_openstack_error

PAGE = 1000


@dataclass(frozen=True)
class RawProject:
    id: str
    name: str
    domain_name: str | None = None


@dataclass(frozen=True)
class RawFlavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int = 0
    is_public: bool = True
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RawImage:
    id: str
    name: str
    visibility: str
    owner: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    size: int | None = None  # bytes
    min_ram: int = 0


@dataclass(frozen=True)
class ApiVersions:
    keystone_url: str
    keystone_version: str | None = None
    nova_version: str = "2.1"
    nova_microversion: str | None = None
    glance_version: str | None = None


class CloudSource(Protocol):
    """The OpenStack facts cloud-info needs; every method may raise FedcloudError."""

    @property
    def api_calls(self) -> int: ...

    def versions(self) -> ApiVersions: ...

    def projects(self) -> list[RawProject]: ...

    def flavors(self) -> list[RawFlavor]: ...

    def flavor_projects(self, flavor_id: str) -> list[str]: ...

    def quotas(self, project_id: str) -> dict[str, int]: ...

    def capacity(self) -> dict[str, int]: ...

    def server_states(self, project_id: str) -> dict[str, int]: ...

    def images(self) -> list[RawImage]: ...

    def image_members(self, image_id: str) -> list[str]: ...


def _wrap(what: str, exc: Exception) -> FedcloudError:
    """A client exception as the core's class (:func:`classify_openstack_error`: 401/403
    and other 4xx permanent, no answer and 5xx transient); anything else the clients
    raised while reading an answer counts as OpenStack unavailable for this call."""
    return classify_openstack_error(exc, what) or OpenStackUnavailable(
        f"{what}: {type(exc).__name__}: {exc}"
    )


class OpenStackSource:
    """The real :class:`CloudSource` on top of ``OpenStackClients`` (no I/O in __init__)."""

    def __init__(self, clients: Any, *, endpoint_url: str | None = None):
        self._clients = clients
        self._endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._calls = 0
        self._hooked = False

    # --- counting ------------------------------------------------------------------------

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._calls += 1
        return response

    def _hook(self) -> None:
        if not self._hooked:
            hooks = self._clients.session.session.hooks.setdefault("response", [])
            hooks.append(self._count)
            self._hooked = True

    @property
    def api_calls(self) -> int:
        return self._calls

    # --- facts ---------------------------------------------------------------------------

    def versions(self) -> ApiVersions:
        self._hook()
        sess = self._clients.session
        try:
            url = self._endpoint_url or sess.get_endpoint(
                interface="public", service_type="identity"
            )
            auth_url = str(getattr(sess.auth, "auth_url", "") or url).rstrip("/")
        except Exception as exc:  # noqa: BLE001 - keystoneauth raises many types
            raise _wrap("Keystone authentication", exc) from None
        keystone_url = (self._endpoint_url or auth_url).rstrip("/")
        ks_version = (
            keystone_url.rsplit("/", 1)[-1] if keystone_url.endswith(("v3", "v3/")) else None
        )
        try:
            current = self._clients.nova.versions.get_current()
        except Exception as exc:  # noqa: BLE001
            raise _wrap("Nova versions", exc) from None
        nova_micro = getattr(current, "version", None) or None
        glance_version = None
        try:
            listed = self._clients.glance.versions.list()
            current_ids = [
                v["id"] if isinstance(v, dict) else v.id
                for v in listed
                if (v["status"] if isinstance(v, dict) else v.status) == "CURRENT"
            ]
            glance_version = (
                sorted(current_ids, key=_version_key)[-1].lstrip("v") if current_ids else None
            )
        except Exception as exc:  # noqa: BLE001
            raise _wrap("Glance versions", exc) from None
        return ApiVersions(
            keystone_url=keystone_url,
            keystone_version=ks_version,
            nova_version="2.1",
            nova_microversion=nova_micro,
            glance_version=glance_version,
        )

    def projects(self) -> list[RawProject]:
        self._hook()
        ks = self._clients.keystone
        try:
            domains = {d.id: d.name for d in ks.domains.list()}
            projects = ks.projects.list()
        except Exception as exc:  # noqa: BLE001
            raise _wrap("Keystone projects", exc) from None
        return [
            RawProject(p.id, p.name, domains.get(getattr(p, "domain_id", None))) for p in projects
        ]

    def flavors(self) -> list[RawFlavor]:
        self._hook()
        nova = self._clients.nova
        out: list[RawFlavor] = []
        marker = None
        try:
            while True:
                page = nova.flavors.list(detailed=True, is_public=None, limit=PAGE, marker=marker)
                for f in page:
                    specs = getattr(f, "extra_specs", None)
                    if specs is None:  # microversion < 2.61: one call per flavor, never per key
                        specs = f.get_keys()
                    out.append(
                        RawFlavor(
                            id=str(f.id),
                            name=f.name,
                            vcpus=int(f.vcpus),
                            ram=int(f.ram),
                            disk=int(f.disk),
                            ephemeral=int(getattr(f, "OS-FLV-EXT-DATA:ephemeral", 0) or 0),
                            is_public=bool(getattr(f, "os-flavor-access:is_public", True)),
                            extra_specs={str(k): str(v) for k, v in (specs or {}).items()},
                        )
                    )
                if len(page) < PAGE:
                    break
                marker = page[-1].id
        except Exception as exc:  # noqa: BLE001
            raise _wrap("Nova flavors", exc) from None
        return out

    def flavor_projects(self, flavor_id: str) -> list[str]:
        self._hook()
        try:
            return [a.tenant_id for a in self._clients.nova.flavor_access.list(flavor=flavor_id)]
        except Exception as exc:  # noqa: BLE001
            raise _wrap(f"Nova flavor access of {flavor_id}", exc) from None

    def quotas(self, project_id: str) -> dict[str, int]:
        """Limits (``instances``, ``cores``, ``ram``) and usage (``<name>_in_use``): one call,
        the quota set with ``detail`` (the same request count as the plain quota set)."""
        self._hook()
        try:
            q = self._clients.nova.quotas.get(project_id, detail=True)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(f"Nova quotas of {project_id}", exc) from None
        out: dict[str, int] = {}
        for k in ("instances", "cores", "ram"):
            v = getattr(q, k, None)
            if isinstance(v, dict):  # detail: {"limit": n, "in_use": n, "reserved": n}
                if isinstance(v.get("limit"), int):
                    out[k] = int(v["limit"])
                if isinstance(v.get("in_use"), int):
                    out[f"{k}_in_use"] = int(v["in_use"])
            elif v is not None:
                out[k] = int(v)
        return out

    def capacity(self) -> dict[str, int]:
        """Hypervisor totals in one paged list: ``logical_cpus`` (sum of ``vcpus``, or of the
        CPU topology) and ``physical_cpus`` (sockets x cores, without threads). Admin-only by
        Nova's default policy: a reader gets 403 and the caller publishes placeholders."""
        self._hook()
        hypervisors: list[Any] = []
        marker = None
        try:
            while True:  # pages of PAGE (microversion >= 2.33)
                page = self._clients.nova.hypervisors.list(detailed=True, limit=PAGE, marker=marker)
                hypervisors.extend(page)
                if len(page) < PAGE:
                    break
                marker = page[-1].id
        except Exception as exc:  # noqa: BLE001
            raise _wrap("Nova hypervisors", exc) from None
        logical = physical = 0
        known_logical = known_physical = bool(hypervisors)
        for h in hypervisors:
            topo = _topology(getattr(h, "cpu_info", None))
            vcpus = getattr(h, "vcpus", None)
            if isinstance(vcpus, int) and vcpus > 0:
                logical += vcpus
            elif topo:
                logical += topo[0] * topo[1] * topo[2]
            else:
                known_logical = False
            if topo:
                physical += topo[0] * topo[1]
            else:
                known_physical = False
        out: dict[str, int] = {}
        if known_logical:
            out["logical_cpus"] = logical
        if known_physical:
            out["physical_cpus"] = physical
        return out

    def server_states(self, project_id: str) -> dict[str, int]:
        self._hook()
        counts: Counter[str] = Counter()
        try:
            servers = self._clients.nova.servers.list(
                detailed=True,
                limit=-1,
                search_opts={"all_tenants": True, "project_id": project_id},
            )
        except Exception as exc:  # noqa: BLE001
            raise _wrap(f"Nova servers of {project_id}", exc) from None
        for s in servers:
            counts[str(getattr(s, "status", "UNKNOWN")).upper()] += 1
        return dict(counts)

    def images(self) -> list[RawImage]:
        self._hook()
        out: list[RawImage] = []
        try:
            for img in _iter(
                self._clients.glance.images.list(
                    filters={"status": "active", "visibility": "all"},
                    page_size=PAGE,
                )
            ):
                d = dict(img)
                out.append(
                    RawImage(
                        id=str(d.pop("id")),
                        name=str(d.pop("name", "") or ""),
                        visibility=str(d.pop("visibility", "private")),
                        owner=d.pop("owner", None),
                        size=d.get("size"),
                        min_ram=int(d.get("min_ram") or 0),
                        properties=d,
                    )
                )
        except Exception as exc:  # noqa: BLE001
            raise _wrap("Glance images", exc) from None
        return out

    def image_members(self, image_id: str) -> list[str]:
        self._hook()
        try:
            members = self._clients.glance.image_members.list(image_id)
            return [m["member_id"] for m in members if m.get("status") == "accepted"]
        except Exception as exc:  # noqa: BLE001
            raise _wrap(f"Glance members of {image_id}", exc) from None


def _topology(cpu_info: Any) -> tuple[int, int, int] | None:
    """(sockets, cores, threads) from a hypervisor's ``cpu_info`` (a dict or JSON text)."""
    if isinstance(cpu_info, str):
        try:
            cpu_info = json.loads(cpu_info)
        except ValueError:
            return None
    topo = cpu_info.get("topology") if isinstance(cpu_info, dict) else None
    if not isinstance(topo, dict):
        return None
    try:
        t = (int(topo["sockets"]), int(topo["cores"]), int(topo.get("threads", 1)))
    except (KeyError, TypeError, ValueError):
        return None
    return t if min(t) > 0 else None


def _iter(it: Any) -> Iterator[Any]:
    yield from it


def _version_key(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.lstrip("v").split("."))
    except ValueError:
        return (0,)
