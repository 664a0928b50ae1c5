"""The umbrella CLI: names, options, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcloud_appliance import catalog, cli
from fedcloud_core.errors import ConfigError, ExitCode, PermanentError, TransientError
from fedcloud_core.jobs import JobSpec
from fedcloud_core.report import RunReport

pytestmark = pytest.mark.unit

PUBLIC_COMMANDS = [
    "config check",
    "config sample",
    "config import-legacy",
    "cloud-info",
    "bdii-update",
    "site-bdii",
    "accounting extract",
    "ssm send",
    "images sync",
    "imagelist sign",
    "status",
    "scheduler",
]
JOB_COMMANDS = [
    "cloud-info",
    "bdii-update",
    "site-bdii",
    "accounting extract",
    "ssm send",
    "images sync",
]


@pytest.mark.parametrize("command", PUBLIC_COMMANDS)
def test_every_public_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*command.split(), "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: fedcloud-appliance {command}" in out


@pytest.mark.parametrize("command", JOB_COMMANDS)
def test_job_commands_take_the_common_options(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([*command.split(), "--help"])
    out = capsys.readouterr().out
    for opt in ("--config", "--once", "--dry-run", "--verbose", "--log-format"):
        assert opt in out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for word in ("config", "cloud-info", "accounting", "imagelist", "status", "scheduler"):
        assert word in out


def _write(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "appliance.yaml"
    p.write_text(f"site:\n  name: TEST-SITE\npaths:\n  state_dir: {tmp_path / 'state'}\n{extra}")
    return p


def test_config_check_ok(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("socket.getfqdn", lambda *a: "appliance.example.org")
    assert cli.main(["config", "check", "--config", str(_write(tmp_path))]) == 0
    assert "OK (site TEST-SITE" in capsys.readouterr().out


def test_config_check_bad_exits_2_naming_key(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("site:\n  name: X\nbdii:\n  prot: 1\n")
    assert cli.main(["config", "check", "--config", str(p)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert f"{p}:4: bdii.prot: unknown key" in err


def test_config_sample_writes_file(tmp_path):
    out = tmp_path / "s.yaml"
    assert cli.main(["config", "sample", "-o", str(out)]) == 0
    assert out.read_text().startswith("# fedcloud-appliance configuration")


def _fake_job(monkeypatch, run):
    spec = JobSpec(name="accounting extract", help="x", run=run, interval=lambda c: 60)
    monkeypatch.setattr(catalog, "jobs", lambda: [spec])
    return spec


def test_job_once_prints_report_and_stores_it(tmp_path, monkeypatch, capsys):
    def run(ctx):
        r = RunReport(job="x")
        r.count("records", 7)
        return r

    _fake_job(monkeypatch, run)
    code = cli.main(
        [
            "accounting",
            "extract",
            "--once",
            "--config",
            str(_write(tmp_path)),
            "--report-format",
            "json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"records": 7}
    assert report["job"] == "accounting-extract"
    stored = json.loads((tmp_path / "state/status/accounting-extract.json").read_text())
    assert stored["status"] == "ok"
    assert (tmp_path / "state/status/accounting-extract.heartbeat").exists()


def test_job_partial_exits_3(tmp_path, monkeypatch):
    def run(ctx):
        r = RunReport(job="x")
        r.error("project p1: API error")
        return r

    _fake_job(monkeypatch, run)
    assert (
        cli.main(["accounting", "extract", "--once", "--config", str(_write(tmp_path))])
        == ExitCode.PARTIAL
    )


def test_job_permanent_error_exits_1_transient_75(tmp_path, monkeypatch):
    def permanent(ctx):
        raise PermanentError("bad credentials")

    def transient(ctx):
        raise TransientError("broker down")

    _fake_job(monkeypatch, permanent)
    assert cli.main(["accounting", "extract", "--once", "--config", str(_write(tmp_path))]) == 1
    _fake_job(monkeypatch, transient)
    assert cli.main(["accounting", "extract", "--once", "--config", str(_write(tmp_path))]) == 75
    # a failed run leaves no heartbeat
    assert not (tmp_path / "state/status/accounting-extract.heartbeat").exists()


def test_dry_run_stores_nothing(tmp_path, monkeypatch):
    seen = {}

    def run(ctx):
        seen["dry"] = ctx.dry_run
        return RunReport(job="x", dry_run=ctx.dry_run)

    _fake_job(monkeypatch, run)
    assert cli.main(["accounting", "extract", "--dry-run", "--config", str(_write(tmp_path))]) == 0
    assert seen["dry"] is True
    assert not (tmp_path / "state/status").exists()


def test_job_with_bad_config_exits_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("site: {}\n")
    assert cli.main(["accounting", "extract", "--once", "--config", str(p)]) == 2
    assert "site.name: required key is missing" in capsys.readouterr().err


def test_lock_held_exits_4(tmp_path, monkeypatch, capsys):
    from fedcloud_core.lock import RunLock

    _fake_job(monkeypatch, lambda ctx: RunReport(job="x"))
    with RunLock(tmp_path / "state/locks", "accounting-extract"):
        code = cli.main(["accounting", "extract", "--once", "--config", str(_write(tmp_path))])
    assert code == ExitCode.LOCKED
    assert "another 'accounting-extract' run is in progress" in capsys.readouterr().err


def test_unexpected_exception_is_a_failed_report_not_a_traceback(tmp_path, monkeypatch, capsys):
    def run(ctx):
        raise KeyError("boom")

    _fake_job(monkeypatch, run)
    assert cli.main(["accounting", "extract", "--once", "--config", str(_write(tmp_path))]) == 1
    assert "unexpected error" in capsys.readouterr().out


def test_status_reports_never_run_and_last_run(tmp_path, monkeypatch, capsys):
    _fake_job(monkeypatch, lambda ctx: RunReport(job="x", counts={"messages": 3}))
    cfg = str(_write(tmp_path))
    assert cli.main(["status", "--json", "--config", cfg]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs"][0]["last_run"] is None
    cli.main(["accounting", "extract", "--once", "--config", cfg])
    capsys.readouterr()
    assert cli.main(["status", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "accounting extract" in out
    assert "messages=3" in out


def test_import_legacy_openstack_rc_keeps_secret_out_of_config(tmp_path, capsys):
    rc = tmp_path / "openstack.rc"
    rc.write_text(
        "export OS_AUTH_URL=https://keystone.example.org:5000/v3\n"
        "export OS_USERNAME=accounting\nexport OS_PASSWORD='pa ss'\n"
        "export OS_PROJECT_NAME=admin\n"
    )
    assert cli.main(["config", "import-legacy", str(rc)]) == 0
    out = capsys.readouterr().out
    assert "openstack:\n  cloud: fedcloud\n" in out
    # the clouds.yaml entry is printed as a comment, for the operator to move into clouds.yaml
    assert "# x-clouds-yaml" in out
    assert "#       auth_url: https://keystone.example.org:5000/v3" in out


def test_import_legacy_unknown_format_exits_2(tmp_path, capsys):
    f = tmp_path / "mystery.txt"
    f.write_text("x")
    assert cli.main(["config", "import-legacy", str(f)]) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_cloud_info_publish_ams_without_gocdb_id_exits_2(tmp_path, capsys):
    """A ConfigError found inside the run (here from a command-line option) ends the
    command with exit 2, not 1 (issue 18); the stored report says failed, no heartbeat."""
    cfg = str(_write(tmp_path))
    code = cli.main(["cloud-info", "--once", "--publish", "ams", "--config", cfg])
    assert code == ExitCode.CONFIG
    captured = capsys.readouterr()
    assert "cloud_info.gocdb_id" in captured.out + captured.err
    stored = json.loads((tmp_path / "state/status/cloud-info.json").read_text())
    assert stored["status"] == "failed"
    assert "config error" in stored["fatal"]
    assert not (tmp_path / "state/status/cloud-info.heartbeat").exists()


def test_job_config_error_inside_the_run_exits_2(tmp_path, monkeypatch):
    def run(ctx):
        raise ConfigError("is required here", key="accounting.x")

    _fake_job(monkeypatch, run)
    assert (
        cli.main(["accounting", "extract", "--once", "--config", str(_write(tmp_path))])
        == ExitCode.CONFIG
    )


def test_scheduler_only_and_exclude_pick_the_scheduled_jobs(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        cli, "run_forever", lambda sched: seen.append(sorted(j.id for j in sched.get_jobs()))
    )
    cfg = str(_write(tmp_path))
    assert cli.main(["scheduler", "--config", cfg, "--only", "images-sync"]) == 0
    assert (
        cli.main(
            ["scheduler", "--config", cfg, "--exclude", "images-sync", "bdii-update", "site-bdii"]
        )
        == 0
    )
    assert seen[0] == ["images-sync"]
    assert "images-sync" not in seen[1]
    assert {"cloud-info", "accounting-extract", "ssm-send"} <= set(seen[1])
    assert (
        cli.main(["scheduler", "--config", cfg, "--only", "ssm-send", "--exclude", "ssm-send"]) == 2
    )


def test_a_stdout_data_option_makes_the_run_one_shot_with_the_report_on_stderr(
    tmp_path, monkeypatch, capsys
):
    """JobSpec.stdout_data_option (bdii-update --provider): no --once needed, stdout is data."""

    def run(ctx):
        print("dn: o=glue")
        return RunReport(job="x")

    def args(p):
        p.add_argument("--provider", action="store_true")

    spec = JobSpec(
        name="accounting extract",
        help="x",
        run=run,
        interval=lambda c: 60,
        add_arguments=args,
        stdout_data_option="provider",
    )
    monkeypatch.setattr(catalog, "jobs", lambda: [spec])
    cfg = str(_write(tmp_path))
    assert cli.main(["accounting", "extract", "--provider", "--config", cfg]) == 0
    out, err = capsys.readouterr()
    assert out == "dn: o=glue\n"
    assert "accounting-extract: ok" in err


def test_typed_deps_default_to_the_real_ones_and_refuse_another_services():
    from fedcloud_accounting.jobs import AccountingDeps
    from fedcloud_core.config import parse_config
    from fedcloud_core.jobs import JobContext
    from fedcloud_ssm.jobs import SsmDeps

    cfg = parse_config("site: {name: S}\n", source="t", environ={})
    assert JobContext(config=cfg).deps_as(AccountingDeps) == AccountingDeps()
    given = SsmDeps(transport=None)
    assert JobContext(config=cfg, deps=given).deps_as(SsmDeps) is given
    with pytest.raises(TypeError, match="takes AccountingDeps dependencies, not SsmDeps"):
        JobContext(config=cfg, deps=given).deps_as(AccountingDeps)
