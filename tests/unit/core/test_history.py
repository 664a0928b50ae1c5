"""Run history: execute() appends every run; versioned, atomic, bounded by days and size."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fedcloud_core import history
from fedcloud_core.config import parse_config
from fedcloud_core.errors import FedcloudError, StateVersionError
from fedcloud_core.jobs import JobContext, JobSpec, execute
from fedcloud_core.report import RunReport

pytestmark = pytest.mark.unit


def _cfg(tmp_path: Path, extra: str = ""):
    return parse_config(
        f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}/state{extra}}}\n",
        source="test",
        environ={},
    )


def _report(finished: datetime, **kw) -> RunReport:
    r = RunReport(job="ssm-send", started=finished - timedelta(seconds=5), **kw)
    r.finished = finished
    return r


def test_execute_appends_every_run_including_failures(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    outcomes = iter([None, "broker down", None])

    def run(ctx: JobContext) -> RunReport:
        fatal = next(outcomes)
        if fatal:
            raise FedcloudError(fatal)
        r = RunReport(job="ssm-send")
        r.count("sent", 2)
        r.error("queue cloud: message x set aside: bad")
        r.details["records_by_vo"] = {"ops": 3}
        return r

    spec = JobSpec("ssm send", "send", run)
    for _ in range(3):
        execute(spec, JobContext(config=cfg))
    path = history.history_path(cfg.paths.state_dir, "ssm-send")
    doc = json.loads(path.read_text())
    assert doc["version"] == history.HISTORY_VERSION
    runs = doc["runs"]
    assert [r["status"] for r in runs] == ["partial", "failed", "partial"]
    assert runs[0]["counts"] == {"sent": 2}
    assert runs[0]["records_by_vo"] == {"ops": 3}
    assert runs[0]["error"].startswith("queue cloud: message x set aside")
    assert runs[1]["error"] == "broker down"
    # no temporary file is left beside it (atomic rename)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ssm-send.json"]


def test_dry_run_is_not_recorded(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    spec = JobSpec("ssm send", "send", lambda ctx: RunReport(job="ssm-send", dry_run=True))
    execute(spec, JobContext(config=cfg, dry_run=True))
    assert not history.history_path(cfg.paths.state_dir, "ssm-send").exists()


def test_old_runs_are_dropped_after_n_days(tmp_path: Path) -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    for hour in range(0, 24 * 10, 6):
        history.append_run(tmp_path, _report(start + timedelta(hours=hour)), days=3)
    runs = history.load_history(tmp_path, "ssm-send")["runs"]
    first = datetime.fromisoformat(runs[0]["finished"])
    last = datetime.fromisoformat(runs[-1]["finished"])
    assert last == start + timedelta(hours=234)
    assert last - first < timedelta(days=3)
    assert len(runs) == 12  # 3 days of 4 runs a day


def test_size_cap_drops_the_oldest_runs(tmp_path: Path) -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    for i in range(300):
        r = _report(start + timedelta(minutes=i), counts={f"figure_{k}": k for k in range(10)})
        history.append_run(tmp_path, r, max_bytes=20_000)
    path = history.history_path(tmp_path, "ssm-send")
    assert path.stat().st_size <= 20_000
    runs = history.load_history(tmp_path, "ssm-send")["runs"]
    assert 30 < len(runs) < 300
    assert runs[-1]["finished"] == (start + timedelta(minutes=299)).isoformat()


def test_newer_history_is_left_alone_and_read_as_empty(tmp_path: Path) -> None:
    path = history.history_path(tmp_path, "ssm-send")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 99, "runs": [{"status": "ok"}]}))
    with pytest.raises(StateVersionError):
        history.append_run(tmp_path, _report(datetime(2026, 5, 1, tzinfo=UTC)))
    assert json.loads(path.read_text())["version"] == 99
    got = history.load_history(tmp_path, "ssm-send")
    assert got["runs"] == []
    assert "99" in got["error"]


def test_unreadable_history_is_replaced(tmp_path: Path) -> None:
    path = history.history_path(tmp_path, "ssm-send")
    path.parent.mkdir(parents=True)
    path.write_text("{half a file")
    history.append_run(tmp_path, _report(datetime(2026, 5, 1, tzinfo=UTC)))
    assert len(history.load_history(tmp_path, "ssm-send")["runs"]) == 1


def test_image_table_keeps_last_verified_and_last_error(tmp_path: Path) -> None:
    t1 = datetime(2026, 5, 1, tzinfo=UTC)
    t2 = t1 + timedelta(hours=4)
    img = {"key": "list/img-1", "name": "Ubuntu", "vo": "ops", "version": "1", "size": 10}
    r1 = RunReport(job="images-sync", started=t1)
    r1.finished = t1
    r1.details["images"] = [{**img, "state": "new"}]
    history.append_run(tmp_path, r1)
    r2 = RunReport(job="images-sync", started=t2)
    r2.finished = t2
    r2.details["images"] = [{**img, "version": "2", "state": "failed", "error": "digest mismatch"}]
    history.append_run(tmp_path, r2)
    row = history.load_history(tmp_path, "images-sync")["images"]["list/img-1"]
    assert row["state"] == "failed"
    assert row["version"] == "2"
    assert row["last_verified"] == t1.isoformat()
    assert row["last_error"] == "digest mismatch"
    assert row["last_error_at"] == t2.isoformat()


def test_records_by_vo_of_each_message_format() -> None:
    cloud = (
        b"APEL-cloud-message: v0.4\nFQAN: /ops/Role=NULL\nVMUUID: a\n%%\n"
        b"FQAN: vo.example.org\nVMUUID: b\n%%\nFQAN: ops\nVMUUID: c\n"
    )
    assert history.records_by_vo(cloud) == {"ops": 2, "vo.example.org": 1}
    storage = (
        b'<?xml version="1.0"?>\n<sr:StorageUsageRecords xmlns:sr="x">'
        b"<sr:StorageUsageRecord><sr:Group>ops</sr:Group></sr:StorageUsageRecord>"
        b"<sr:StorageUsageRecord><sr:Group>ops</sr:Group></sr:StorageUsageRecord>"
        b"</sr:StorageUsageRecords>\n"
    )
    assert history.records_by_vo(storage) == {"ops": 2}
    ip = json.dumps(
        {"Type": "APEL Public IP message", "UsageRecords": [{"FQAN": "/dteam"}], "Version": "0.2"}
    ).encode()
    assert history.records_by_vo(ip) == {"dteam": 1}
    assert history.records_by_vo(b"garbage") == {}


def test_a_history_that_cannot_be_written_never_fails_the_run(tmp_path: Path, caplog) -> None:
    cfg = _cfg(tmp_path)
    (cfg.paths.state_dir).mkdir(parents=True)
    (cfg.paths.state_dir / "history").write_text("a file where the directory should be")
    spec = JobSpec("ssm send", "send", lambda ctx: RunReport(job="ssm-send"))
    report = execute(spec, JobContext(config=cfg))
    assert report.status.value == "ok"
    assert (cfg.paths.state_dir / "status" / "ssm-send.json").exists()
    assert "could not add the run to the history" in caplog.text


def test_records_by_vo_of_cloud_messages_counts_as_the_first_fqan_line_of_each_record() -> None:
    """The str.find scan on the SSM send path gives what a ^FQAN: regex per record gives."""

    def by_regex(body: bytes) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in body.decode().split("\n%%\n"):
            m = history._CLOUD_FQAN.search(chunk)
            if m or "VMUUID:" in chunk:
                vo = history.vo_of_fqan(m.group(1)) if m else "(none)"
                out[vo] = out.get(vo, 0) + 1
        return out

    body = (
        b"APEL-cloud-message: v0.4\nVMUUID: a\nxFQAN: not-a-line-start\n%%\n"
        b"FQAN: /vo.x/Role=a\nVMUUID: b\n%%\nVMUUID: c\nFQAN:   ops\r\n%%\nno record\n%%\n"
        b"FQAN: \nVMUUID: d\nFQAN: second\n%%\nVMUUID: e\nFQAN: vo.x"
    )
    assert history.records_by_vo(body) == by_regex(body)
    assert history.records_by_vo(body) == {"(none)": 2, "vo.x": 2, "ops": 1}
