"""A whole run with a fake source: checkpoints, failures that do not lose the rest, dry runs."""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from fedcloud_accounting import jobs
from fedcloud_accounting.checkpoint import CheckpointStore
from fedcloud_accounting.errors import AccountingError
from fedcloud_accounting.extract.facts import Project
from fedcloud_accounting.extractor import Extractor, Window
from fedcloud_accounting.jobs import AccountingDeps
from fedcloud_accounting.record.validate import parse_cloud_message
from fedcloud_core.errors import ExitCode, StateVersionError
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.lock import RunLock
from unit.accounting.accounting_fakes import (
    END,
    GPU,
    P1,
    P2,
    T0,
    MemoryWriter,
    at,
    make_config,
    server,
    standard_source,
)

pytestmark = pytest.mark.unit


def extractor(tmp_path, source=None, writer=None, **kw):
    cfg = make_config(tmp_path, **kw.pop("acct", {}))
    store = CheckpointStore(tmp_path / "state" / "accounting" / "checkpoints.json")
    ex = Extractor(
        cfg,
        source or standard_source(),
        writer if writer is not None else MemoryWriter(),
        store,
        now=lambda: END,
        **kw,
    )
    return ex, store


def cloud_records(writer: MemoryWriter) -> list[dict[str, str]]:
    out = []
    for queue, body in writer.messages:
        if queue == "cloud":
            out += parse_cloud_message(body.decode())[1]
    return out


def test_first_run_uses_the_bounded_window_and_advances_each_checkpoint(tmp_path):
    src = standard_source()
    ex, store = extractor(tmp_path, src)
    report = ex.run()
    assert report.exit_code == ExitCode.OK, report.render_text()
    assert store.load() == {P1: END, P2: END}
    assert ("servers", (P1, END - timedelta(days=30))) in src.calls
    assert report.counts["records_cloud"] == 5
    assert report.counts["records_storage"] == 1


def test_second_run_starts_at_the_checkpoint_and_still_reports_long_running_servers(tmp_path):
    src = standard_source()
    ex, store = extractor(tmp_path, src)
    ex.run()
    writer = MemoryWriter()
    later = END + timedelta(hours=1)
    ex2 = Extractor(ex.config, src, writer, store, now=lambda: later)
    assert ex2.run().exit_code == ExitCode.OK
    # Nova is asked from the checkpoint minus the changes-since margin (clock skew)
    assert ("servers", (P1, END - timedelta(minutes=10))) in src.calls
    ids = {r["VMUUID"] for r in cloud_records(writer)}
    assert {"a-run", "b-stop", "d-shelve", "e-p2"} <= ids  # unchanged servers are reported again
    assert "c-del" not in ids  # deleted before the checkpoint
    assert store.load()[P1] == later


def test_checkpoint_not_advanced_when_the_queue_write_fails(tmp_path):
    ex, store = extractor(tmp_path, writer=MemoryWriter(fail_on=1))
    report = ex.run()
    assert report.exit_code == ExitCode.FAILED  # every project failed
    assert any("No space left" in e for e in report.errors)
    assert store.load() == {}


def test_a_failing_writer_for_the_second_project_keeps_only_that_checkpoint(tmp_path):
    writer = MemoryWriter(fail_on=3)  # P1 makes two messages (cloud + storage), P2's first fails
    ex, store = extractor(tmp_path, writer=writer)
    report = ex.run()
    assert report.exit_code == ExitCode.PARTIAL
    assert store.load() == {P1: END}


def test_api_error_for_one_project_does_not_stop_the_others(tmp_path):
    src = standard_source()
    src.failing_projects = {P1}
    writer = MemoryWriter()
    ex, store = extractor(tmp_path, src, writer)
    report = ex.run()
    assert report.exit_code == ExitCode.PARTIAL
    assert [r["VMUUID"] for r in cloud_records(writer)] == ["e-p2"]
    assert store.load() == {P2: END}
    # rerun once the cloud is back: P1 still starts from the first-run window, nothing lost
    src.failing_projects = set()
    src.calls.clear()
    writer2 = MemoryWriter()
    ex2 = Extractor(ex.config, src, writer2, store, now=lambda: END)
    assert ex2.run().exit_code == ExitCode.OK
    assert ("servers", (P1, END - timedelta(days=30))) in src.calls
    assert "c-del" in {r["VMUUID"] for r in cloud_records(writer2)}


def test_all_projects_failing_is_a_transient_failure(tmp_path):
    src = standard_source()
    src.failing_projects = {P1, P2}
    ex, _ = extractor(tmp_path, src)
    report = ex.run()
    assert report.fatal
    assert report.details["transient"] is True
    assert report.exit_code == ExitCode.TRANSIENT


