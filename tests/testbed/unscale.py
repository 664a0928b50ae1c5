"""Remove the bulk objects of ``testbed scale`` (``testbed unscale``).

Deletes, through the real APIs, every server, image, flavor and project whose name starts
with ``scale-``, never an object listed in the seed manifest. Servers go first (they use
the scale flavor and projects) and are waited for, bounded in time. ``keep_servers``
leaves the servers and their projects (slow to delete with the fake driver) and removes
only images and flavors. The clone servers of ``scale --clone-servers`` are removed first,
by deleting their database rows (seconds for 10,000); ``clones_only`` removes only them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .clients import Clients, session
from .clone import remove_clones
from .layout import Layout
from .scale import PREFIX, ScaleError, _pool_run

SERVER_WAIT = 1800  # s, bound on waiting for deleted servers to disappear


def _seed_ids(lay: Layout) -> set[str]:
    if not lay.seed_json.exists():
        return set()
    seed = json.loads(lay.seed_json.read_text(encoding="utf-8"))
    ids: set[str] = set()
    for section in ("projects", "flavors", "images", "servers"):
        for obj in (seed.get(section) or {}).values():
            if isinstance(obj, dict) and obj.get("id"):
                ids.add(str(obj["id"]))
    return ids


def _delete(what: str, jobs: list[Any], workers: int) -> None:
    if jobs:
        _pool_run(what, jobs, workers)
    else:
        print(f"{what}: none", flush=True)


def unscale(
    lay: Layout, workers: int = 8, keep_servers: bool = False, clones_only: bool = False
) -> None:
    keep = _seed_ids(lay)
    if not keep_servers:
        # first: the API must not try to delete them (no compute runs on their host)
        remove_clones()
    if clones_only:
        return
    admin = Clients(session())
    nova, glance, ks = admin.nova, admin.glance, admin.keystone

    def scale_servers() -> list[Any]:
        found = nova.servers.list(search_opts={"all_tenants": 1, "name": f"^{PREFIX}"}, limit=-1)
        return [s for s in found if s.name.startswith(PREFIX) and s.id not in keep]

    servers = [] if keep_servers else scale_servers()
    _delete("servers deleted", [lambda s=s: s.delete() for s in servers], min(workers, 4))
    deadline = time.monotonic() + SERVER_WAIT
    while servers:
        servers = scale_servers()
        if not servers:
            break
        if time.monotonic() > deadline:
            raise ScaleError(f"{len(servers)} scale servers still present after {SERVER_WAIT}s")
        print(f"  servers: {len(servers)} still deleting", flush=True)
        time.sleep(5)

    images = [
        i["id"]
        for i in glance.images.list(filters={"visibility": "all"})
        if str(i.get("name") or "").startswith(PREFIX) and i["id"] not in keep
    ]
    _delete("images deleted", [lambda i=i: glance.images.delete(i) for i in images], workers)
    flavors = [
        f
        for f in nova.flavors.list(is_public=None)
        if f.name.startswith(PREFIX) and f.id not in keep
    ]
    _delete("flavors deleted", [lambda f=f: f.delete() for f in flavors], workers)
    projects = [
        p
        for p in ks.projects.list(domain="default")
        if p.name.startswith(PREFIX) and p.id not in keep and not keep_servers
    ]
    _delete("projects deleted", [lambda p=p: ks.projects.delete(p) for p in projects], workers)
