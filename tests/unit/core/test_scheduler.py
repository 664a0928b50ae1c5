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


class _FakeClock:
    """The scheduler's clock in a test: moved by hand, nothing sleeps."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance_to(self, when) -> None:
        self.now = when


def _flaky(outcomes: list[str]):
    """A job whose runs end as ``outcomes`` says: transient, permanent or ok."""
    from fedcloud_core.errors import PermanentError, TransientError

    runs = []

    def run(ctx):
        runs.append(1)
        outcome = outcomes.pop(0) if outcomes else "ok"
        if outcome == "transient":
            raise TransientError("the cloud did not answer")
        if outcome == "permanent":
            raise PermanentError("credentials refused")
        return RunReport(job="cloud-info")

    return run, runs


def _retry_job(sched):
    jobs = {j.id: j for j in sched.get_jobs()}
    return jobs.get("cloud-info-retry")


def test_a_transient_failure_is_retried_three_times_at_1_2_4_minutes(tmp_path):
    """errors.py says the scheduler retries transient failures (issue 19): bounded (3
    retries), with a doubling backoff, counted on the injected clock."""
    from datetime import timedelta

    from fedcloud_core.scheduler import RetryPolicy

    cfg = parse_config(f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n", environ={})
    clock = _FakeClock()
    run, runs = _flaky(["transient"] * 10)
    spec = JobSpec(name="cloud-info", help="", run=run)
    sched = build_scheduler(
        [(spec, 60)], lambda: JobContext(config=cfg), retry=RetryPolicy(3, 60), clock=clock
    )
    sched.get_jobs()[0].func()  # the regular run fails transient
    delays = []
    for _ in range(5):
        retry = _retry_job(sched)
        if retry is None:
            break
        delays.append(retry.trigger.run_date - clock.now)
        clock.advance_to(retry.trigger.run_date)
        sched.remove_job(retry.id)  # APScheduler drops a date job once it ran
        retry.func(*retry.args, **retry.kwargs)
    assert delays == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert len(runs) == 4  # the run and its 3 retries, then the next regular run
    assert _retry_job(sched) is None


def test_a_success_or_a_permanent_failure_is_not_retried(tmp_path):
    cfg = parse_config(f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n", environ={})
    for outcomes, retried in ((["ok"], False), (["permanent"], False), (["transient"], True)):
        run, _ = _flaky(list(outcomes))
        spec = JobSpec(name="cloud-info", help="", run=run)
        sched = build_scheduler([(spec, 60)], lambda: JobContext(config=cfg), clock=_FakeClock())
        sched.get_jobs()[0].func()
        assert (_retry_job(sched) is not None) is retried, outcomes


def test_retries_end_before_the_next_regular_run(tmp_path):
    """With a 5-minute interval only the retries at +1 and +2 (+3 in all) fit; the one at
    +4 more would come after the next regular run, which tries again anyway."""
    from datetime import timedelta

    from fedcloud_core.scheduler import RetryPolicy

    policy = RetryPolicy(retries=3, backoff=60)
    assert [policy.delay(n, 5 * 60) for n in (1, 2, 3, 4)] == [60, 120, None, None]
    assert [policy.delay(n, 60 * 60) for n in (1, 2, 3, 4)] == [60, 120, 240, None]
    assert RetryPolicy(retries=0).delay(1, 3600) is None

    cfg = parse_config(f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n", environ={})
    clock = _FakeClock()
    run, runs = _flaky(["transient"] * 10)
    spec = JobSpec(name="cloud-info", help="", run=run)
    sched = build_scheduler([(spec, 5)], lambda: JobContext(config=cfg), clock=clock)
    sched.get_jobs()[0].func()
    seen = []
    while (retry := _retry_job(sched)) is not None:
        seen.append(retry.trigger.run_date - clock.now)
        clock.advance_to(retry.trigger.run_date)
        sched.remove_job(retry.id)
        retry.func(*retry.args, **retry.kwargs)
    assert seen == [timedelta(minutes=1), timedelta(minutes=2)]
    assert len(runs) == 3


def test_the_scheduler_retry_keys_come_from_the_config(tmp_path, monkeypatch):
    from fedcloud_appliance import cli

    cfg = parse_config(
        f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n"
        "scheduler: {retries: 1, retry_backoff: 30}\n",
        environ={},
    )
    policy = cli._retry_policy(cfg)
    assert (policy.retries, policy.backoff) == (1, 30)
    defaults = parse_config("site: {name: S}\n", environ={}).scheduler
    assert (defaults.retries, defaults.retry_backoff) == (3, 60)
