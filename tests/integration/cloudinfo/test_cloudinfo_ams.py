"""``cloud-info --publish ams`` against the local HTTPS AMS double of the SSM tests.

The collection runs against the local OpenStack testbed when its Keystone answers
(never started from here), else against the fake cloud of the unit tests (the test's
own config); either way the CLI, the config, the renderer and the AMS client are real.
"""

from __future__ import annotations

import argparse
import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedcloud_appliance.cli import main
from fedcloud_cloudinfo import jobs as cloudinfo_jobs
from fedcloud_core.config import parse_config
from fedcloud_core.jobs import JobContext, execute
from fedcloud_core.report import RunStatus
from support.ams import TOKEN, AmsDouble, AmsState
from support.pki import Pki, make_pki
from unit.cloudinfo.cloudinfo_fakes import FakeSource

pytestmark = pytest.mark.integration

TESTBED = Path("/var/tmp/fedcloud-testbed")
PROJECT = "egi_cloud_info"
TOPIC = "SITE_TEST-SITE_ENDPOINT_12345G0"


def _testbed_sections() -> dict[str, Any] | None:
    """openstack + vos of the running testbed, or None when it is not healthy."""
    seed_file, clouds = TESTBED / "seed.json", TESTBED / "clouds.yaml"
    if not (seed_file.is_file() and clouds.is_file()):
        return None
    try:
        with urllib.request.urlopen("http://127.0.0.1:5000/v3", timeout=3) as resp:
            if resp.status != 200:
                return None
    except OSError:
        return None
    seed = json.loads(seed_file.read_text(encoding="utf-8"))
    vos: dict[str, dict[str, list[str]]] = {}
    for pid, vo in sorted(seed["vo_map"].items()):
        vos.setdefault(vo, {"projects": []})["projects"].append(pid)
    return {
        "openstack": {
            "cloud": "testbed-admin",
            "clouds_yaml": seed.get("clouds_yaml", str(clouds)),
        },
        "vos": vos,
    }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ci-ams-pki"))


@pytest.fixture(scope="module")
def ams(pki: Pki) -> Iterator[AmsDouble]:
    double = AmsDouble(pki, projects={PROJECT}).start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def testbed() -> dict[str, Any] | None:
    return _testbed_sections()


@pytest.fixture
def state(ams: AmsDouble, testbed: dict[str, Any] | None, monkeypatch) -> AmsState:
    ams.state.reset()
    ams.state.topics = {TOPIC}
    if testbed is None:
        monkeypatch.setattr(cloudinfo_jobs, "_source", lambda ctx: FakeSource())
    return ams.state


def write_config(
    tmp: Path, pki: Pki, port: int, testbed: dict[str, Any] | None, **ams_extra: Any
) -> Path:
    doc: dict[str, Any] = {
        "site": {"name": "TEST-SITE"},
        "paths": {"state_dir": str(tmp / "state")},
        "cloud_info": {
            "gocdb_id": "12345G0",
            "timeout": 120,
            "ams": {
                "host": "127.0.0.1",
                "port": port,
                "auth_port": port,
                "certificate": str(pki.sender.cert),
                "key": str(pki.sender.key),
                "capath": str(pki.capath),
                "timeout": 10,
                "connect_timeout": 5,
                "retries": 2,
                "backoff": 0.05,
                **ams_extra,
            },
        },
    }
    if testbed is not None:
        doc.update(testbed)
    else:
        doc["vos"] = {
            "ops": {"projects": ["ops-project"]},
            "fedcloud.egi.eu": {"projects": ["p-fc"]},
        }
    path = tmp / "appliance.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_publish_ams_sends_the_glue21_json_in_one_message(
    tmp_path, pki, ams, state, testbed, capsys, caplog
):
    cfg = write_config(tmp_path, pki, ams.port, testbed)
    out = tmp_path / "cloud-info.json"
    argv = ["cloud-info", "--once", "--config", str(cfg), "--format", "glue21-json"]
    rc = main([*argv, "-o", str(out), "--publish", "ams", "--report-format", "json", "-v"])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert len(state.published) == 1
    (msg,) = state.published
    assert (msg["project"], msg["topic"]) == (PROJECT, TOPIC)
    assert state.peer_dns[-1] == "sender.example.org"  # the X.509 token exchange
    assert json.loads(msg["data"]) == json.loads(out.read_text(encoding="utf-8"))
    assert msg["data"] == out.read_bytes()  # byte for byte what --format glue21-json renders
    report = json.loads(text.out)
    assert report["details"]["ams_message_id"] == "1"
    assert report["details"]["ams_topic"] == TOPIC
    assert TOKEN not in text.out + text.err + caplog.text


