"""Real Nova: which servers' instance actions the extractor reads (issue 15).

Two servers of a project of their own: one left ACTIVE since its launch, one shelved and
unshelved. Checks on the testbed's Nova what docs/accounting.md relies on - a first
launch leaves ``updated`` at ``launched_at``; an unshelve spawns again, moving
``launched_at`` and leaving ``updated`` at it - and that the extractor reads the history
of the re-spawned server (its shelved time is counted) and not of the untouched one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting import jobs
from fedcloud_accounting.extract.openstack import OpenStackUsageSource
from fedcloud_accounting.extract.timeline import SAME_SAVE, history_matters
from fedcloud_accounting.record.validate import parse_cloud_message
from fedcloud_core.config import AppConfig
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.openstack import OpenStackClients
from testbed import layout

pytestmark = pytest.mark.integration


@pytest.fixture
def own_project(testbed: Any) -> Any:
    """A project of its own (unique name), the admin a member; removed with its servers."""
    from keystoneauth1.exceptions import NotFound

    ks = testbed.keystone(testbed.admin_session())
    name = f"acct-respawn-{uuid.uuid4().hex[:8]}"
    project = ks.projects.create(name=name, domain="default", description="accounting test")
    ks.roles.grant(ks.roles.find(name="admin"), user=ks.users.find(name="admin"), project=project)
    nova = testbed.nova(testbed.session("admin", layout.ADMIN_PASSWORD, name))
    try:
        yield project, nova
    finally:
        for s in nova.servers.list():
            try:
                nova.servers.force_delete(s.id)
            except Exception:
                nova.servers.delete(s.id)
        deadline = time.monotonic() + 120
        while nova.servers.list() and time.monotonic() < deadline:
            time.sleep(1)
        try:
            ks.projects.delete(project)
        except NotFound:
            pass


def wait(nova: Any, server_id: str, status: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = nova.servers.get(server_id)
        if s.status == status and getattr(s, "OS-EXT-STS:task_state", None) is None:
            return
        assert s.status != "ERROR", f"server {server_id} went to ERROR"
        time.sleep(1)
    raise AssertionError(f"server {server_id} did not reach {status} in {timeout:g}s")


class _Counting(OpenStackUsageSource):
    def __init__(self, clients: OpenStackClients):
        super().__init__(clients)
        self.action_reads: list[str] = []

    def actions(self, server_id):
        self.action_reads.append(server_id)
        return super().actions(server_id)


def test_an_unshelved_server_is_read_one_active_since_its_launch_is_not(testbed, own_project):
    project, nova = own_project
    seed = testbed.seed
    image, flavor = seed["images"]["cirros-plain"]["id"], seed["flavors"]["m1.small"]["id"]
    still = nova.servers.create("acct-still", image, flavor, nics="none")
    moved = nova.servers.create("acct-respawned", image, flavor, nics="none")
    wait(nova, still.id, "ACTIVE")
    wait(nova, moved.id, "ACTIVE")
    cfg = AppConfig.model_validate(
        {
            "site": {"name": "TESTBED-SITE"},
            "openstack": {"cloud": "testbed-admin", "clouds_yaml": str(testbed.clouds_yaml)},
            "vos": {"ops": {"projects": [project.id]}},
            "paths": {"state_dir": "/nonexistent", "spool_dir": "/nonexistent"},
        }
    )
    source = _Counting(OpenStackClients.from_config(cfg.openstack))
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    first = {s.id: s for s in source.servers(project.id, epoch)}[moved.id]
    assert first.launched is not None
    assert first.updated is not None

    shelved_at = time.time()
    nova.servers.shelve(moved.id)
    wait(nova, moved.id, "SHELVED_OFFLOADED")
    time.sleep(3)
    nova.servers.unshelve(moved.id)
    wait(nova, moved.id, "ACTIVE")
    unshelved_at = time.time()

    listed = {s.id: s for s in source.servers(project.id, epoch)}
    s_still, s_moved = listed[still.id], listed[moved.id]
    # what the criterion relies on, as Nova does it
    assert s_still.launched is not None
    assert s_still.updated is not None
    assert abs(s_still.updated - s_still.launched) <= SAME_SAVE
    assert s_moved.launched is not None
    assert s_moved.updated is not None
    assert s_moved.launched > first.launched  # the unshelve spawned it again
    assert abs(s_moved.updated - s_moved.launched) <= SAME_SAVE  # and was its last save
    # a bound above the first launch's build time tells the re-spawn from a first launch
    build = int((max(first.launched, s_still.launched) - first.created).total_seconds()) + 1
    assert s_moved.launched - s_moved.created > timedelta(seconds=build)
    assert not history_matters(s_still, timedelta(seconds=build))
    assert history_matters(s_moved, timedelta(seconds=build))

    d = cfg.model_dump(mode="json")
    d["accounting"]["max_build_seconds"] = build
    with tempfile.TemporaryDirectory() as tmp:
        d["paths"] = {"state_dir": f"{tmp}/state", "spool_dir": f"{tmp}/spool"}
        cfg = AppConfig.model_validate(d)
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        ns = argparse.Namespace(output_dir=None, extract_from=None, extract_to=end)
        report = execute(
            jobs.JOBS[0],
            JobContext(config=cfg, options=ns, deps=jobs.AccountingDeps(source=source)),
        )
        assert report.exit_code == 0, report.render_text()
        q = QueueSimple(str(Path(tmp) / "spool" / "outgoing" / "cloud"))
        recs = {}
        for elt in q:
            if q.lock(elt):
                recs.update({r["VMUUID"]: r for r in parse_cloud_message(q.get(elt).decode())[1]})
                q.unlock(elt)
    assert moved.id in source.action_reads
    assert still.id not in source.action_reads
    assert report.counts["action_lists_skipped"] == 1
    shelved = int(recs[moved.id]["SuspendDuration"])
    assert 3 <= shelved <= unshelved_at - shelved_at + 5, recs[moved.id]
    assert recs[still.id]["SuspendDuration"] == "0"
