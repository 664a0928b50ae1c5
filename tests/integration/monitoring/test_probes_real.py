"""The probes and ``/metrics`` against real parts, through the installed command.

One site for the module: a real slapd as the resource BDII, the site BDII slapd started
by the real site-bdii job, real job runs through the core's ``execute()`` (cloud-info
from the fake cloud, bdii-update and site-bdii into the slapds, accounting extract from
the fake usage source into a real dirq spool, ssm send signing with a real test
certificate; its broker is a fake that accepts), a test PKI. Then each probe runs as
``fedcloud-appliance probe ...`` (a subprocess, as Nagios runs it) against that state,
against a stopped BDII, an expired certificate and failed jobs; the status server runs
as a subprocess and its ``/metrics`` is parsed by ``prometheus_client.parser``.

Order matters (one site for the module): the failed send comes before ``/metrics``, the
stopped BDII last.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fedcloud_accounting import jobs as acct_jobs
from fedcloud_appliance import metrics
from fedcloud_cloudinfo import bdii_update
from fedcloud_cloudinfo.jobs import CLOUD_INFO_JOB, CloudInfoDeps
from fedcloud_core.bdii.ldap import Ldap3Tree, connect
from fedcloud_core.bdii.service import stop_supervised
from fedcloud_core.bdii.slapd import Slapd
from fedcloud_core.config import AppConfig, parse_config
from fedcloud_core.jobs import JobContext, JobSpec, execute
from fedcloud_core.report import RunStatus
from fedcloud_images import jobs as images_jobs
from fedcloud_sitebdii import jobs as site_jobs
from fedcloud_ssm import jobs as ssm_jobs
from integration.bdii.bdii_testlib import free_port, new_slapd
from support.pki import Pki, issue, make_pki
from unit.accounting.accounting_fakes import END, P1, P2, standard_source
from unit.cloudinfo.cloudinfo_fakes import NOW as CLOUD_NOW
from unit.cloudinfo.cloudinfo_fakes import FakeSource as FakeCloud

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[3]
CLI = str(REPO / ".venv" / "bin" / "fedcloud-appliance")
LINE = re.compile(
    r"^(BDII|ACCOUNTING|IMAGES|CERTIFICATE|OPENSTACK) (OK|WARNING|CRITICAL|UNKNOWN) - "
)
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
SITE = "TEST-SITE"


class AcceptingBroker:
    """The ssm transport's far end: takes every message (the signing before it is real)."""

    kind = "STOMP"

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def describe(self, queue: str) -> str:
        return f"test broker ({queue})"

    def open(self) -> None:
        pass

    def send(self, queue: str, msgid: str, text: str) -> None:
        self.got.append((queue, text))

    def close(self) -> None:
        pass


