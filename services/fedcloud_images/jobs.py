"""Job wiring of the image replicator: config -> sources, cache, Glance -> :class:`ImageSync`."""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fedcloud_core.commands import CommandSpec
from fedcloud_core.config import AppConfig
from fedcloud_core.config.openstack import OpenStackConfig
from fedcloud_core.errors import ConfigError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport

from . import imagelist
from .cache.download import Downloader
from .cache.progress import Progress
from .cache.state import State
from .glance import GlanceImages
from .sources.hepix import HepixSource
from .sources.http import make_session
from .sources.oci_registry import RegistrySourceClient
from .sync import ImageSync, SyncDeps

log = logging.getLogger(__name__)

_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
STATE_FILE = "state.sqlite"


def build_sources(cfg: AppConfig, http: Any) -> list[Any]:
    ic = cfg.images
    timeout = (ic.connect_timeout, ic.read_timeout)
    workdir = cfg.paths.image_dir / ".tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    out: list[Any] = [
        HepixSource(
            s,
            http=http,
            capath=Path(ic.capath),
            timeout=timeout,
            max_bytes=ic.max_list_bytes,
            crl_check=ic.crl_check,
            max_age=timedelta(days=ic.max_list_age_days),
            workdir=str(workdir),
        )
        for s in ic.subscriptions
        if s.enabled
    ]
    out += [RegistrySourceClient(r, http=http, timeout=timeout) for r in ic.registries if r.enabled]
    return out


def project_resolver(cfg: AppConfig, clients: Any) -> Any:
    cache: dict[str, list[str]] = {}

    def projects(vo: str) -> list[str]:
        if vo not in cache:
            ids = []
            for p in cfg.vos[vo].projects:
                if _PROJECT_ID.match(p):
                    ids.append(p)
                    continue
                found = clients.keystone.projects.list(name=p)
                if len(found) != 1:
                    raise ConfigError(
                        f"vos.{vo}.projects: project {p!r} matches {len(found)} projects"
                    )
                ids.append(found[0].id)
            cache[vo] = ids
        return cache[vo]

    return projects


def nova_usage(clients: Any) -> Any:
    def in_use(image_id: str) -> bool | None:
        try:
            return bool(
                clients.nova.servers.list(
                    search_opts={"all_tenants": True, "image": image_id}, limit=1
                )
            )
        except Exception as exc:  # noqa: BLE001 - unknown means "do not delete"
            log.warning(
                "cannot tell whether image %s is in use (%s); it will not be deleted", image_id, exc
            )
            return None

    return in_use


def openstack_config(cfg: AppConfig) -> OpenStackConfig:
    """The images job's OpenStack access: ``images.openstack``, else the appliance's own."""
    return cfg.images.openstack or cfg.openstack


def secret_keys(cfg: AppConfig) -> tuple[str, ...]:
    """The config keys whose secret files the images job reads (its containers see no other)."""
    return ("images",) if cfg.images.openstack is not None else ("images", "openstack")


def _clients(cfg: AppConfig) -> Any:
    from fedcloud_core.openstack import OpenStackClients

    try:
        return OpenStackClients.from_config(openstack_config(cfg))
    except ConfigError as exc:
        if cfg.images.openstack is not None:
            raise
        raise ConfigError(
            f"{exc} (images.openstack is not set, so the images job uses 'openstack'; the "
            "bundle's images containers see only appliance.yaml and "
            "/etc/fedcloud-appliance/images/ of the config directory: put the images job's "
            "clouds.yaml there and set images.openstack, see docs/operations.md)"
        ) from exc


@dataclass(frozen=True)
class ImagesDeps:
    """What a test may inject into ``images sync`` (``None``: the real one, see SyncDeps)."""

    clients: Any = None  # an OpenStackClients (its glance, nova, keystone)
    sources: list[Any] | None = None
    state: State | None = None
    downloader: Downloader | None = None
    glance: GlanceImages | None = None
    projects: Callable[[str], list[str]] | None = None
    in_use: Callable[[str], bool | None] | None = None
    member_client: Callable[[str], Any] | None = None


def build_deps(ctx: JobContext) -> SyncDeps:
    from fedcloud_core.openstack import OpenStackClients

    cfg = ctx.config
    ic = cfg.images
    http = make_session(ca_bundle=ic.ca_bundle)
    deps = ctx.deps_as(ImagesDeps)
    clients = deps.clients or _clients(cfg)
    member_clients: dict[str, Any] = {}
    access = openstack_config(cfg)

    def member_client(cloud: str) -> Any:
        if cloud not in member_clients:
            oc = OpenStackConfig(cloud=cloud, clouds_yaml=access.clouds_yaml, cacert=access.cacert)
            member_clients[cloud] = OpenStackClients.from_config(oc).glance
        return member_clients[cloud]

    progress = Progress(enabled=None if ic.progress == "auto" else False)
    return SyncDeps(
        sources=deps.sources or build_sources(cfg, http),
        state=deps.state or State(cfg.paths.image_dir / STATE_FILE),
        downloader=deps.downloader
        or Downloader(
            http,
            connect_timeout=ic.connect_timeout,
            read_timeout=ic.read_timeout,
            retries=ic.retries,
            backoff=ic.backoff,
            min_free_bytes=ic.min_free_mb * 1024 * 1024,
            max_bytes=ic.max_image_gb * 1024**3,
            progress=progress,
        ),
        glance=deps.glance
        or GlanceImages(clients.glance, tag=ic.tag, owner=clients.session.get_project_id),
        projects=deps.projects or project_resolver(cfg, clients),
        in_use=deps.in_use or nova_usage(clients),
        member_client=deps.member_client or member_client,
    )


def run_sync(ctx: JobContext) -> RunReport:
    report = RunReport(job="images-sync", dry_run=ctx.dry_run)
    deps = build_deps(ctx)
    try:
        deps.state.open()  # StateVersionError (a newer release's state): the run fails here
        ImageSync(
            ctx.config.images,
            ctx.config.paths.image_dir,
            deps,
            dry_run=ctx.dry_run,
            allow_mass_retire=bool(ctx.option("allow_mass_retire", False)),
        ).run(report)
    finally:
        deps.state.close()
    return report


def sync_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-mass-retire",
        action="store_true",
        help="this run may retire more than images.max_retire_fraction of a source's images",
    )


JOBS = [
    JobSpec(
        name="images sync",
        help="replicate subscribed image lists into Glance",
        run=run_sync,
        add_arguments=sync_arguments,
        interval=lambda c: c.scheduler.images,
        secrets=secret_keys,
        description="Fetch each subscribed image list (HEPiX, OCI registry), verify its signature, "
        "download the selected images into the cache and keep Glance in sync.",
    ),
]
COMMANDS = [
    CommandSpec(
        name="imagelist sign",
        help="build and sign a HEPiX image list",
        add_arguments=imagelist.add_arguments,
        main=imagelist.main,
        description="Build a HEPiX image list from a YAML/JSON description (size and sha512 "
        "computed from the files) and S/MIME-sign it (detached by default).",
    ),
]
