"""The queue of the seeded testbed site, byte for byte, against a golden copy.

The golden copy (``golden/seeded-queue.json``) was written by the extractor as it was
before the instance-action shortcut of issue 15 (commit in the file's history), on this
testbed's seed: every later change to the extractor must queue exactly the same
messages. Only the seeded servers, floating IPs and volumes are looked at (other tests
create their own objects in the seeded projects meanwhile); the window is fixed (the
seed's window end + 10 minutes, 30 days back) and the host time zone is Europe/Madrid.
Messages are compared sorted by content (dirq names are random); nothing else is
ignored. The package version in CloudType is pinned to the one the copy was taken with.

The copy belongs to one seed (server ids and times differ after a reseed): on another
seed the test is skipped and says so. ``FEDCLOUD_ACCOUNTING_GOLDEN_WRITE=1`` writes a new
copy - only ever with an extractor known to be right.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting import extractor as accounting_extractor
from fedcloud_accounting import jobs
from fedcloud_accounting.extract.facts import FloatingIP, Server, Volume
from fedcloud_accounting.extract.openstack import OpenStackUsageSource
from fedcloud_core import __version__
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import ExitCode
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.openstack import OpenStackClients

pytestmark = pytest.mark.integration
GOLDEN = Path(__file__).parent / "golden" / "seeded-queue.json"
KINDS = ("cloud", "storage", "ip", "accelerator")


class _SeedOnly(OpenStackUsageSource):
    """The real source, restricted to the seed manifest's servers, floating IPs and volumes."""

    def __init__(self, clients: OpenStackClients, seed: dict[str, Any]):
        super().__init__(clients)
        self.server_ids = {s["id"] for s in seed["servers"].values()}
        self.fip_ids = {f["id"] for f in seed["floating_ips"]}
        self.volume_ids = {v["id"] for v in seed["volumes"].values()}
        self.action_reads: list[str] = []

    def servers(self, project_id: str, deleted_since: datetime | None) -> Sequence[Server]:
        return [s for s in super().servers(project_id, deleted_since) if s.id in self.server_ids]

    def deleted_servers(self, since: datetime) -> Sequence[Server]:
        return [s for s in super().deleted_servers(since) if s.id in self.server_ids]

    def changed_servers(self, project_id: str, since: datetime) -> Sequence[Server]:
        return [s for s in super().changed_servers(project_id, since) if s.id in self.server_ids]

    def floating_ips(self, project_id: str) -> Sequence[FloatingIP]:
        return [f for f in super().floating_ips(project_id) if f.id in self.fip_ids]

    def volumes(self, project_id: str) -> Sequence[Volume]:
        return [v for v in super().volumes(project_id) if v.id in self.volume_ids]

    def actions(self, server_id: str):  # type: ignore[no-untyped-def]
        self.action_reads.append(server_id)
        return super().actions(server_id)


def seed_identity(seed: dict[str, Any]) -> dict[str, Any]:
    return {
        "generated_at": seed.get("generated_at"),
        "window": seed["window"],
        "servers": sorted(s["id"] for s in seed["servers"].values()),
    }


def queue_texts(root: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind in KINDS:
        q = QueueSimple(str(root / kind))
        texts = []
        for elt in q:
            if q.lock(elt):
                texts.append(q.get(elt).decode("ascii"))
                q.unlock(elt)
        out[kind] = sorted(texts)
    return out


def extract_seeded(testbed: Any, tmp: Path, version: str) -> tuple[dict[str, list[str]], Any]:
    """One run over the seeded site's fixed window; the queued texts and the source used."""
    seed = testbed.seed
    end = datetime.fromisoformat(seed["window"]["end"].replace("Z", "+00:00")) + timedelta(
        minutes=10
    )
    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in seed["vo_map"].items():
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    cfg = AppConfig.model_validate(
        {
            "site": {"name": "TESTBED-SITE"},
            "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(testbed.clouds_yaml)},
            "vos": vos,
            "paths": {"state_dir": str(tmp / "state"), "spool_dir": str(tmp / "spool")},
            "accounting": {"ip_records": True, "accelerator_records": True},
            "ssm": {"protocol": "STOMP"},
        }
    )
    source = _SeedOnly(OpenStackClients.from_config(cfg.openstack), seed)
    ns = argparse.Namespace(output_dir=None, extract_from=end - timedelta(days=30), extract_to=end)
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(accounting_extractor, "__version__", version)
        report = execute(
            jobs.JOBS[0],
            JobContext(config=cfg, options=ns, deps=jobs.AccountingDeps(source=source)),
        )
    finally:
        mp.undo()
    assert report.exit_code == ExitCode.OK, report.render_text()
    return queue_texts(tmp / "spool" / "outgoing"), source


@pytest.fixture
def madrid(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Madrid")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_seeded_site_queues_the_golden_messages_byte_for_byte(testbed, tmp_path, madrid):
    assert time.localtime().tm_gmtoff != 0
    identity = seed_identity(testbed.seed)
    if os.environ.get("FEDCLOUD_ACCOUNTING_GOLDEN_WRITE") == "1":
        got, _ = extract_seeded(testbed, tmp_path, __version__)
        GOLDEN.parent.mkdir(exist_ok=True)
        doc = {"seed": identity, "version": __version__, "queues": got}
        GOLDEN.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"golden copy written to {GOLDEN}")
    golden = json.loads(GOLDEN.read_text())
    if golden["seed"] != identity:
        pytest.skip(
            f"{GOLDEN.name} was taken on the seed of {golden['seed']['generated_at']}, "
            f"this testbed was seeded at {identity['generated_at']}: no golden copy for it"
        )
    got, source = extract_seeded(testbed, tmp_path, golden["version"])
    assert got["cloud"], "no cloud message"
    for kind in KINDS:
        assert got[kind] == golden["queues"][kind], f"{kind} queue differs from the golden copy"
    # the servers that changed state get their history read, those ACTIVE since their first
    # launch and the one never launched do not (the bytes are the same all the same)
    ids = {n: s["id"] for n, s in testbed.seed["servers"].items()}
    for name in ("fc-cycled", "fc-shelved", "ops-suspended", "ops-deleted", "fc2-paused"):
        assert ids[name] in source.action_reads, name
    for name in ("ops-active", "fc2-active", "fc-bench", "fc-error"):
        assert ids[name] not in source.action_reads, name