@pytest.mark.parametrize("mixed", [False, True], ids=["all-refused", "one-refused"])
def test_refused_credentials_fail_the_run_permanent_not_transient(tmp_path, monkeypatch, mixed):
    """Issue 19: a 401/403 from OpenStack was "retry later" (exit 75) in accounting only; a
    revoked credential does not heal by retrying: exit 1, as in every service."""
    from fedcloud_core.errors import OpenStackRefused, OpenStackUnavailable

    src = standard_source()
    src.failing_projects = {P1, P2}

    def fail(project: str) -> None:
        if project == P2 and mixed:
            raise OpenStackUnavailable(f"nova servers.list (project {project}): 503")
        raise OpenStackRefused(
            f"nova servers.list (project {project}): credentials refused (HTTP 401)", status=401
        )

    monkeypatch.setattr(src, "_fail", fail)
    ex, _ = extractor(tmp_path, src)
    report = ex.run()
    assert report.fatal == "every project failed (2)"
    assert report.details["transient"] is False
    assert report.exit_code == ExitCode.FAILED
    assert any("credentials refused" in e and "a human must fix it" in e for e in report.errors)


def test_vanished_flavor_uses_the_embedded_one_and_unknown_flavor_is_set_aside(tmp_path):
    src = standard_source()
    src.flavor_list = []  # every flavor deleted: embedded flavors still work
    src.servers_by_project[P1].append(server("z-noflavor", flavor=None, flavor_ref="gone"))
    writer = MemoryWriter()
    ex, store = extractor(tmp_path, src, writer)
    report = ex.run()
    recs = {r["VMUUID"]: r for r in cloud_records(writer)}
    assert recs["b-stop"]["CpuCount"] == "8"
    assert "z-noflavor" not in recs
    assert report.exit_code == ExitCode.PARTIAL
    assert report.counts["records_rejected"] == 1
    assert any("z-noflavor" in e and "gone" in e for e in report.errors)
    rejected = json.loads(
        next((tmp_path / "state" / "accounting" / "rejected").iterdir()).read_text()
    )
    assert rejected[0]["record"]["VMUUID"] == "z-noflavor"
    assert store.load()[P1] == END  # the others went through


def test_non_ascii_and_percent_names_are_sanitised_and_reported(tmp_path):
    src = standard_source()
    src.servers_by_project[P1].append(server("n-name", name="r\u00e9sum\u00e9 %% \u2603\nvm"))
    writer = MemoryWriter()
    ex, _ = extractor(tmp_path, src, writer)
    report = ex.run()
    recs = {r["VMUUID"]: r for r in cloud_records(writer)}
    assert recs["n-name"]["MachineName"] == "resume % ? vm"
    assert report.counts["values_sanitised"] == 1
    assert report.exit_code == ExitCode.OK


def test_unmapped_or_unknown_projects_are_reported_and_skipped(tmp_path):
    src = standard_source()
    src.project_list = [
        Project(P1, "ops-project"),
        Project(P2, "fc"),
        Project("3" * 32, "tagged", {"egi.VO": "vo.example.org"}),
        Project("4" * 32, "bad-tag", {"egi.VO": ""}),
    ]
    src.servers_by_project["3" * 32] = [server("t-1", "3" * 32)]
    cfg_extra = {"discover_vo_property": "egi.VO"}
    writer = MemoryWriter()
    ex, store = extractor(tmp_path, src, writer, acct=cfg_extra)
    ex.config.vos["ops"].projects.append("no-such-project")
    report = ex.run()
    assert report.exit_code == ExitCode.PARTIAL
    assert any("no-such-project" in e for e in report.errors)
    assert any("4" * 32 in e and "unmapped" in e for e in report.errors)
    recs = {r["VMUUID"]: r for r in cloud_records(writer)}
    assert recs["t-1"]["FQAN"] == "vo.example.org"
    assert set(store.load()) == {P1, P2, "3" * 32}


def test_rerunning_a_window_gives_identical_messages(tmp_path):
    w1, w2 = MemoryWriter(), MemoryWriter()
    window = Window(at(0), at(100))
    ex1, _ = extractor(tmp_path / "a", writer=w1)
    ex2, _ = extractor(tmp_path / "b", writer=w2)
    ex1.window = ex2.window = window
    ex1.run()
    ex2.run()
    assert w1.messages == w2.messages
    assert w1.messages


