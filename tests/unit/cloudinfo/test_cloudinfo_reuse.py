"""Issue 18 defect 15: a failed per-item call reuses the answer behind the previous snapshot.

Before the fix a transient error on a private flavor's access list or a shared image's
members wrote an authoritative snapshot without them, and bdii-update deleted them
from the BDII for a cycle.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import pytest

from fedcloud_cloudinfo import snapshot_files
from fedcloud_cloudinfo.jobs import CLOUD_INFO_JOB, CloudInfoDeps
from fedcloud_core import ldif
from fedcloud_core.config import parse_config
from fedcloud_core.errors import PermanentError
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.report import RunReport, RunStatus
from unit.cloudinfo.cloudinfo_fakes import NOW, FakeSource

pytestmark = pytest.mark.unit

CFG = "site: {name: TEST-SITE}\nvos: {ops: {projects: [ops-project]}, fedcloud.egi.eu: {projects: [p-fc]}}\n"
FLAVOR_DN = "GLUE2ResourceID=f2,"  # the private flavor f2, shared with p-fc
IMAGE_DN = "GLUE2ApplicationEnvironmentID=i-shared,"  # shared with p-fc by membership


def _cfg(tmp_path: Path):
    return parse_config(CFG + f"paths: {{state_dir: {tmp_path}}}\n", source="test", environ={})


def _run(tmp_path: Path, src: FakeSource, minutes: int = 0, **opts) -> RunReport:
    ns = argparse.Namespace(format=None, output=None, all_images=None, publish=None)
    ctx = JobContext(
        config=_cfg(tmp_path),
        options=ns,
        deps=CloudInfoDeps(cloud_source=src, now=NOW + timedelta(minutes=minutes)),
        dry_run=opts.get("dry_run", False),
    )
    return execute(CLOUD_INFO_JOB, ctx)


def _snapshot(tmp_path: Path) -> str:
    return snapshot_files.ldif_path(_cfg(tmp_path)).read_text()


def _dns(text: str) -> list[str]:
    return [e.dn for e in ldif.parse(text)]


def _has(text: str, prefix: str) -> bool:
    return any(dn.startswith(prefix) for dn in _dns(text))


def _share_keys(text: str, attr: str) -> dict[str, list[str]]:
    """Share DN -> values of ``attr`` (how a share names its flavors / images)."""
    return {e.dn: e.get(attr) for e in ldif.parse(text) if "GLUE2Share" in e.get("objectClass")}


@pytest.mark.parametrize(
    ("call", "prefix"),
    [(("flavor_projects", "f2"), FLAVOR_DN), (("image_members", "i-shared"), IMAGE_DN)],
    ids=["flavor-access", "image-members"],
)
def test_transient_failure_keeps_the_previous_answer_and_the_snapshot_identical(
    tmp_path: Path, call: tuple[str, str], prefix: str
) -> None:
    first_report = _run(tmp_path, FakeSource())
    assert first_report.status is RunStatus.OK, first_report.render_text()
    first = _snapshot(tmp_path)
    assert _has(first, prefix)

    broken = FakeSource()
    broken.fail.add(call)
    report = _run(tmp_path, broken, minutes=10)
    assert call in broken.calls  # the call was made, and failed
    assert report.status is RunStatus.PARTIAL
    kind = "flavor_access" if call[0] == "flavor_projects" else "members"
    assert any(f"{kind} of {call[1]}" in e and "503" in e for e in report.errors)
    assert any(
        f"{kind} of {call[1]}: reusing the answer collected at 2026-11-21T10:00:00Z" in w
        for w in report.warnings
    )
    assert report.details["items_reused"] == [f"{kind} of {call[1]}"]
    second = _snapshot(tmp_path)
    assert second == first  # the item, and the shares it belongs to, exactly as before
    fk = "GLUE2ComputingShareExecutionEnvironmentForeignKey"
    assert any("f2" in keys for keys in _share_keys(second, fk).values())
    assert _has(second, prefix)


def test_repeated_failure_reuses_the_original_answer_with_its_time(tmp_path: Path) -> None:
    _run(tmp_path, FakeSource())
    first = _snapshot(tmp_path)
    broken = FakeSource()
    broken.fail.add(("flavor_projects", "f2"))
    _run(tmp_path, broken, minutes=10)
    report = _run(tmp_path, broken, minutes=20)
    assert any("collected at 2026-11-21T10:00:00Z" in w for w in report.warnings)
    assert _snapshot(tmp_path) == first
    saved = json.loads(snapshot_files.items_path(_cfg(tmp_path)).read_text())
    assert saved["version"] == 1
    assert saved["calls"]["flavor_access"]["f2"] == {
        "value": ["p-fc"],
        "collected": "2026-11-21T10:00:00Z",
    }
    # the call works again: a fresh answer and a fresh time
    assert _run(tmp_path, FakeSource(), minutes=30).status is RunStatus.OK
    saved = json.loads(snapshot_files.items_path(_cfg(tmp_path)).read_text())
    assert saved["calls"]["flavor_access"]["f2"]["collected"] == "2026-11-21T10:30:00Z"


def test_without_an_earlier_answer_the_item_is_left_out_and_the_run_says_so(
    tmp_path: Path,
) -> None:
    broken = FakeSource()
    broken.fail.add(("flavor_projects", "f2"))
    report = _run(tmp_path, broken)
    assert report.status is RunStatus.PARTIAL
    assert any(
        "flavor_access of f2: no earlier answer, nothing reused: private flavor f2 is left out" in w
        for w in report.warnings
    )
    assert not _has(_snapshot(tmp_path), FLAVOR_DN)
    assert _run(tmp_path, FakeSource(), minutes=10).status is RunStatus.OK
    assert _has(_snapshot(tmp_path), FLAVOR_DN)


def test_permanent_failure_is_an_answer_nothing_is_reused(tmp_path: Path) -> None:
    _run(tmp_path, FakeSource())

    class Gone(FakeSource):
        def flavor_projects(self, flavor_id: str) -> list[str]:
            if flavor_id == "f2":
                raise PermanentError("Nova flavor access of f2: NotFound (HTTP 404)")
            return super().flavor_projects(flavor_id)

    report = _run(tmp_path, Gone(), minutes=10)
    assert report.status is RunStatus.PARTIAL
    assert any("flavor_access of f2: a permanent error" in w for w in report.warnings)
    assert not _has(_snapshot(tmp_path), FLAVOR_DN)
    saved = json.loads(snapshot_files.items_path(_cfg(tmp_path)).read_text())
    assert "f2" not in saved["calls"].get("flavor_access", {})


def test_transient_quota_failure_keeps_the_previous_limits(tmp_path: Path) -> None:
    _run(tmp_path, FakeSource())
    first = _snapshot(tmp_path)
    broken = FakeSource()
    broken.fail.add(("quotas", "p-ops"))
    assert _run(tmp_path, broken, minutes=10).status is RunStatus.PARTIAL
    assert _snapshot(tmp_path) == first


def test_items_no_longer_listed_are_forgotten(tmp_path: Path) -> None:
    _run(tmp_path, FakeSource())
    src = FakeSource()
    src.flavor_list = [f for f in src.flavor_list if f.id != "f2"]
    _run(tmp_path, src, minutes=10)
    saved = json.loads(snapshot_files.items_path(_cfg(tmp_path)).read_text())
    assert sorted(saved["calls"]["flavor_access"]) == ["f3"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"version": 99, "calls": {}}', "state version 99"),
        ("{not json", "Expecting property name"),
        ('{"version": 1, "calls": {"flavor_access": {"f2": ["p-fc"]}}}', "no value"),
    ],
    ids=["newer", "not-json", "malformed"],
)
def test_unusable_items_file_is_reported_and_replaced(
    tmp_path: Path, content: str, why: str
) -> None:
    path = snapshot_files.items_path(_cfg(tmp_path))
    path.parent.mkdir(parents=True)
    path.write_text(content)
    broken = FakeSource()
    broken.fail.add(("flavor_projects", "f2"))
    report = _run(tmp_path, broken)
    assert report.status is RunStatus.PARTIAL  # not stopped: nothing reused, f2 left out
    assert any(why in w and str(path) in w and "none reused" in w for w in report.warnings)
    assert not _has(_snapshot(tmp_path), FLAVOR_DN)
    assert json.loads(path.read_text())["version"] == 1


def test_dry_run_does_not_write_the_items_file(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path, FakeSource(), dry_run=True).status is RunStatus.DRY_RUN
    capsys.readouterr()
    assert not snapshot_files.items_path(_cfg(tmp_path)).exists()


def test_a_remembered_answer_of_the_wrong_shape_is_never_used(tmp_path: Path) -> None:
    _run(tmp_path, FakeSource())
    path = snapshot_files.items_path(_cfg(tmp_path))
    doc = json.loads(path.read_text())
    doc["calls"]["flavor_access"]["f2"]["value"] = "p-fc"  # a string, not a list
    doc["calls"]["quotas"]["p-ops"]["value"] = ["10"]  # a list, not counts
    path.write_text(json.dumps(doc))
    broken = FakeSource()
    broken.fail |= {("flavor_projects", "f2"), ("quotas", "p-ops")}
    report = _run(tmp_path, broken, minutes=10)
    assert report.status is RunStatus.PARTIAL
    assert any("flavor_access of f2: no earlier answer" in w for w in report.warnings)
    assert any("quotas of p-ops: no earlier answer" in w for w in report.warnings)
    assert not _has(_snapshot(tmp_path), FLAVOR_DN)