def test_publish_ams_with_the_ldif_format_still_sends_the_json(tmp_path, pki, ams, state, testbed):
    cfg = write_config(tmp_path, pki, ams.port, testbed)
    assert main(["cloud-info", "--once", "--config", str(cfg), "--publish", "ams"]) == 0
    (msg,) = state.published
    doc = json.loads(msg["data"])
    # the same document as --format glue21-json (CreationTime aside: another run)
    assert main(["cloud-info", "--once", "--config", str(cfg), "--format", "glue21-json"]) == 0
    again = json.loads((tmp_path / "state" / "cloud-info" / "snapshot.json").read_text())
    assert _without_times(doc) == _without_times(again)
    assert (tmp_path / "state" / "cloud-info" / "snapshot.ldif").read_text().startswith("dn: ")


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "CreationTime"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_401_is_exit_1_with_a_clear_message(tmp_path, pki, ams, state, testbed, capsys):
    cfg = write_config(tmp_path, pki, ams.port, testbed, token="wrong-ams-token")
    rc = main(["cloud-info", "--once", "--config", str(cfg), "--publish", "ams"])
    out = capsys.readouterr()
    assert rc == 1
    assert f"AMS refused to publish to {TOPIC} (HTTP 401: Unauthorized)" in out.err
    assert "cloud_info.ams.token" in out.err
    assert "wrong-ams-token" not in out.out + out.err
    assert state.published == []


def test_unknown_topic_is_exit_1_naming_it(tmp_path, pki, ams, state, testbed, capsys):
    cfg = write_config(tmp_path, pki, ams.port, testbed, topic="SITE_NOPE_ENDPOINT_1G0")
    rc = main(["cloud-info", "--once", "--config", str(cfg), "--publish", "ams"])
    out = capsys.readouterr()
    assert rc == 1
    assert f"AMS has no topic SITE_NOPE_ENDPOINT_1G0 in project {PROJECT}" in out.err


def test_503_is_retried_then_exit_75(tmp_path, pki, ams, state, testbed, capsys):
    state.fail_next[:] = [503] * 10
    cfg = write_config(tmp_path, pki, ams.port, testbed)
    rc = main(["cloud-info", "--once", "--config", str(cfg), "--publish", "ams"])
    out = capsys.readouterr()
    assert rc == 75, out.err
    assert state.publish_calls == 3  # the first try and retries: 2
    assert "gave up after 3 attempt(s)" in out.err
    assert state.published == []


def test_503_then_success_publishes_once(tmp_path, pki, ams, state, testbed):
    state.fail_next[:] = [503, 502]
    cfg = write_config(tmp_path, pki, ams.port, testbed)
    assert main(["cloud-info", "--once", "--config", str(cfg), "--publish", "ams"]) == 0
    assert len(state.published) == 1


def test_dry_run_prints_the_request_and_sends_nothing(tmp_path, pki, ams, state, testbed, capsys):
    cfg = write_config(tmp_path, pki, ams.port, testbed)
    rc = main(["cloud-info", "--dry-run", "--config", str(cfg), "--publish", "ams"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    head, _, body = out.out.partition("\n")
    assert head.startswith(
        f"# would POST https://127.0.0.1:{ams.port}/v1/projects/{PROJECT}/topics/{TOPIC}:publish"
    )
    assert "authentication: x509" in head
    request, _end = json.JSONDecoder().raw_decode(body)  # the run report follows
    (message,) = request["messages"]
    doc = json.loads(base64.b64decode(message["data"]))
    assert doc["CloudComputingService"][0]["OtherInfo"]["gocdb_id"] == "12345G0"
    assert state.published == []
    assert state.publish_calls == 0


def test_publish_without_gocdb_id_is_a_config_error(tmp_path, capsys):
    cfg = tmp_path / "appliance.yaml"
    cfg.write_text("site: {name: TEST-SITE}\ncloud_info: {publish: ams}\n", encoding="utf-8")
    assert main(["config", "check", "--config", str(cfg)]) == 2
    assert "cloud_info.gocdb_id" in capsys.readouterr().err
    # asked for on the command line only: the run fails before collecting, naming the key,
    # and exits 2 like any config error (a ConfigError inside a run is a config error)
    cfg.write_text("site: {name: TEST-SITE}\n", encoding="utf-8")
    assert main(["cloud-info", "--once", "--config", str(cfg), "--publish", "ams"]) == 2
    assert "cloud_info.gocdb_id: is required to publish" in capsys.readouterr().err


def test_scheduled_run_publishes_when_configured(tmp_path, pki, ams, state, testbed):
    """cloud_info.publish: ams makes every scheduled cloud-info run send the JSON."""
    path = write_config(tmp_path, pki, ams.port, testbed)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["cloud_info"]["publish"] = "ams"
    cfg = parse_config(yaml.safe_dump(doc), source="test", environ={})
    # the context the scheduler builds (fedcloud_appliance.cli.cmd_scheduler)
    ctx = JobContext(config=cfg, options=argparse.Namespace(once=True, dry_run=False))
    for _ in range(2):
        report = execute(cloudinfo_jobs.CLOUD_INFO_JOB, ctx)
        assert report.status is RunStatus.OK, report.render_text()
    assert [p["topic"] for p in state.published] == [TOPIC, TOPIC]
    assert report.details["ams_message_id"] == "2"
    stored = json.loads((tmp_path / "state" / "status" / "cloud-info.json").read_text())
    assert stored["details"]["ams_message_id"] == "2"
