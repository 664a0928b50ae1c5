"""The Nagios probes: threshold ranges, each probe's states and exit codes, the status line."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_appliance import cli, probes
from fedcloud_appliance.probes import BdiiContent, Range, State
from fedcloud_core.config import parse_config
from fedcloud_core.report import RunReport, store_report
from support.pki import issue, make_pki

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
LINE = re.compile(r"^([A-Z]+) (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+)(?: \| (.*))?$")


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    p = tmp_path / "appliance.yaml"
    p.write_text(
        "site: {name: DEMO-SITE}\n"
        f"paths: {{state_dir: {tmp_path}/state, spool_dir: {tmp_path}/spool, "
        f"image_dir: {tmp_path}}}\n"
        "scheduler: {cloud_info: 10, accounting: 60, ssm: 360, images: 240}\n"
    )
    return p


@pytest.fixture
def cfg(cfg_path: Path):
    return parse_config(cfg_path.read_text(), source=str(cfg_path), environ={})


def perf(result: probes.Result) -> dict[str, str]:
    out = {}
    for item in (LINE.match(result.line) or [None] * 5)[4].split(" "):  # type: ignore[index]
        label, _, rest = item.partition("=")
        out[label.strip("'")] = rest
    return out


# ------------------------------------------------------------------ ranges


@pytest.mark.parametrize(
    ("spec", "alert", "quiet"),
    [
        ("10", [-1, 11], [0, 10]),
        ("10:", [9.9], [10, 1e9]),
        ("~:10", [11], [-1e9, 10]),
        ("10:20", [9, 21], [10, 20]),
        ("@10:20", [10, 15, 20], [9, 21]),
    ],
)
def test_nagios_ranges(spec, alert, quiet):
    r = Range.parse(spec)
    assert all(r.alerts(v) for v in alert)
    assert not any(r.alerts(v) for v in quiet)
    assert str(r) == spec


@pytest.mark.parametrize("spec", ["abc", "20:10", "1:x"])
def test_bad_range_is_a_probe_error(spec):
    with pytest.raises(probes.ProbeError):
        Range.parse(spec)


def test_status_line_and_perfdata_format():
    r = probes.Result("bdii")
    r.add(State.OK, "fine")
    r.add(State.WARNING, "a bit old | stale")
    r.perf.append(probes.Perf("age", 12.5, "min", Range.parse("25"), Range.parse("65"), 0))
    r.perf.append(probes.Perf("time", None, "s"))
    assert r.state is State.WARNING
    assert r.line == "BDII WARNING - a bit old / stale; fine | 'age'=12.5min;25;65;0 'time'=U"


def test_status_line_is_one_line():
    r = probes.Result("images")
    r.add(State.CRITICAL, "last sync failed: Glance said\n  500 Internal\r\nServer Error")
    assert r.line == "IMAGES CRITICAL - last sync failed: Glance said 500 Internal Server Error"


def test_timeout_inside_a_network_call_is_unknown_not_critical(cfg_path, monkeypatch, capsys):
    def stuck(url, base, timeout):
        try:
            time.sleep(5)
        except Exception as exc:  # what a network library's broad handler would do
            raise ConnectionError(f"search failed: {exc}") from None

    real = probes.probe_bdii

    def probe_bdii(cfg, **kw):
        return real(cfg, **{**kw, "content": stuck})

    monkeypatch.setattr(probes, "probe_bdii", probe_bdii)
    assert cli.main(["probe", "bdii", "--config", str(cfg_path), "--timeout", "0.3"]) == 3
    assert capsys.readouterr().out.strip() == "BDII UNKNOWN - bdii probe timed out after 0.3s"


def test_worst_state_wins_critical_over_unknown_over_warning():
    r = probes.Result("x")
    r.add(State.WARNING, "w")
    r.add(State.UNKNOWN, "u")
    assert r.state is State.UNKNOWN
    r.add(State.CRITICAL, "c")
    r.add(State.OK, "o")
    assert r.state is State.CRITICAL


# ------------------------------------------------------------------ bdii


def _content(**kw):
    return lambda url, base, timeout: BdiiContent(**kw)


@pytest.mark.parametrize(
    ("minutes_old", "state"),
    [(5, State.OK), (30, State.WARNING), (70, State.CRITICAL)],
)
def test_bdii_age_thresholds(cfg, minutes_old, state):
    c = _content(entries=40, services=2, shares=3, newest=NOW - timedelta(minutes=minutes_old))
    res = probes.probe_bdii(cfg, warning="25", critical="65", now=NOW, content=c)
    assert res.state is state
    assert res.line.startswith(f"BDII {state.name} - resource BDII ldap://127.0.0.1:2170")
    p = perf(res)
    assert (p["entries"], p["services"], p["shares"]) == ("40;;;0", "2;;;0", "3;;;0")
    assert p["age"] == f"{minutes_old}min;25;65;0"


def test_bdii_defaults_follow_the_cloud_info_interval(cfg):
    c = _content(entries=4, services=1, shares=1, newest=NOW - timedelta(minutes=26))
    res = probes.probe_bdii(cfg, now=NOW, content=c)
    assert res.state is State.WARNING  # every 10 min: warning after 25, critical after 65
    assert perf(res)["age"] == "26min;25;65;0"


def test_bdii_without_service_or_share_is_critical(cfg):
    c = _content(entries=3, services=0, shares=0, newest=NOW)
    res = probes.probe_bdii(cfg, now=NOW, content=c)
    assert res.state is State.CRITICAL
    assert "no GLUE2 service under o=glue" in res.line
    assert "no GLUE2 share" in res.line


def test_bdii_services_of_another_site_are_critical(cfg):
    c = _content(entries=9, services=1, shares=1, newest=NOW, domains={"other-site": 1})
    res = probes.probe_bdii(cfg, now=NOW, content=c)
    assert res.state is State.CRITICAL
    assert "no GLUE2 service of site DEMO-SITE under o=glue (services of other-site)" in res.line
    c = _content(entries=9, services=1, shares=1, newest=NOW, domains={"demo-site": 1})
    assert probes.probe_bdii(cfg, now=NOW, content=c).state is State.OK


def test_bdii_empty_or_silent_is_critical(cfg):
    res = probes.probe_bdii(cfg, now=NOW, content=_content())
    assert res.state is State.CRITICAL
    assert "holds nothing under o=glue" in res.line

    def down(url, base, timeout):
        raise ConnectionError(f"no answer from {url}: refused")

    res = probes.probe_bdii(cfg, target="site", now=NOW, content=down)
    assert res.state is State.CRITICAL
    assert res.line.startswith("BDII CRITICAL - site BDII no answer from ldap://127.0.0.1:2171")


# ------------------------------------------------------------------ accounting


def _store(cfg, job: str, age_s: float, now: float, **kw) -> None:
    finished = datetime.fromtimestamp(now - age_s, UTC).replace(microsecond=0)
    r = RunReport(job=job, started=finished - timedelta(seconds=2), **kw)
    r.finished = finished
    store_report(cfg.paths.state_dir, r)
    for suffix in ("json", "heartbeat"):
        p = Path(cfg.paths.state_dir) / "status" / f"{job}.{suffix}"
        if p.exists():
            os.utime(p, (now - age_s, now - age_s))


def test_accounting_ok_then_old_send_then_failed(cfg):
    now = time.time()
    _store(cfg, "accounting-extract", 1800, now, counts={"records_cloud": 4})
    _store(cfg, "ssm-send", 3600, now, counts={"sent": 1})
    res = probes.probe_accounting(cfg, now=now)
    assert res.state is State.OK, res.line
    p = perf(res)
    assert p["extract_age"] == "0.5h;2.1;4.1;0"
    assert p["send_age"] == "1h;12.1;24.1;0"
    assert p["backlog"] == "0;;;0"

    _store(cfg, "ssm-send", 14 * 3600, now, counts={"sent": 1})
    assert probes.probe_accounting(cfg, now=now).state is State.WARNING
    res = probes.probe_accounting(cfg, warning="20", critical="30", now=now)
    assert res.state is State.OK

    _store(cfg, "accounting-extract", 60, now, fatal="Nova: 503")
    res = probes.probe_accounting(cfg, now=now)
    assert res.state is State.CRITICAL
    assert "last extract failed: Nova: 503" in res.line


def test_accounting_never_ran_is_critical(cfg):
    res = probes.probe_accounting(cfg, now=time.time())
    assert res.state is State.CRITICAL
    assert "last successful extract never" in res.line
    assert perf(res)["extract_age"] == "U;2.1;4.1;0"


def test_accounting_rejected_records_and_old_backlog(cfg, tmp_path):
    now = time.time()
    _store(cfg, "accounting-extract", 60, now, counts={"records_rejected": 2})
    _store(cfg, "ssm-send", 60, now, counts={"sent": 0, "set_aside": 1})
    q = QueueSimple(str(tmp_path / "spool" / "outgoing" / "cloud"))
    name = q.add(b"APEL-cloud-message: v0.4\n")
    old = now - 30 * 3600
    os.utime(Path(q.path) / name, (old, old))
    res = probes.probe_accounting(cfg, now=now)
    assert res.state is State.CRITICAL  # the oldest message is older than the send critical
    assert "2 record(s) rejected" in res.line
    assert "1 message(s) set aside" in res.line
    p = perf(res)
    assert p["backlog"] == "1;;;0"
    assert p["oldest_message_age"] == "30h;;;0"
    assert p["rejected_records"] == "2;;;0"


# ------------------------------------------------------------------ images


def test_images_states(cfg):
    now = time.time()
    _store(cfg, "images-sync", 3600, now, counts={"lists_fetched": 2, "images_failed": 0})
    res = probes.probe_images(cfg, now=now, free_warning=0, free_critical=0)
    assert res.state is State.OK, res.line
    p = perf(res)
    assert p["sync_age"] == "1h;8.1;16.1;0"
    assert p["cache_free"].endswith("%;0:;0:;0;100")

    _store(
        cfg,
        "images-sync",
        60,
        now,
        counts={"lists_fetched": 1, "lists_rejected": 1, "images_failed": 2},
        details={"rejected": {"appdb-vo.example.org": "signature"}},
    )
    res = probes.probe_images(cfg, now=now, free_warning=0, free_critical=0)
    assert res.state is State.WARNING
    assert "1 image list(s) rejected (appdb-vo.example.org)" in res.line
    assert "2 image(s) failed" in res.line

    res = probes.probe_images(cfg, now=now, free_warning=100.1, free_critical=0)
    assert res.state is State.WARNING
    res = probes.probe_images(cfg, now=now, free_warning=100.1, free_critical=100.1)
    assert res.state is State.CRITICAL
    assert "cache disk" in res.line

    _store(cfg, "images-sync", 60, now, nothing_accepted="no image list accepted (1 source(s))")
    res = probes.probe_images(cfg, now=now, free_warning=0, free_critical=0)
    assert res.state is State.CRITICAL
    assert "last sync accepted nothing" in res.line


# ------------------------------------------------------------------ certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize(
    ("days", "state"),
    [(60, State.OK), (20, State.WARNING), (3, State.CRITICAL), (-0.02, State.CRITICAL)],
)
def test_certificate_days_left(cfg, pki, tmp_path, days, state):
    cred = issue(tmp_path / "c", pki.ca, "host", "host.example.org", valid_for=timedelta(days=days))
    res = probes.probe_certificate(cfg, cert=cred.cert, key=cred.key, capath=pki.capath)
    assert res.state is state, res.line
    assert ("expired" in res.line) == (days < 0)
    left = float(perf(res)["days_left"].split("d")[0])
    assert left == pytest.approx(days, abs=0.1)
    assert perf(res)["days_left"].endswith("d;30:;7:")


def test_certificate_wrong_key_and_untrusted_chain(cfg, pki):
    res = probes.probe_certificate(
        cfg, cert=pki.sender.cert, key=pki.receiver.key, capath=pki.capath
    )
    assert res.state is State.CRITICAL
    assert "does not match the certificate" in res.line
    res = probes.probe_certificate(
        cfg, cert=pki.selfsigned.cert, key=pki.selfsigned.key, capath=pki.capath
    )
    assert res.state is State.CRITICAL
    assert "chain does not verify" in res.line


def test_certificate_missing_file_is_unknown_through_the_cli(cfg_path, tmp_path, capsys):
    code = cli.main(["probe", "certificate", "--config", str(cfg_path), "--cert", "/nonexistent"])
    out = capsys.readouterr().out.strip()
    assert code == 3
    assert out.startswith("CERTIFICATE UNKNOWN - certificate /nonexistent:")


# ------------------------------------------------------------------ openstack


class FakeSession:
    def __init__(self, *, token_fails: bool = False, status: int = 200, slow: float = 0.0):
        self.token_fails, self.status, self.slow = token_fails, status, slow

    def get_token(self):
        from keystoneauth1 import exceptions

        if self.token_fails:
            raise exceptions.Unauthorized("The request you have made requires authentication.")
        return "tok"

    def get_endpoint(self, service_type, **kw):
        return f"http://127.0.0.1:1/{service_type}"

    def get(self, url, **kw):
        time.sleep(self.slow)
        return SimpleNamespace(status_code=self.status)


def test_openstack_states(monkeypatch, cfg):
    monkeypatch.setattr(
        "fedcloud_core.openstack.resolve_cloud",
        lambda c: SimpleNamespace(interface="public", region_name=None),
    )
    res = probes.probe_openstack(cfg, session=FakeSession())
    assert res.state is State.OK, res.line
    assert set(perf(res)) == {"token_time", "keystone_time", "nova_time", "glance_time"}
    res = probes.probe_openstack(cfg, session=FakeSession(slow=0.02), warning="0.01")
    assert res.state is State.WARNING
    res = probes.probe_openstack(cfg, session=FakeSession(status=503))
    assert res.state is State.CRITICAL
    assert "nova answers HTTP 503" in res.line
    res = probes.probe_openstack(cfg, session=FakeSession(token_fails=True))
    assert res.state is State.CRITICAL
    assert res.line.startswith("OPENSTACK CRITICAL - no token")


# ------------------------------------------------------------------ CLI


def test_cli_exit_codes_follow_the_state(cfg_path, cfg, capsys):
    now = time.time()
    _store(cfg, "images-sync", 60, now, counts={"lists_fetched": 1})
    argv = ["probe", "images", "--config", str(cfg_path), "--free-warning", "0"]
    assert cli.main([*argv, "--free-critical", "0"]) == 0
    assert LINE.match(capsys.readouterr().out.strip()).group(2) == "OK"  # type: ignore[union-attr]
    assert cli.main([*argv, "--free-critical", "0", "-w", "0.001", "-c", "1"]) == 1
    assert cli.main([*argv, "--free-critical", "0", "-w", "0.001", "-c", "0.002"]) == 2
    assert cli.main([*argv, "-w", "bogus"]) == 3
    assert (
        capsys.readouterr()
        .out.strip()
        .splitlines()[-1]
        .startswith("IMAGES UNKNOWN - not a threshold range: 'bogus'")
    )


def test_cli_bad_config_is_unknown_not_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: S}\nnonsense: 1\n")
    assert cli.main(["probe", "accounting", "--config", str(bad)]) == 3
    out = capsys.readouterr().out
    assert out.startswith("ACCOUNTING UNKNOWN - ")
    assert "nonsense" in out
    assert len(out.strip().splitlines()) == 1


def test_timeout_is_unknown(cfg_path, monkeypatch, capsys):
    def slow(check, cfg, args):
        time.sleep(5)

    monkeypatch.setattr(probes, "run_probe", slow)
    t0 = time.monotonic()
    assert cli.main(["probe", "bdii", "--config", str(cfg_path), "--timeout", "0.3"]) == 3
    assert time.monotonic() - t0 < 3
    assert capsys.readouterr().out.strip() == "BDII UNKNOWN - bdii probe timed out after 0.3s"


@pytest.mark.parametrize("argv", [["probe", "nonsense"], ["probe", "bdii", "--bogus"], ["probe"]])
def test_usage_errors_are_unknown(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 3
    out = capsys.readouterr().out.strip()
    assert out.startswith("PROBE UNKNOWN - ")
    assert len(out.splitlines()) == 1
