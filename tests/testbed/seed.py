"""The deterministic demo site, created through the public APIs, and its manifest.

Everything is find-or-create by name, so a reseed creates nothing twice;
servers are booted only once (their history cannot be replayed). The manifest
``$DIR/seed.json`` records ids and, for every server, the timeline of actions
as the seed observed them (UTC).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import qcow2
from .clients import Clients, session
from .layout import AUTH_URL, READER_USER, REGION, Layout

SEED_VERSION = 1
STEP_GAP = 3.0  # seconds between two state changes of a server
WAIT = 180.0  # seconds a state change may take
DEMO_PASSWORD = "demo-secret"
MANAGED_TAG = "fedcloud-appliance"

# project -> VO. Keystone tags are plain strings: the mapping is tagged "VO:<vo>".
MAPPED_PROJECTS: list[tuple[str, str]] = [
    ("vo-ops", "ops"),
    ("vo-fedcloud", "fedcloud.egi.eu"),
    ("vo-fedcloud-2", "fedcloud.egi.eu"),
]
UNMAPPED_PROJECT = "unmapped"
# demo users (members) and the projects they work in
USERS = {"alice": ["vo-ops", UNMAPPED_PROJECT], "bob": ["vo-fedcloud", "vo-fedcloud-2"]}


@dataclass(frozen=True)
class FlavorSpec:
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int = 0
    public: bool = True
    specs: dict[str, str] = field(default_factory=dict)
    access: tuple[str, ...] = ()  # projects granted a private flavor


FLAVORS = (
    FlavorSpec("m1.small", 1, 2048, 20),
    FlavorSpec("m1.medium", 2, 4096, 40, ephemeral=10),
    FlavorSpec("p1.private", 4, 8192, 40, public=False, access=("vo-fedcloud",)),
    FlavorSpec("g1.gpu", 8, 32768, 80, specs={
        "Accelerator:Type": "GPU", "Accelerator:Vendor": "NVIDIA",
        "Accelerator:Model": "A100", "Accelerator:Number": "1"}),
    FlavorSpec("b1.bench", 2, 4096, 20, specs={
        "accounting:benchmark_type": "HEPSPEC06", "accounting:benchmark_value": "10.5"}),
    # more vCPUs than the fake host's max_unit (1000): the scheduler finds no host -> server ERROR
    FlavorSpec("x1.unplaceable", 4096, 1024, 1, public=False, access=("vo-fedcloud",)),
)  # fmt: skip


def _egi_props(
    appdb: str, title: str, distro: str, version: str, image_list: str
) -> dict[str, str]:
    mpuri = f"https://appdb.egi.eu/store/vm/image/{appdb}:{version}/"
    attributes = {
        "ad:mpuri": mpuri, "dc:identifier": appdb, "dc:title": title,
        "dc:description": f"{title} for the EGI Federated Cloud", "sl:osname": distro.capitalize(),
        "sl:osversion": version, "sl:arch": "x86_64", "hv:format": "qcow2", "hv:ram_minimum": "512",
        "eu.egi.cloud.image_ref": f"{image_list}/{appdb}",
    }  # fmt: skip
    return {
        "vmcatcher_event_ad_mpuri": mpuri,
        "vmcatcher_event_dc_description": attributes["dc:description"],
        "vmcatcher_event_dc_title": title,
        "APPLIANCE_ATTRIBUTES": json.dumps(attributes, sort_keys=True),
        "os_distro": distro,
        "os_version": version,
        "architecture": "x86_64",
        "appdb_id": appdb,
        "image_list": image_list,
    }


@dataclass(frozen=True)
class ImageSpec:
    name: str
    visibility: str  # public | shared | private | community
    owner: str  # project name
    props: dict[str, str] = field(default_factory=dict)
    members: tuple[str, ...] = ()  # projects the image is shared with (membership accepted)

    @property
    def egi(self) -> bool:
        return "appdb_id" in self.props


IMAGES = (
    ImageSpec("EGI Ubuntu 22.04", "public", "admin",
              _egi_props("egi.ubuntu.22.04", "EGI Ubuntu 22.04", "ubuntu", "22.04", "egi-base")),
    ImageSpec("EGI AlmaLinux 9", "shared", "vo-fedcloud",
              _egi_props("egi.almalinux.9", "EGI AlmaLinux 9", "almalinux", "9", "fedcloud-vo"),
              members=("vo-fedcloud-2",)),
    ImageSpec("EGI Docker", "community", "vo-fedcloud",
              _egi_props("egi.docker", "EGI Docker", "ubuntu", "24.04", "egi-base")),
    ImageSpec("ops-private-tools", "private", "vo-ops", {"os_distro": "debian", "os_version": "12"}),
    ImageSpec("cirros-plain", "public", "admin"),
)  # fmt: skip


@dataclass(frozen=True)
class ServerSpec:
    name: str
    project: str
    user: str
    flavor: str
    image: str
    steps: tuple[str, ...] = ()  # stop start suspend resume pause unpause shelve delete
    nic: str | None = (
        None  # None: no NIC | "private": the project network | "public": dual-stack external
    )
    floating_ip: bool = False
    expect: str = "ACTIVE"  # status reached after create (ERROR for unplaceable)


SERVERS = (
    ServerSpec("ops-active", "vo-ops", "alice", "m1.small", "EGI Ubuntu 22.04", nic="private", floating_ip=True),
    ServerSpec("ops-shutoff", "vo-ops", "alice", "m1.medium", "ops-private-tools", ("stop",)),
    ServerSpec("ops-suspended", "vo-ops", "alice", "m1.small", "EGI Ubuntu 22.04", ("suspend",)),
    ServerSpec("ops-deleted", "vo-ops", "alice", "m1.small", "cirros-plain", ("stop", "start", "delete")),
    ServerSpec("ops-gpu", "vo-ops", "alice", "g1.gpu", "EGI Ubuntu 22.04"),
    ServerSpec("ops-public-v6", "vo-ops", "alice", "m1.small", "EGI Ubuntu 22.04", nic="public"),
    ServerSpec("fc-bench", "vo-fedcloud", "bob", "b1.bench", "EGI AlmaLinux 9", nic="private", floating_ip=True),
    ServerSpec("fc-shelved", "vo-fedcloud", "bob", "m1.small", "EGI Docker", ("shelve",)),
    ServerSpec("fc-cycled", "vo-fedcloud", "bob", "m1.medium", "EGI AlmaLinux 9",
               ("suspend", "resume", "stop", "start")),
    ServerSpec("fc-private-flavor", "vo-fedcloud", "bob", "p1.private", "cirros-plain"),
    ServerSpec("fc-error", "vo-fedcloud", "bob", "x1.unplaceable", "cirros-plain", expect="ERROR"),
    ServerSpec("fc2-active", "vo-fedcloud-2", "bob", "m1.small", "EGI AlmaLinux 9", nic="private",
               floating_ip=True),
    ServerSpec("fc2-deleted", "vo-fedcloud-2", "bob", "m1.medium", "EGI Ubuntu 22.04", ("delete",)),
    ServerSpec("fc2-paused", "vo-fedcloud-2", "bob", "m1.small", "cirros-plain", ("pause",)),
    ServerSpec("unmapped-active", UNMAPPED_PROJECT, "alice", "m1.small", "cirros-plain"),
)  # fmt: skip

# action -> (novaclient method, status reached)
ACTIONS = {
    "stop": ("stop", "SHUTOFF"), "start": ("start", "ACTIVE"),
    "suspend": ("suspend", "SUSPENDED"), "resume": ("resume", "ACTIVE"),
    "pause": ("pause", "PAUSED"), "unpause": ("unpause", "ACTIVE"),
    "shelve": ("shelve", "SHELVED_OFFLOADED"), "delete": ("delete", "DELETED"),
}  # fmt: skip
VOLUMES = (("vol-small", 1), ("vol-large", 5))  # per mapped project: <project>-<name>

PUBLIC_V4 = ("203.0.113.0/24", "203.0.113.1")  # TEST-NET-3
PUBLIC_V6 = ("2001:db8:fed::/64", "2001:db8:fed::1")  # documentation prefix


def utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SeedError(RuntimeError):
    """Seeding failed (an API refused, or a server never reached its state)."""


class Seeder:
    """Creates the demo site; ``run`` is safe to repeat."""

    def __init__(self, lay: Layout, clock: Any) -> None:
        self.lay = lay
        self.clock = clock
        self.m: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------ helpers
    def say(self, msg: str) -> None:
        self.clock.say(f"seed: {msg}")

    def clients(self, user: str = "admin", project: str = "admin") -> Clients:
        key = (user, project)
        with self._lock:
            if key not in self._sessions:
                pw = DEMO_PASSWORD if user in USERS else None
                sess = session(user, pw, project) if pw else session(project=project)
                self._sessions[key] = Clients(sess)
            return self._sessions[key]

    def previous(self) -> dict[str, Any]:
        try:
            return json.loads(self.lay.seed_json.read_text())
        except (OSError, ValueError):
            return {}

    def complete(self) -> bool:
        prev = self.previous()
        return prev.get("version") == SEED_VERSION and prev.get("complete") is True

    def save(self, complete: bool) -> None:
        self.m["complete"] = complete
        tmp = self.lay.seed_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.m, indent=2, sort_keys=False) + "\n")
        tmp.replace(self.lay.seed_json)

    # ------------------------------------------------------------ run
    def run(self, skip_if_complete: bool = True) -> dict[str, Any]:
        if skip_if_complete and self.complete():
            self.say(f"already seeded ({self.lay.seed_json})")
            return self.previous()
        t0 = time.monotonic()
        prev = self.previous()
        self.m = {
            "version": SEED_VERSION, "complete": False, "generated_at": utc(),
            "auth_url": AUTH_URL, "region": REGION, "clouds_yaml": str(self.lay.clouds_yaml),
            "vo_map": {}, "projects": {}, "users": {}, "flavors": {}, "images": {},
            "networks": {}, "floating_ips": [], "volumes": {}, "servers": {},
            "window": prev.get("window", {}),
        }  # fmt: skip
        self.identity()
        self.say(f"projects {', '.join(self.m['projects'])}; users {', '.join(self.m['users'])}")
        self.quotas()
        self.flavors()
        self.say(f"flavors {', '.join(self.m['flavors'])}")
        self.images()
        self.say(f"images {', '.join(self.m['images'])}")
        self.networks()
        self.volumes()
        self.say(f"networks {', '.join(self.m['networks'])}; volumes {len(self.m['volumes'])}")
        self.save(complete=False)
        self.servers(prev.get("servers", {}))
        self.floating_ips()
        self.say(f"servers {len(self.m['servers'])}; floating IPs {len(self.m['floating_ips'])}")
        self.save(complete=True)
        self.say(f"done in {time.monotonic() - t0:.1f}s -> {self.lay.seed_json}")
        return self.m

    # ------------------------------------------------------------ keystone
    def identity(self) -> None:
        ks = self.clients().keystone
        roles = {r.name: r for r in ks.roles.list()}
        existing = {p.name: p for p in ks.projects.list(domain="default")}
        wanted = [(name, vo) for name, vo in MAPPED_PROJECTS] + [(UNMAPPED_PROJECT, None)]
        admin_user = next(iter(ks.users.list(domain="default", name="admin")))
        reader = next(iter(ks.users.list(domain="default", name=READER_USER)))
        for name, vo in wanted:
            tags = [f"VO:{vo}"] if vo else []
            proj = existing.get(name)
            desc = f"demo project of VO {vo}" if vo else "demo project without a VO mapping"
            if proj is None:
                proj = ks.projects.create(name, domain="default", description=desc, tags=tags)
            elif sorted(ks.projects.list_tags(proj)) != sorted(tags):
                ks.projects.update_tags(proj, tags)
            # the site admin manages every project; the appliance user only reads
            ks.roles.grant(roles["admin"], user=admin_user, project=proj)
            ks.roles.grant(roles["reader"], user=reader, project=proj)
            self.m["projects"][name] = {"id": proj.id, "vo": vo, "tags": tags}
            if vo:
                self.m["vo_map"][proj.id] = vo
        self.m["projects"]["admin"] = {
            "id": next(iter(ks.projects.list(name="admin"))).id,
            "vo": None,
            "tags": [],
        }
        users = {u.name: u for u in ks.users.list(domain="default")}
        for uname, projects in USERS.items():
            user = users.get(uname) or ks.users.create(uname, domain="default", password=DEMO_PASSWORD,
                                                       email=f"{uname}@example.org")  # fmt: skip
            for pname in projects:
                ks.roles.grant(roles["member"], user=user, project=self.m["projects"][pname]["id"])
            self.m["users"][uname] = {
                "id": user.id,
                "password": DEMO_PASSWORD,
                "projects": projects,
                "role": "member",
            }
        self.m["users"][READER_USER] = {
            "id": reader.id, "role": "reader", "system_reader": True,
            "projects": [n for n, _ in wanted],
        }  # fmt: skip
        self.m["users"]["admin"] = {
            "id": admin_user.id,
            "role": "admin",
            "projects": ["admin"] + [n for n, _ in wanted],
        }

    def quotas(self) -> None:
        c = self.clients()
        for name, info in self.m["projects"].items():
            if name == "admin":
                continue
            pid = info["id"]
            c.nova.quotas.update(pid, instances=-1, cores=-1, ram=-1)
            c.neutron.update_quota(pid, {"quota": {"floatingip": 1000, "port": 10000, "network": 100,
                                                   "router": 100, "subnet": 100}})  # fmt: skip
            c.cinder.quotas.update(pid, volumes=1000, gigabytes=100000, snapshots=1000)

    # ------------------------------------------------------------ nova flavors
    def flavors(self) -> None:
        nova = self.clients().nova
        have = {f.name: f for f in nova.flavors.list(is_public=None)}
        for spec in FLAVORS:
            fl = have.get(spec.name) or nova.flavors.create(
                spec.name,
                spec.ram,
                spec.vcpus,
                spec.disk,
                ephemeral=spec.ephemeral,
                is_public=spec.public,
            )
            if spec.specs and fl.get_keys() != spec.specs:
                fl.set_keys(spec.specs)
            granted = (
                {a.tenant_id for a in nova.flavor_access.list(flavor=fl)}
                if not spec.public
                else set()
            )
            for pname in spec.access:
                pid = self.m["projects"][pname]["id"]
                if pid not in granted:
                    nova.flavor_access.add_tenant_access(fl, pid)
            self.m["flavors"][spec.name] = {
                "id": fl.id, "vcpus": spec.vcpus, "ram": spec.ram, "disk": spec.disk,
                "ephemeral": spec.ephemeral, "is_public": spec.public, "extra_specs": dict(spec.specs),
                "access": list(spec.access),
            }  # fmt: skip

    # ------------------------------------------------------------ glance
    def images(self) -> None:
        glance = self.clients().glance
        have = {i["name"]: i for i in glance.images.list(filters={"visibility": "all"})}
        for spec in IMAGES:
            data = qcow2.build(64, label=spec.name)
            digest = "sha512:" + hashlib.sha512(data).hexdigest()
            owner = self.m["projects"][spec.owner]["id"]
            img = have.get(spec.name)
            if img is None:
                props = dict(spec.props)
                if spec.egi:
                    props["image_hash"] = digest
                img = glance.images.create(
                    name=spec.name, disk_format="qcow2", container_format="bare", visibility=spec.visibility,
                    owner=owner, min_ram=512, min_disk=1, tags=[MANAGED_TAG] if spec.egi else [], **props,
                )  # fmt: skip
            if img["status"] == "queued":
                glance.images.upload(img["id"], io.BytesIO(data))
            img = glance.images.get(img["id"])
            members: dict[str, str] = {}
            for pname in spec.members:
                pid = self.m["projects"][pname]["id"]
                current = {
                    mm["member_id"]: mm["status"] for mm in glance.image_members.list(img["id"])
                }
                if pid not in current:
                    glance.image_members.create(img["id"], pid)
                if current.get(pid) != "accepted":  # only the member project can accept
                    self.clients("admin", pname).glance.image_members.update(
                        img["id"], pid, "accepted"
                    )
                members[pname] = "accepted"
            self.m["images"][spec.name] = {
                "id": img["id"], "visibility": img["visibility"], "owner": owner, "owner_project": spec.owner,
                "egi": spec.egi, "properties": {k: img[k] for k in [*spec.props, "image_hash"] if k in img},
                "members": members, "size": img["size"], "checksum": img.get("checksum"),
                "os_hash_value": img.get("os_hash_value"), "disk_format": img["disk_format"],
                "tags": list(img.get("tags", [])),
            }  # fmt: skip

    # ------------------------------------------------------------ neutron
    def networks(self) -> None:
        neutron = self.clients().neutron

        def one(kind: str, **filters: Any) -> dict | None:
            items = getattr(neutron, f"list_{kind}s")(**filters)[f"{kind}s"]
            return items[0] if items else None

        admin_pid = self.m["projects"]["admin"]["id"]
        pub = one("network", name="public") or neutron.create_network({"network": {
            "name": "public", "router:external": True, "provider:network_type": "flat",
            "provider:physical_network": "public", "project_id": admin_pid}})["network"]  # fmt: skip
        subnets = {}
        for version, (cidr, gw) in ((4, PUBLIC_V4), (6, PUBLIC_V6)):
            name = f"public-v{version}"
            sub = one("subnet", name=name, network_id=pub["id"]) or neutron.create_subnet({"subnet": {
                "name": name, "network_id": pub["id"], "ip_version": version, "cidr": cidr,
                "gateway_ip": gw, "enable_dhcp": False, "project_id": admin_pid}})["subnet"]  # fmt: skip
            subnets[name] = {"id": sub["id"], "cidr": cidr}
        self.m["networks"]["public"] = {"id": pub["id"], "external": True, "subnets": subnets}
        for i, (pname, _vo) in enumerate(MAPPED_PROJECTS, start=1):
            pid = self.m["projects"][pname]["id"]
            net_name, cidr = f"{pname}-net", f"10.{i}.0.0/24"
            net = one("network", name=net_name, project_id=pid) or neutron.create_network(
                {"network": {"name": net_name, "project_id": pid}})["network"]  # fmt: skip
            sub = one("subnet", name=f"{pname}-subnet", network_id=net["id"]) or neutron.create_subnet(
                {"subnet": {"name": f"{pname}-subnet", "network_id": net["id"], "ip_version": 4, "cidr": cidr,
                            "project_id": pid}})["subnet"]  # fmt: skip
            router = one("router", name=f"{pname}-router", project_id=pid)
            if router is None:
                router = neutron.create_router({"router": {
                    "name": f"{pname}-router", "project_id": pid,
                    "external_gateway_info": {"network_id": pub["id"]}}})["router"]  # fmt: skip
            ports = neutron.list_ports(
                device_id=router["id"], device_owner="network:router_interface"
            )["ports"]
            if not ports:
                neutron.add_interface_router(router["id"], {"subnet_id": sub["id"]})
            self.m["networks"][net_name] = {"id": net["id"], "project": pname, "external": False,
                                            "subnets": {sub["name"]: {"id": sub["id"], "cidr": cidr}},
                                            "router_id": router["id"]}  # fmt: skip

    # ------------------------------------------------------------ cinder
    def volumes(self) -> None:
        admin = self.clients().cinder
        have = {(v.name, getattr(v, "os-vol-tenant-attr:tenant_id")): v
                for v in admin.volumes.list(search_opts={"all_tenants": 1})}  # fmt: skip
        created = []
        for pname, vo in MAPPED_PROJECTS:
            pid = self.m["projects"][pname]["id"]
            for suffix, size in VOLUMES:
                name = f"{pname}-{suffix}"
                vol = have.get((name, pid))
                if vol is None:
                    vol = self.clients("admin", pname).cinder.volumes.create(size, name=name)
                    created.append(vol.id)
                self.m["volumes"][name] = {"id": vol.id, "size": size, "project": pname, "project_id": pid,
                                           "vo": vo}  # fmt: skip
        deadline = time.monotonic() + WAIT
        for vid in created:
            while (status := admin.volumes.get(vid).status) != "available":
                if status == "error" or time.monotonic() > deadline:
                    raise SeedError(f"volume {vid} is {status}")
                time.sleep(0.5)
        for info in self.m["volumes"].values():
            info["status"] = admin.volumes.get(info["id"]).status

    # ------------------------------------------------------------ servers
    def _existing_servers(self) -> dict[tuple[str, str], Any]:
        """All servers ever created (changes-since also returns deleted ones), by (project id, name)."""
        nova = self.clients().nova
        found = nova.servers.list(
            search_opts={"all_tenants": 1, "changes-since": "2000-01-01T00:00:00Z"}
        )
        return {(s.tenant_id, s.name): s for s in found}

    def servers(self, previous: dict[str, Any]) -> None:
        existing = self._existing_servers()
        todo = []
        for spec in SERVERS:
            pid = self.m["projects"][spec.project]["id"]
            server = existing.get((pid, spec.name))
            if server is None:
                todo.append(spec)
                continue
            entry = previous.get(spec.name)
            if not entry or entry.get("id") != server.id:
                entry = self._entry(spec, server.id, self._timeline_from_actions(server.id))
            entry["status"] = server.status
            self.m["servers"][spec.name] = entry
        if not todo:
            self.say("servers already created (kept their recorded timelines)")
            return
        self.say(
            f"booting {len(todo)} servers and walking them through their states ({STEP_GAP:.0f}s apart)"
        )
        window_start = utc()
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            results = list(pool.map(self._play, todo))
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            self.save(complete=False)
            raise SeedError("; ".join(str(e) for e in failed))
        self.m["window"] = {"start": self.m["window"].get("start") or window_start, "end": utc()}

    def _entry(self, spec: ServerSpec, server_id: str, timeline: list[dict]) -> dict[str, Any]:
        proj = self.m["projects"][spec.project]
        return {
            "id": server_id, "name": spec.name, "project": spec.project, "project_id": proj["id"],
            "vo": proj["vo"], "user": spec.user, "user_id": self.m["users"][spec.user]["id"],
            "flavor": {"name": spec.flavor, **{k: self.m["flavors"][spec.flavor][k]
                                               for k in ("id", "vcpus", "ram", "disk", "ephemeral")}},
            "image": spec.image, "image_id": self.m["images"][spec.image]["id"],
            "nic": spec.nic, "status": None, "timeline": timeline,
        }  # fmt: skip

    def _timeline_from_actions(self, server_id: str) -> list[dict]:
        """Reconstruct a timeline from os-instance-actions when the old manifest is gone."""
        acts = self.clients().nova.instance_action.list(server_id)
        return [{"action": a.action, "requested_at": a.start_time + "Z" if not a.start_time.endswith("Z")
                 else a.start_time, "status": None, "observed_at": None, "source": "os-instance-actions"}
                for a in sorted(acts, key=lambda a: a.start_time)]  # fmt: skip

    def _wait_status(self, nova: Any, server_id: str, status: str) -> str:
        from novaclient import exceptions as nexc

        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                srv = nova.servers.get(server_id)
            except nexc.NotFound:
                if status == "DELETED":
                    return utc()
                raise
            if srv.status == status and getattr(srv, "OS-EXT-STS:task_state", None) is None:
                return utc()
            if srv.status == "ERROR" and status != "ERROR":
                raise SeedError(f"server {srv.name} went to ERROR: {getattr(srv, 'fault', {})}")
            time.sleep(0.5)
        raise SeedError(f"server {server_id} did not reach {status} in {WAIT:.0f}s")

    def _play(self, spec: ServerSpec) -> dict | Exception:
        try:
            nova = self.clients(spec.user, spec.project).nova
            if spec.nic == "private":
                nics: Any = [{"net-id": self.m["networks"][f"{spec.project}-net"]["id"]}]
            elif spec.nic == "public":  # attaching to an external network needs the admin role
                nova = self.clients("admin", spec.project).nova
                nics = [{"net-id": self.m["networks"]["public"]["id"]}]
            else:
                nics = "none"
            requested = utc()
            srv = nova.servers.create(
                spec.name, self.m["images"][spec.image]["id"], self.m["flavors"][spec.flavor]["id"], nics=nics,
                meta={"testbed": "seed"},
            )  # fmt: skip
            timeline = [{"action": "create", "requested_at": requested, "status": spec.expect,
                         "observed_at": self._wait_status(nova, srv.id, spec.expect)}]  # fmt: skip
            entry = self._entry(spec, srv.id, timeline)
            with self._lock:
                self.m["servers"][spec.name] = entry
            for action in spec.steps:
                time.sleep(STEP_GAP)
                method, status = ACTIONS[action]
                requested = utc()
                getattr(nova.servers, method)(srv.id)
                timeline.append({"action": action, "requested_at": requested, "status": status,
                                 "observed_at": self._wait_status(nova, srv.id, status)})  # fmt: skip
            entry["status"] = timeline[-1]["status"]
            return entry
        except Exception as exc:
            return SeedError(f"{spec.name}: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ floating IPs
    def floating_ips(self) -> None:
        neutron = self.clients().neutron
        pub = self.m["networks"]["public"]["id"]
        for pname, vo in MAPPED_PROJECTS:
            pid = self.m["projects"][pname]["id"]
            wanted = [(f"testbed:{pname}:spare", None)]
            for spec in SERVERS:
                if spec.project == pname and spec.floating_ip and spec.name in self.m["servers"]:
                    wanted.append((f"testbed:{pname}:{spec.name}", self.m["servers"][spec.name]))
            for desc, server in wanted:
                found = neutron.list_floatingips(description=desc, project_id=pid)["floatingips"]
                fip = found[0] if found else None
                port_id = None
                if server is not None and server.get("status") != "DELETED":
                    ports = neutron.list_ports(device_id=server["id"])["ports"]
                    port_id = ports[0]["id"] if ports else None
                if fip is None:
                    body = {"floating_network_id": pub, "project_id": pid, "description": desc}
                    if port_id:
                        body["port_id"] = port_id
                    fip = neutron.create_floatingip({"floatingip": body})["floatingip"]
                self.m["floating_ips"].append({
                    "id": fip["id"], "address": fip["floating_ip_address"], "ip_version": 4,
                    "project": pname, "project_id": pid, "vo": vo, "port_id": fip.get("port_id"),
                    "server": server["name"] if server and fip.get("port_id") else None,
                })  # fmt: skip
        # IPv6: Neutron floating IPs are IPv4 only; the dual-stack server has a public IPv6 fixed address
        v6 = self.m["servers"].get("ops-public-v6")
        if v6:
            ports = neutron.list_ports(device_id=v6["id"])["ports"]
            v6["addresses"] = [ip["ip_address"] for p in ports for ip in p["fixed_ips"]]
