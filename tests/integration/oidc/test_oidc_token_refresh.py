"""EGI Check-in style token refresh against a local OIDC + Keystone federation double.

Access tokens live 2 s and Keystone tokens die after 1.5 s, so a job that works only
with the token it started with fails on its second run; with a refresh token (or an
oidc-agent-like token command) every run and every re-login after a 401 gets a fresh
access token. The testbed's Keystone has no OIDC federation, hence the double
(tests/support/oidc_cloud.py); the keystoneauth session, plugin and the CLI are real.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedcloud_appliance.cli import main
from fedcloud_core.config import AppConfig, parse_config
from fedcloud_core.jobs import JobContext, JobSpec, execute
from fedcloud_core.openstack import OpenStackClients
from fedcloud_core.report import RunReport, RunStatus
from support.oidc_cloud import (
    CLIENT_ID,
    CLIENT_SECRET,
    IDP,
    PROJECT_ID,
    REFRESH_TOKEN,
    REVOKED_TOKEN,
    OidcCloud,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def cloud() -> Iterator[OidcCloud]:
    double = OidcCloud().start()
    yield double
    double.stop()


def write_config(
    tmp: Path,
    cloud: OidcCloud,
    *,
    refresh_token: str | None = REFRESH_TOKEN,
    command: list[str] | None = None,
    static_token: str | None = None,
) -> Path:
    auth: dict[str, Any] = {
        "auth_url": cloud.auth_url,
        "identity_provider": IDP,
        "protocol": "openid",
        "project_id": PROJECT_ID,
    }
    if static_token:
        auth["access_token"] = static_token
    clouds = tmp / "clouds.yaml"
    clouds.write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    "egi": {
                        "auth_type": "v3oidcaccesstoken",
                        "auth": auth,
                        "region_name": "RegionOne",
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    oidc: dict[str, Any] = {}
    if command:
        oidc = {"token_command": command, "token_command_timeout": 10}
    elif refresh_token:
        (tmp / "refresh_token").write_text(refresh_token + "\n", encoding="utf-8")
        (tmp / "client_secret").write_text(CLIENT_SECRET + "\n", encoding="utf-8")
        oidc = {
            "token_endpoint": cloud.token_endpoint,
            "client_id": CLIENT_ID,
            "client_secret_file": str(tmp / "client_secret"),
            "refresh_token_file": str(tmp / "refresh_token"),
            "min_validity": 0.5,
        }
    doc = {
        "site": {"name": "TEST-SITE"},
        "openstack": {"cloud": "egi", "clouds_yaml": str(clouds), "timeout": 10, "oidc": oidc},
        "vos": {"ops": {"projects": [PROJECT_ID]}},
        "paths": {"state_dir": str(tmp / "state")},
    }
    path = tmp / "appliance.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def load(path: Path) -> AppConfig:
    return parse_config(path.read_text(encoding="utf-8"), source=str(path), environ={})


def probe_run(ctx: JobContext) -> RunReport:
    """A job that calls the compute API a few times across the Keystone token's death."""
    report = RunReport(job="oidc-probe")
    clients = OpenStackClients.from_config(ctx.config.openstack)
    for i in range(3):
        if i:
            time.sleep(0.8)
        resp = clients.session.get(
            "/ping", endpoint_filter={"service_type": "compute", "interface": "public"}
        )
        assert resp.json() == {"pong": True}
        report.count("calls")
    return report


PROBE = JobSpec(name="oidc-probe", help="test job", run=probe_run)


def run_job_three_times(cfg: AppConfig) -> list[RunReport]:
    reports = []
    for i in range(3):
        if i:
            time.sleep(2.2)  # the previous access token has expired by now
        ctx = JobContext(config=cfg, options=argparse.Namespace(once=True, dry_run=False))
        reports.append(execute(PROBE, ctx, store=False))
    return reports


def test_refresh_token_keeps_a_job_working_across_token_expiry(tmp_path, cloud, caplog):
    cfg = load(write_config(tmp_path, cloud))
    reports = run_job_three_times(cfg)
    assert [r.status for r in reports] == [RunStatus.OK] * 3, [r.fatal for r in reports]
    assert all(r.counts["calls"] == 3 for r in reports)
    s = cloud.state
    assert s.api_refused >= 3  # Keystone tokens died mid-run: 401, re-login, retry
    assert s.grants >= 3 + s.api_refused  # a fresh access token per run and per 401
    assert s.federation_refused == 0  # never an expired access token sent to Keystone
    for secret in (REFRESH_TOKEN, CLIENT_SECRET, *s.access_tokens):
        assert secret not in caplog.text


def test_a_static_access_token_fails_once_it_expired(tmp_path, cloud):
    """The control: without a refresh the same job breaks on its second run."""
    cfg = load(
        write_config(tmp_path, cloud, refresh_token=None, static_token=cloud.state.mint_access())
    )
    reports = run_job_three_times(cfg)
    assert reports[0].status is RunStatus.OK
    assert reports[1].status is RunStatus.FAILED
    assert cloud.state.federation_refused >= 1


def test_token_command_gives_each_run_a_fresh_token(tmp_path, cloud):
    script = tmp_path / "oidc-token"
    script.write_text(
        "import sys, urllib.request\n"
        "with urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'', method='POST'),"
        " timeout=5) as r:\n"
        "    print(r.read().decode())\n",
        encoding="utf-8",
    )
    command = [sys.executable, str(script), f"{cloud.base}/oidc/issue"]
    cfg = load(write_config(tmp_path, cloud, command=command))
    reports = run_job_three_times(cfg)
    assert [r.status for r in reports] == [RunStatus.OK] * 3, [r.fatal for r in reports]
    assert len(cloud.state.access_tokens) >= 3 + cloud.state.api_refused
    assert cloud.state.federation_refused == 0


def test_failing_token_command_names_the_key(tmp_path, cloud):
    command = [sys.executable, "-c", "import sys; sys.exit('oidc-agent: account egi not loaded')"]
    cfg = load(write_config(tmp_path, cloud, command=command))
    (report,) = [execute(PROBE, JobContext(config=cfg), store=False)]
    assert report.status is RunStatus.FAILED
    assert "openstack.oidc.token_command" in (report.fatal or "")
    assert "account egi not loaded" in (report.fatal or "")


def test_revoked_refresh_token_is_exit_1_naming_the_endpoint(tmp_path, cloud, capsys, caplog):
    cfg = write_config(tmp_path, cloud, refresh_token=REVOKED_TOKEN)
    rc = main(["cloud-info", "--once", "--config", str(cfg)])
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    assert rc == 1, text
    assert f"the OIDC token endpoint {cloud.token_endpoint} refused the refresh token" in text
    assert "invalid_grant" in text
    assert "openstack.oidc.refresh_token" in text
    assert REVOKED_TOKEN not in text
    assert CLIENT_SECRET not in text
    assert cloud.state.refused_grants == 1
