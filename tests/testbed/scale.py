"""Bulk objects through the real APIs, for benchmarks (``testbed scale``).

Counts are totals: ``--images 5000`` tops the ``scale-image-*`` set up to 5000,
so re-running creates nothing. Requests run concurrently in a thread pool on one
keystoneauth session per scope. Servers use nova's multi-create (one request
boots a batch named ``<batch>-1..n``) with a tiny flavor and no NIC.

Server builds on the single fake host are serial and slow down linearly with
the number of servers already there (nova's resource tracker fetches every
consumer's placement allocations on each claim): a few hundred are practical,
10,000 are not (see docs/testbed.md).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from . import qcow2
from .clients import Clients, session
from .layout import Layout

PREFIX = "scale-"
SERVER_BATCH = 50
SERVER_FLAVOR = "scale-small"  # 1 vCPU, 512 MB (the images' min_ram), 1 GB: 10,000 fit the fake host (x64 overcommit)


class ScaleError(RuntimeError):
    """Some bulk requests failed."""


def _pool_run(what: str, jobs: Iterable[Callable[[], Any]], workers: int) -> int:
    jobs = list(jobs)
    if not jobs:
        print(f"{what}: nothing to do", flush=True)
        return 0
    t0 = time.monotonic()
    errors: list[str] = []
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        for fut in as_completed(futures):
            try:
                fut.result()
                done += 1
            except Exception as exc:  # report all, fail at the end
                errors.append(f"{type(exc).__name__}: {exc}")
            if (done + len(errors)) % 500 == 0:
                print(f"  {what}: {done}/{len(jobs)}", flush=True)
    dt = time.monotonic() - t0
    print(f"{what}: {done} done in {dt:.1f}s ({done / dt:.1f}/s)", flush=True)
    if errors:
        raise ScaleError(f"{what}: {len(errors)} failed, first: {errors[0]}")
    return done


def _missing(existing: set[str], template: str, total: int) -> list[str]:
    return [n for n in (template.format(i) for i in range(1, total + 1)) if n not in existing]


def scale(
    lay: Layout, images: int, flavors: int, servers: int, projects: int, workers: int = 16
) -> None:
    admin = Clients(session())
    if projects:
        ks = admin.keystone
        have = {p.name for p in ks.projects.list(domain="default") if p.name.startswith(PREFIX)}
        admin_role = next(iter(ks.roles.list(name="admin")))
        reader_role = next(iter(ks.roles.list(name="reader")))
        admin_user = next(iter(ks.users.list(domain="default", name="admin")))
        reader = next(iter(ks.users.list(domain="default", name="fedcloud-reader")))

        def make_project(name: str) -> None:
            p = ks.projects.create(
                name, domain="default", description="bulk", tags=["VO:scale.example.org"]
            )
            ks.roles.grant(admin_role, user=admin_user, project=p)
            ks.roles.grant(reader_role, user=reader, project=p)

        _pool_run(
            "projects",
            [lambda n=n: make_project(n) for n in _missing(have, "scale-project-{:04d}", projects)],
            workers,
        )
    if flavors:
        nova = admin.nova
        have = {f.name for f in nova.flavors.list(is_public=None) if f.name.startswith(PREFIX)}

        def make_flavor(name: str, i: int) -> None:
            f = nova.flavors.create(
                name, 512 * (1 + i % 8), 1 + i % 16, 10 * (1 + i % 10), is_public=True
            )
            if i % 4 == 0:
                f.set_keys(
                    {
                        "accounting:benchmark_type": "HEPSPEC06",
                        "accounting:benchmark_value": f"{8 + i % 5}.5",
                    }
                )

        names = _missing(have, "scale-flavor-{:04d}", flavors)
        _pool_run(
            "flavors",
            [lambda n=n: make_flavor(n, int(n.rsplit("-", 1)[1])) for n in names],
            workers,
        )
    if images:
        glance = admin.glance
        have = {
            i["name"]
            for i in glance.images.list(filters={"visibility": "all"})
            if i["name"].startswith(PREFIX)
        }

        def make_image(name: str) -> None:
            img = glance.images.create(name=name, disk_format="qcow2", container_format="bare",
                                       visibility="public", os_distro="cirros", os_version="0.6")  # fmt: skip
            glance.images.upload(img["id"], io.BytesIO(qcow2.build(1, label=name, cluster_bits=9)))

        _pool_run(
            "images",
            [lambda n=n: make_image(n) for n in _missing(have, "scale-image-{:05d}", images)],
            workers,
        )
    if servers:
        _scale_servers(admin, servers, workers)


def _scale_servers(admin: Clients, total: int, workers: int) -> None:
    nova = admin.nova
    flavor = next((f for f in nova.flavors.list(is_public=None) if f.name == SERVER_FLAVOR), None)
    if flavor is None:
        flavor = nova.flavors.create(SERVER_FLAVOR, 512, 1, 1, is_public=True)
    image = next(i for i in admin.glance.images.list(filters={"name": "cirros-plain"}))
    projects = sorted(
        (
            p
            for p in admin.keystone.projects.list(domain="default")
            if p.name.startswith("scale-project-")
        ),
        key=lambda p: p.name,
    ) or [p for p in admin.keystone.projects.list(domain="default") if p.name.startswith("vo-")]
    existing = list(nova.servers.list(search_opts={"all_tenants": 1, "name": f"^{PREFIX}server"}, limit=-1))  # fmt: skip
    need = total - len(existing)
    if need <= 0:
        print(f"servers: {len(existing)} scale-server-* exist, nothing to create", flush=True)
        return
    start_batch = 1 + max((int(s.name.split("-")[2][1:]) for s in existing), default=0)
    batches = [
        (start_batch + k, min(SERVER_BATCH, need - k * SERVER_BATCH))
        for k in range(-(-need // SERVER_BATCH))
    ]
    per_project = {p.id: Clients(session(project_id=p.id)) for p in projects}
    pids = list(per_project)

    def boot(batch: int, count: int) -> None:
        c = per_project[pids[batch % len(pids)]]
        c.nova.servers.create(f"scale-server-b{batch:05d}", image["id"], flavor.id, nics="none",
                              min_count=count, max_count=count)  # fmt: skip

    t0 = time.monotonic()
    _pool_run(
        f"servers (requests of {SERVER_BATCH})",
        [lambda b=b, n=n: boot(b, n) for b, n in batches],
        min(workers, 4),
    )
    while True:
        building = nova.servers.list(
            search_opts={"all_tenants": 1, "name": f"^{PREFIX}server", "status": "BUILD"}, limit=-1
        )
        if not building:
            break
        print(f"  servers: {len(building)} still building", flush=True)
        time.sleep(5)
    final = nova.servers.list(search_opts={"all_tenants": 1, "name": f"^{PREFIX}server"}, limit=-1)
    errors = sum(1 for s in final if s.status == "ERROR")
    dt = time.monotonic() - t0
    print(
        f"servers: {need} booted to ACTIVE in {dt:.1f}s ({need / dt:.1f}/s); total {len(final)}, ERROR {errors}",
        flush=True,
    )
