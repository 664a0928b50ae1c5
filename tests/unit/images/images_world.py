"""A small test world: a loopback list/image server, a signed list publisher, and a sync to run."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fedcloud_core.config.images import ImagesConfig, Subscription
from fedcloud_core.report import RunReport
from fedcloud_images.cache.download import Downloader
from fedcloud_images.cache.state import State
from fedcloud_images.glance import GlanceImages
from fedcloud_images.sources.hepix import HepixSource
from fedcloud_images.sources.http import make_session
from fedcloud_images.sync import ImageSync, SyncDeps
from support.images_pki import ImagesPki, image_desc, make_disk, signed_list
from support.imageserver import ImageServer

PROJECT = "0123456789abcdef0123456789abcdef"


class World:
    def __init__(self, tmp: Path, ipki: ImagesPki, server: ImageServer, glance: Any, **cfg: Any):
        self.tmp, self.ipki, self.server, self.glance = tmp, ipki, server, glance
        self.ns = uuid.uuid4().hex[:8]
        self.cache = tmp / "cache"
        self.files = tmp / "files"
        self.files.mkdir(exist_ok=True)
        self.in_use: set[str] = set()
        self.sub_kw: dict[str, Any] = {}
        self.cfg_kw: dict[str, Any] = {
            "retries": 1,
            "backoff": 0,
            "min_free_mb": 0,
            "read_timeout": 1.0,
            "connect_timeout": 2.0,
            **cfg,
        }
        self.images: dict[str, dict[str, Any]] = {}

    @property
    def list_url(self) -> str:
        return self.server.url(f"/{self.ns}/image.list")

    def add_image(
        self, ident: str, *, seed: str | None = None, fmt: str = "qcow2", **extra: Any
    ) -> Path:
        path = make_disk(self.files / f"{ident}-{seed or ident}.{fmt}", fmt=fmt, seed=seed or ident)
        self.server.put(f"/{self.ns}/{path.name}", path.read_bytes())
        self.images[ident] = image_desc(ident, path, self.server.url(f"/{self.ns}/"), **extra)
        return path

    def publish(self, version: str = "20260101000000", signer: Any = None, **kw: Any) -> bytes:
        body = signed_list(
            signer or self.ipki.endorser, list(self.images.values()), version=version, **kw
        )
        self.server.put(f"/{self.ns}/image.list", body)
        return body

    def subscription(self) -> Subscription:
        return Subscription(
            name=f"list-{self.ns}",
            url=self.list_url,
            vo="vo.example.org",
            endorser_dn=self.ipki.endorser.dn,
            endorser_ca=self.ipki.endorser_ca,
            **self.sub_kw,
        )

    def run(self, dry_run: bool = False) -> RunReport:
        sub = self.subscription()
        cfg = ImagesConfig(subscriptions=[sub], capath=str(self.ipki.capath), **self.cfg_kw)
        http = make_session(retries=0)
        (self.cache / ".tmp").mkdir(parents=True, exist_ok=True)
        src = HepixSource(
            sub,
            http=http,
            capath=self.ipki.capath,
            timeout=(2.0, 2.0),
            workdir=str(self.cache / ".tmp"),
        )
        state = State(self.cache / "state.sqlite")
        deps = SyncDeps(
            sources=[src],
            state=state,
            downloader=Downloader(
                http,
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.read_timeout,
                retries=cfg.retries,
                backoff=0,
                min_free_bytes=0,
            ),
            glance=GlanceImages(self.glance, tag=cfg.tag, owner=self.glance.project_id),
            projects=lambda vo: [PROJECT],
            in_use=lambda image_id: image_id in self.in_use,
        )
        report = RunReport(job="images-sync", dry_run=dry_run)
        try:
            ImageSync(cfg, self.cache, deps, dry_run=dry_run).run(report)
        finally:
            state.close()
        return report.finish()

    def age_glance_listing(self, hours: float = 25.0) -> None:
        """Make the saved Glance listing as old as after ``hours`` (the default: more than
        the default ``images.glance_full_scan_hours``): the next run lists in full."""
        with sqlite3.connect(self.cache / "state.sqlite") as db:
            for source, full_at in db.execute("SELECT source, full_at FROM glance_scans"):
                old = datetime.fromisoformat(full_at) - timedelta(hours=hours)
                db.execute(
                    "UPDATE glance_scans SET full_at=? WHERE source=?", (old.isoformat(), source)
                )
        db.close()

    def cache_snapshot(self) -> dict[str, tuple[int, int]]:
        """Every cache file (and the state DB) with size and mtime."""
        return {
            str(p.relative_to(self.cache)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(self.cache.rglob("*"))
            if p.is_file()
        }