def test_window_ending_before_the_checkpoint_is_skipped(tmp_path):
    ex, store = extractor(tmp_path)
    ex.run()
    writer = MemoryWriter()
    ex.writer = writer
    ex.window = Window(extract_to=END - timedelta(days=1))
    report = ex.run()
    assert writer.messages == []
    assert store.load()[P1] == END
    assert any("older snapshot" in w for w in report.warnings)


def test_dry_run_prints_and_touches_neither_queue_nor_checkpoint(tmp_path):
    out = io.StringIO()
    writer = MemoryWriter()
    ex, store = extractor(tmp_path, writer=writer, dry_run=True, out=out)
    report = ex.run()
    assert report.status.value == "dry-run"
    assert writer.messages == []
    assert store.load() == {}
    assert out.getvalue().count("APEL-cloud-message: v0.4") == 2
    assert not (tmp_path / "state" / "accounting").exists()


def test_corrupt_checkpoint_file_stops_the_run_with_the_file_named(tmp_path):
    ex, store = extractor(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(AccountingError, match=r"checkpoints\.json"):
        ex.run()


def _ctx(tmp_path, writer, **options):
    cfg = make_config(tmp_path)
    ns = argparse.Namespace(output_dir=None, extract_from=None, extract_to=None, **options)
    return JobContext(
        config=cfg,
        options=ns,
        deps=AccountingDeps(source=standard_source(), writer=writer, now=lambda: END),
    )


def test_job_output_dir_writes_a_queue_there_and_keeps_checkpoints(tmp_path):
    from dirq.QueueSimple import QueueSimple

    ctx = _ctx(tmp_path, None)
    ctx.deps = replace(ctx.deps, writer=None)
    ctx.options.output_dir = tmp_path / "out"
    report = execute(jobs.JOBS[0], ctx)
    assert report.exit_code == ExitCode.OK
    assert QueueSimple(str(tmp_path / "out" / "cloud")).count() == 2
    assert not (tmp_path / "state" / "accounting" / "checkpoints.json").exists()


def test_second_concurrent_run_exits_locked_or_waits(tmp_path):
    from fedcloud_appliance.cli import main

    cfg_path = tmp_path / "appliance.yaml"
    cfg_path.write_text(f"site: {{name: TEST-SITE}}\npaths: {{state_dir: {tmp_path / 'state'}}}\n")
    ctx = _ctx(tmp_path, MemoryWriter())
    lock = RunLock(ctx.config.paths.locks, "accounting-extract")
    lock.acquire()
    try:
        assert (
            main(["accounting", "extract", "--once", "--config", str(cfg_path)]) == ExitCode.LOCKED
        )
        timer = threading.Timer(0.5, lock.release)
        timer.start()
        t0 = time.monotonic()
        report = execute(jobs.JOBS[0], ctx, lock_wait=10)
        assert report.exit_code == ExitCode.OK
        assert time.monotonic() - t0 >= 0.4
        timer.join()
    finally:
        lock.release()


def test_extract_window_arguments_are_utc():
    assert jobs.utc_time("2024-05-01") == at(0)
    assert jobs.utc_time("2024-05-01T02:00:00+02:00") == at(0)
    assert jobs.utc_time("2024-05-01T00:00:00Z") == at(0)
    with pytest.raises(argparse.ArgumentTypeError):
        jobs.utc_time("yesterday")


def test_projects_discovered_by_keystone_tag(tmp_path):
    src = standard_source()
    src.project_list = [
        Project(P1, "ops-project"),
        Project(P2, "fc"),
        Project("5" * 32, "tagged", tags=("other", "VO:vo.tag.example")),
    ]
    src.servers_by_project["5" * 32] = [server("t-5", "5" * 32)]
    writer = MemoryWriter()
    ex, _ = extractor(tmp_path, src, writer, acct={"discover_vo_tag_prefix": "VO:"})
    assert ex.run().exit_code == ExitCode.OK
    assert {r["VMUUID"]: r["FQAN"] for r in cloud_records(writer)}["t-5"] == "vo.tag.example"


@pytest.mark.parametrize(
    "specs",
    [
        {"Accelerator:Number": "two", "Accelerator:Model": "A100"},
        {"Accelerator:Number": "1.5"},
        {"pci_passthrough:alias": "a100:x"},
    ],
    ids=["word", "fraction", "pci-alias"],
)
def test_non_integer_accelerator_count_sets_aside_that_server_only(tmp_path, specs):
    from fedcloud_accounting.extract.facts import Flavor

    bad = Flavor("f-bad", "g1.bad", 4, 8192, 40, 0, specs)
    src = standard_source()
    src.servers_by_project[P1].append(server("y-badgpu", created=1, flavor=bad))
    src.servers_by_project[P2].append(server("x-gpu", P2, created=2, flavor=GPU))
    writer = MemoryWriter()
    ex, store = extractor(tmp_path, src, writer, acct={"accelerator_records": True})
    report = ex.run()
    assert not report.fatal
    assert report.exit_code == ExitCode.PARTIAL
    assert report.counts["records_rejected"] == 1
    assert any("y-badgpu" in e and "g1.bad" in e for e in report.errors)
    # the server's usage is still accounted; only its accelerator record is set aside
    assert "y-badgpu" in {r["VMUUID"] for r in cloud_records(writer)}
    acc = [json.loads(b) for q, b in writer.messages if q == "accelerator"]
    assert [r["AssociatedRecord"] for m in acc for r in m["UsageRecords"]] == ["x-gpu"]
    assert store.load() == {P1: END, P2: END}


def test_server_deleted_in_nova_just_before_the_checkpoint_still_gets_its_final_record(tmp_path):
    """Appliance clock ahead of Nova's: the first run (appliance time END) still saw the server
    alive; Nova then recorded its deletion at END-2min by its own clock."""
    src = standard_source()
    src.servers_by_project[P1].append(server("s-skew", created=100))
    ex, store = extractor(tmp_path, src)
    assert ex.run().exit_code == ExitCode.OK
    first = {r["VMUUID"]: r for r in cloud_records(ex.writer)}
    assert first["s-skew"]["Status"] == "started"
    src.servers_by_project[P1][-1] = server(
        "s-skew", created=100, terminated=(END - T0).total_seconds() / 3600 - 2 / 60
    )
    writer = MemoryWriter()
    later = END + timedelta(hours=1)
    report = Extractor(ex.config, src, writer, store, now=lambda: later).run()
    assert report.exit_code == ExitCode.OK
    recs = {r["VMUUID"]: r for r in cloud_records(writer)}
    assert recs["s-skew"]["Status"] == "completed"
    assert int(recs["s-skew"]["EndTime"]) == int((END - timedelta(minutes=2)).timestamp())
    # a third run does not queue that final record again
    writer3 = MemoryWriter()
    Extractor(ex.config, src, writer3, store, now=lambda: later + timedelta(hours=1)).run()
    assert "s-skew" not in {r["VMUUID"] for r in cloud_records(writer3)}


def test_changes_since_overlap_queues_no_final_record_twice(tmp_path):
    """Same clocks: a server deleted 5 minutes before the checkpoint got its final record in
    that run; the next run's overlap finds it again and leaves it out: the records are the same
    as without the overlap."""
    messages = {}
    for margin in (0, 10):
        src = standard_source()
        src.servers_by_project[P1].append(
            server("s-gone", created=100, terminated=(END - T0).total_seconds() / 3600 - 5 / 60)
        )
        tmp = tmp_path / f"margin-{margin}"
        ex, store = extractor(tmp, src, acct={"changes_since_margin_minutes": margin})
        ex.run()
        assert "s-gone" in {r["VMUUID"] for r in cloud_records(ex.writer)}
        writer = MemoryWriter()
        report = Extractor(
            ex.config, src, writer, store, now=lambda: END + timedelta(hours=1)
        ).run()
        assert "s-gone" not in {r["VMUUID"] for r in cloud_records(writer)}
        messages[margin] = writer.messages
        if margin:
            assert report.counts["final_records_already_queued"] == 1
    assert messages[0] == messages[10]


def test_finals_of_a_newer_release_stop_the_run_untouched(tmp_path):
    """A finals.json written by a newer release is refused (versioned state, issue 18): the
    run fails naming the file, queues nothing and leaves the file and checkpoints as they were."""
    src = standard_source()
    src.servers_by_project[P1].append(
        server("s-gone", created=100, terminated=(END - T0).total_seconds() / 3600 - 5 / 60)
    )
    ex, store = extractor(tmp_path, src)
    ex.run()
    finals = store.path.parent / "finals.json"
    doc = json.loads(finals.read_text())
    doc["version"] = 2
    finals.write_text(json.dumps(doc))
    before = (finals.read_text(), store.path.read_text())
    writer = MemoryWriter()
    later = Extractor(ex.config, src, writer, store, now=lambda: END + timedelta(hours=1))
    with pytest.raises(StateVersionError, match=r"finals\.json"):
        later.run()
    assert writer.messages == []
    assert (finals.read_text(), store.path.read_text()) == before
