"""The built-in scheduler: jobs registered with no-overlap settings; disabled jobs left out."""

from __future__ import annotations

import logging

import pytest

from fedcloud_core.config import parse_config
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport
from fedcloud_core.scheduler import build_scheduler

pytestmark = pytest.mark.unit


def test_scheduler_jobs_do_not_overlap_and_disabled_are_skipped(tmp_path):
    cfg = parse_config(f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n", environ={})
    a = JobSpec(name="cloud-info", help="", run=lambda c: RunReport(job="a"))
    b = JobSpec(name="ssm send", help="", run=lambda c: RunReport(job="b"))
    sched = build_scheduler([(a, 10), (b, 0)], lambda: JobContext(config=cfg))
    jobs = sched.get_jobs()
    assert [j.id for j in jobs] == ["cloud-info"]
    assert jobs[0].max_instances == 1
    assert jobs[0].coalesce is True
    assert jobs[0].trigger.interval.total_seconds() == 600


def test_scheduled_run_skips_when_lock_is_held(tmp_path, caplog):
    from fedcloud_core.lock import RunLock

    cfg = parse_config(f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n", environ={})
    ran = []
    spec = JobSpec(name="cloud-info", help="", run=lambda c: ran.append(1) or RunReport(job="a"))
    sched = build_scheduler([(spec, 10)], lambda: JobContext(config=cfg))
    job_func = sched.get_jobs()[0].func
    with RunLock(cfg.paths.locks, "cloud-info"), caplog.at_level(logging.INFO):
        job_func()
    assert ran == []
    assert "skipping cloud-info" in caplog.text
    job_func()
    assert ran == [1]


def test_a_config_error_in_a_scheduled_run_fails_that_job_only(tmp_path, caplog):
    """A ConfigError raised inside a run (issue 18): logged as a config error, the job's
    report stored as failed, the scheduler and its other jobs go on."""
    import json

    from fedcloud_core.errors import ConfigError

    cfg = parse_config(f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n", environ={})

    def bad(ctx):
        raise ConfigError("is required to publish", key="cloud_info.gocdb_id")

    ran = []
    a = JobSpec(name="cloud-info", help="", run=bad)
    b = JobSpec(name="ssm send", help="", run=lambda c: ran.append(1) or RunReport(job="b"))
    sched = build_scheduler([(a, 10), (b, 10)], lambda: JobContext(config=cfg))
    funcs = {j.id: j.func for j in sched.get_jobs()}
    with caplog.at_level(logging.INFO):
        funcs["cloud-info"]()  # returns: nothing escapes into APScheduler
        funcs["ssm-send"]()
        funcs["cloud-info"]()
    assert ran == [1]
    assert "cloud-info: config error: cloud_info.gocdb_id: is required" in caplog.text
    stored = json.loads((tmp_path / "status/cloud-info.json").read_text())
    assert stored["status"] == "failed"
    assert stored["details"]["config_error"] is True
    assert json.loads((tmp_path / "status/ssm-send.json").read_text())["status"] == "ok"