@dataclass
class Site:
    root: Path
    config_file: Path
    cfg: AppConfig
    pki: Pki
    resource: Slapd
    site_port: int
    expired: Any
    long_lived: Any

    def probe(
        self, *args: str, config: Path | None = None, env: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        proc = subprocess.run(
            [CLI, "probe", *args, "--config", str(config or self.config_file)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
        )
        out = proc.stdout.strip()
        assert len(out.splitlines()) == 1, (out, proc.stderr[-2000:])
        m = LINE.match(out)
        assert m, out
        assert proc.returncode == EXIT[m.group(2)], (proc.returncode, out)
        perf: dict[str, str] = {}
        if " | " in out:
            for item in out.split(" | ", 1)[1].split(" "):
                label, _, value = item.partition("=")
                perf[label.strip("'")] = value
        return proc.returncode, out, perf


def _config(root: Path, pki: Pki, cert: Any, resource_port: int, site_port: int) -> dict:
    return {
        "site": {
            "name": SITE,
            "description": "A test cloud site",
            "url": "https://cloud.example.org",
            "country": "NL",
            "city": "Amsterdam",
            "latitude": 52.37,
            "longitude": 4.9,
            "contacts": {
                "general": "grid-admin@example.org",
                "security": "security@example.org",
                "sysadmin": "sysadmin@example.org",
                "usersupport": "support@example.org",
            },
        },
        "vos": {"ops": {"projects": ["ops-project"]}, "fedcloud.egi.eu": {"projects": ["p-fc"]}},
        "paths": {
            "state_dir": str(root / "state"),
            "spool_dir": str(root / "spool"),
            "image_dir": str(root / "images"),
        },
        "bdii": {"host": "127.0.0.1", "port": resource_port},
        "site_bdii": {
            "resource_bdiis": [f"ldap://127.0.0.1:{resource_port}"],
            "port": site_port,
            "public_hostname": "bdii.example.org",
            "maxsize_mb": 64,
        },
        "ssm": {
            "protocol": "STOMP",
            "host": "127.0.0.1",
            "port": free_port(),  # nothing listens: a send that has to connect fails
            "use_ssl": False,
            "certificate": str(cert.cert),
            "key": str(cert.key),
            "capath": str(pki.capath),
        },
        "images": {
            "subscriptions": [
                {
                    "name": "appdb-vo.example.org",
                    "url": f"http://127.0.0.1:{free_port()}/image.list",  # nothing listens
                    "vo": "ops",
                    "endorser_dn": "/C=EU/O=Fedcloud Test/CN=endorser",
                    "endorser_ca": "/C=EU/O=Fedcloud Test/CN=Fedcloud Test CA",
                }
            ],
            "capath": str(pki.capath),
            "retries": 0,
        },
    }


def _run(spec: JobSpec, cfg: AppConfig, deps: object | None = None) -> Any:
    opts = argparse.Namespace(once=True, dry_run=False, with_slapd=False)
    return execute(spec, JobContext(config=cfg, options=opts, deps=deps))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("monitoring")
    pki = make_pki(root / "pki")
    long_lived = issue(
        root / "pki", pki.ca, "host", "host.example.org", valid_for=timedelta(days=400)
    )
    expired = issue(
        root / "pki", pki.ca, "old-host", "host.example.org", valid_for=timedelta(minutes=-30)
    )
    resource = new_slapd(root / "resource-bdii", role="resource BDII (monitoring tests)")
    resource.start()
    site_port = free_port()
    data = _config(root, pki, long_lived, resource.settings.port, site_port)
    config_file = root / "appliance.yaml"
    config_file.write_text(yaml.safe_dump(data))
    cfg = parse_config(config_file.read_text(), source=str(config_file), environ={})
    try:
        yield Site(root, config_file, cfg, pki, resource, site_port, expired, long_lived)
    finally:
        stop_supervised()
        resource.stop()


@pytest.fixture(scope="module")
def one_cycle(site: Site) -> dict[str, Any]:
    """One real run of every job (the image sync fails: its list server does not answer)."""
    cfg = site.cfg
    reports: dict[str, Any] = {}
    reports["cloud-info"] = _run(
        CLOUD_INFO_JOB, cfg, CloudInfoDeps(cloud_source=FakeCloud(), now=CLOUD_NOW)
    )
    tree = Ldap3Tree(
        connect(site.resource.url, bind_dn=site.resource.rootdn(), password=site.resource.password)
    )
    try:
        reports["bdii-update"] = _run(
            bdii_update.JOB, cfg, bdii_update.BdiiUpdateDeps(trees={"o=glue": tree})
        )
    finally:
        tree.close()
    site_spec = site_jobs.JOBS[0]
    reports["site-bdii"] = execute(
        site_spec,
        JobContext(config=cfg, options=argparse.Namespace(with_slapd=True, once=True)),
    )
    acct_cfg = cfg.model_copy(
        update={
            "vos": parse_config(
                f"site: {{name: {SITE}}}\nvos: {{ops: {{projects: ['{P1}']}}, "
                f"fedcloud.egi.eu: {{projects: ['{P2}']}}}}\n",
                source="t",
                environ={},
            ).vos
        }
    )
    reports["accounting-extract"] = _run(
        acct_jobs.JOBS[0],
        acct_cfg,
        acct_jobs.AccountingDeps(source=standard_source(), now=lambda: END),
    )
    broker = AcceptingBroker()
    reports["ssm-send"] = _run(ssm_jobs.JOBS[0], cfg, ssm_jobs.SsmDeps(transport=broker))
    # OpenStack credentials for a Keystone nobody runs: the list server is asked first
    os_env = {
        "OS_AUTH_URL": f"http://127.0.0.1:{free_port()}/v3",
        "OS_USERNAME": "fedcloud-reader",
        "OS_PASSWORD": "x",
        "OS_PROJECT_NAME": "ops",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }
    saved = {k: os.environ.get(k) for k in os_env}
    os.environ.update(os_env)
    try:
        reports["images-sync"] = _run(images_jobs.JOBS[0], cfg)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for key in ("cloud-info", "bdii-update", "site-bdii", "accounting-extract", "ssm-send"):
        assert reports[key].status in (RunStatus.OK, RunStatus.PARTIAL), reports[key].render_text()
    assert broker.got, "the extract queued messages and the send delivered them"
    # the send counted, per VO, the records of the messages it delivered: all the extract queued
    by_vo = reports["ssm-send"].details["records_by_vo"]
    queued = reports["accounting-extract"].counts
    assert set(by_vo) == {"ops", "fedcloud.egi.eu"}
    assert sum(by_vo.values()) == sum(
        v for k, v in queued.items() if k.startswith("records_") and k != "records_rejected"
    )
    img = reports["images-sync"]
    assert img.status in (RunStatus.OK, RunStatus.PARTIAL), img.render_text()
    assert img.nothing_accepted
    return reports


# ------------------------------------------------------------------ probes


def test_bdii_probe_against_the_real_resource_and_site_bdii(site: Site, one_cycle) -> None:
    code, line, perf = site.probe("bdii")
    assert code == 0, line
    assert line.startswith(
        f"BDII OK - resource BDII ldap://127.0.0.1:{site.resource.settings.port}: "
    )
    entries = int(perf["entries"].split(";")[0])
    assert entries == one_cycle["bdii-update"].counts["entries"]
    assert int(perf["services"].split(";")[0]) >= 1
    assert int(perf["shares"].split(";")[0]) == 2  # ops and fedcloud.egi.eu
    assert re.fullmatch(r"\d+(\.\d)?min;25;65;0", perf["age"]), perf["age"]

    code, line, perf = site.probe("bdii", "--bdii", "site")
    assert code == 0, line
    assert f"site BDII ldap://127.0.0.1:{site.site_port}" in line
    assert int(perf["shares"].split(";")[0]) == 2

    # an age threshold the fresh BDII already passes: WARNING, then CRITICAL
    code, line, _ = site.probe("bdii", "-w", "0", "-c", "60")
    assert code in (0, 1)  # newest change may be in the same second
    code, line, _ = site.probe("bdii", "--base", "GLUE2GroupID=nothing,o=glue")
    assert code == 2
    assert "holds nothing under GLUE2GroupID=nothing,o=glue" in line
    # the BDII publishes another site's service: not this site's
    other = yaml.safe_load(site.config_file.read_text())
    other["site"]["name"] = "OTHER-SITE"
    (site.root / "other-site.yaml").write_text(yaml.safe_dump(other))
    code, line, _ = site.probe("bdii", config=site.root / "other-site.yaml")
    assert code == 2
    assert "no GLUE2 service of site OTHER-SITE under o=glue (services of test-site)" in line


def test_accounting_probe_after_real_runs(site: Site, one_cycle) -> None:
    code, line, perf = site.probe("accounting")
    assert code == 0, line
    assert "last successful extract 0.0 h ago" in line
    assert "last successful send 0.0 h ago" in line
    assert perf["backlog"] == "0;;;0"
    assert re.fullmatch(r"0(\.0\d)?h;2\.1;4\.1;0", perf["extract_age"]), perf
    assert re.fullmatch(r"0(\.0\d)?h;12\.1;24\.1;0", perf["send_age"]), perf


def test_images_probe_after_a_failed_sync(site: Site, one_cycle) -> None:
    code, line, perf = site.probe("images", "--free-warning", "0", "--free-critical", "0")
    assert code == 2, line
    assert line.startswith("IMAGES CRITICAL - ")
    assert "last successful sync never" in line
    assert "last sync accepted nothing: no image list accepted (1 source(s))" in line
    assert perf["sync_age"] == "U;8.1;16.1;0"
    assert perf["lists_fetched"] == "0;;;0"


def test_certificate_probe_valid_expired_and_wrong_key(site: Site) -> None:
    code, line, perf = site.probe("certificate")
    assert code == 0, line
    assert "CN=host.example.org" in line
    assert re.fullmatch(r"399\.\d\dd;30:;7:|400d;30:;7:", perf["days_left"]), perf
    code, line, perf = site.probe(
        "certificate", "--cert", str(site.expired.cert), "--key", str(site.expired.key)
    )
    assert code == 2, line
    assert re.search(r"CERTIFICATE CRITICAL - CN=host\.example\.org.* expired 0\.0 days ago", line)
    assert perf["days_left"].startswith("-0.02d;")
    code, line, _ = site.probe("certificate", "--key", str(site.expired.key))
    assert code == 2
    assert "does not match the certificate" in line
    code, line, _ = site.probe(
        "certificate",
        "--cert",
        str(site.pki.selfsigned.cert),
        "--key",
        str(site.pki.selfsigned.key),
    )
    assert code == 2
    assert "chain does not verify" in line


def test_failed_send_makes_the_accounting_probe_critical(site: Site, one_cycle) -> None:
    # a message waits and the broker (nothing on the port) does not answer: the real send fails
    from dirq.QueueSimple import QueueSimple

    QueueSimple(str(site.root / "spool" / "outgoing" / "cloud")).add(
        b"APEL-cloud-message: v0.4\nVMUUID: x\nFQAN: ops\n"
    )
    report = _run(ssm_jobs.JOBS[0], site.cfg)
    assert report.status is RunStatus.FAILED, report.render_text()
    code, line, perf = site.probe("accounting")
    assert code == 2, line
    assert "last send failed: " in line
    assert perf["backlog"] == "1;;;0"


def test_openstack_probe_without_keystone_is_critical(site: Site) -> None:
    env = {
        "OS_AUTH_URL": f"http://127.0.0.1:{free_port()}/v3",  # nothing listens
        "OS_USERNAME": "fedcloud-reader",
        "OS_PASSWORD": "x",
        "OS_PROJECT_NAME": "ops",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_CLIENT_CONFIG_FILE": "/nonexistent",
    }
    code, line, _ = site.probe("openstack", "--timeout", "20", env=env)
    assert code == 2, line
    assert line.startswith("OPENSTACK CRITICAL - no token: ConnectFailure: ")


def test_openstack_probe_against_the_testbed(site: Site) -> None:
    clouds = Path(os.environ.get("FEDCLOUD_TESTBED_DIR", "/var/tmp/fedcloud-testbed")) / (
        "clouds.yaml"
    )
    if not clouds.exists():
        pytest.skip("no local OpenStack testbed (scripts/dev/testbed)")
    cfg = yaml.safe_load(site.config_file.read_text())
    cfg["openstack"] = {"cloud": "testbed-reader", "clouds_yaml": str(clouds)}
    path = site.root / "testbed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, line, perf = site.probe("openstack", "-w", "30", "-c", "60", config=path)
    assert code == 0, line
    assert set(perf) == {"token_time", "keystone_time", "nova_time", "glance_time"}
    assert all(v.endswith("s;30;60;0") for v in perf.values()), perf


# ------------------------------------------------------------------ /metrics


def _serve(site: Site) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            CLI,
            "status",
            "--config",
            str(site.config_file),
            "--serve",
            f"127.0.0.1:{port}",
            "--bdii",
            f"resource=ldap://127.0.0.1:{site.resource.settings.port}",
            "--bdii",
            f"site=ldap://127.0.0.1:{site.site_port}",
        ],
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                r.read()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError("the status server did not start")


def test_metrics_after_one_cycle_of_every_job(site: Site, one_cycle) -> None:
    proc, port = _serve(site)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
            ctype = resp.headers["Content-Type"]
            text = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert ctype.startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(fams) == set(metrics.METRICS)
    for name, fam in fams.items():
        labels, _ = metrics.METRICS[name]
        assert fam.samples, f"{name}: no sample after one cycle of every job"
        for s in fam.samples:
            assert set(s.labels) == set(labels), (name, s.labels)

    def values(name: str) -> dict[tuple[str, ...], float]:
        order = metrics.METRICS[name][0]
        return {tuple(s.labels[k] for k in order): s.value for s in fams[name].samples}

    jobs = ("cloud-info", "bdii-update", "site-bdii", "accounting-extract", "ssm-send")
    for job in (*jobs, "images-sync"):
        assert (job,) in values("fedcloud_job_last_run_timestamp_seconds")
    for job in jobs[:4]:
        assert (job,) in values("fedcloud_job_last_success_timestamp_seconds")
    result = values("fedcloud_job_last_result")
    assert result[("ssm-send", "failed")] == 1.0  # the last send is the failed one above
    assert result[("accounting-extract", "ok")] == 1.0
    assert values("fedcloud_bdii_up") == {("resource",): 1.0, ("site",): 1.0}
    assert (
        values("fedcloud_bdii_entries")[("resource",)] == one_cycle["bdii-update"].counts["entries"]
    )
    assert values("fedcloud_bdii_entries_published_last_run")[("cloud-info",)] > 0
    recs = values("fedcloud_accounting_records_last_run")
    assert recs[("cloud",)] == one_cycle["accounting-extract"].counts["records_cloud"]
    assert values("fedcloud_queue_messages") == {("cloud",): 1.0, ("storage",): 0.0}
    cert = values("fedcloud_certificate_expiry_timestamp_seconds")
    assert list(cert) == [("ssm", str(site.long_lived.cert))]
    assert cert[("ssm", str(site.long_lived.cert))] == pytest.approx(
        site.long_lived.certificate.not_valid_after_utc.timestamp()
    )
    assert values("fedcloud_images_last_run")[("failed",)] == 0.0


# ------------------------------------------------------------------ last: the BDII stops


def test_stopped_bdii_is_critical(site: Site, one_cycle) -> None:
    site.resource.stop()
    code, line, perf = site.probe("bdii")
    assert code == 2
    assert line.startswith(
        f"BDII CRITICAL - resource BDII no answer from ldap://127.0.0.1:{site.resource.settings.port}"
    )
    assert set(perf) == {"time"}
