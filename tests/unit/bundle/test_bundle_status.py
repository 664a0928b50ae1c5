"""status: jobs from stored reports, BDII rows from a fake probe, dirq queue depth, cache use."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_appliance import status
from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.config import parse_config
from fedcloud_core.report import RunReport, store_report

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def cfg(tmp_path: Path):
    text = f"""
site: {{name: DEMO-SITE}}
paths: {{state_dir: {tmp_path}/state, spool_dir: {tmp_path}/spool, image_dir: {tmp_path}/images}}
scheduler: {{accounting: 60, images: 0}}
"""
    return parse_config(text, source="test", environ={})


def _report(job: str, finished: datetime, **kw) -> RunReport:
    r = RunReport(job=job, started=finished - timedelta(seconds=3), **kw)
    r.finished = finished
    return r


def _age_files(state: Path, job: str, seconds: float) -> None:
    t = NOW.timestamp() - seconds
    for suffix in ("json", "heartbeat"):
        p = state / "status" / f"{job}.{suffix}"
        if p.exists():
            os.utime(p, (t, t))


def test_jobs_results_figures_age_and_overdue(cfg, tmp_path):
    state = cfg.paths.state_dir
    store_report(
        state, _report("accounting-extract", NOW - timedelta(minutes=30), counts={"records": 12})
    )
    _age_files(state, "accounting-extract", 30 * 60)
    store_report(state, _report("cloud-info", NOW - timedelta(hours=5), counts={"images": 3}))
    _age_files(state, "cloud-info", 5 * 3600)  # every 10 min: overdue
    store_report(state, _report("ssm-send", NOW - timedelta(minutes=1), fatal="broker down"))

    data = status.collect(cfg, NOW, probe=None)
    jobs = {j["key"]: j for j in data["jobs"]}
    acc = jobs["accounting-extract"]
    assert (acc["status"], acc["counts"], acc["age_seconds"], acc["overdue"]) == (
        "ok",
        {"records": 12},
        1800,
        False,
    )
    assert jobs["cloud-info"]["overdue"] is True
    assert jobs["ssm-send"]["status"] == "failed"
    assert jobs["ssm-send"]["fatal"] == "broker down"
    assert jobs["images-sync"]["enabled"] is False
    assert jobs["images-sync"]["status"] == "never"

    text = status.render_text(data)
    assert "accounting extract   ok" in text
    assert "records=12" in text
    assert "ok!" in text  # cloud-info overdue marker
    assert "fatal: broker down" in text
    assert "images sync          disabled" in text

    probs = status.problems(data)
    assert any("ssm send: last run failed: broker down" in p for p in probs)
    assert any(p.startswith("cloud-info: no successful run") for p in probs)
    assert not any("accounting" in p for p in probs)
    assert json.loads(status.to_json(data))["site"] == "DEMO-SITE"


def test_jobs_filter(cfg):
    data = status.collect(cfg, NOW, probe=None, jobs=["ssm-send", "images-sync"])
    assert [j["key"] for j in data["jobs"]] == ["ssm-send", "images-sync"]


def test_queue_depth_counts_dirq_elements_and_creates_nothing(cfg):
    spool = cfg.paths.spool_dir
    data = status.collect(cfg, NOW, probe=None)
    assert data["queues"]["queues"] == []
    assert not spool.exists()

    q = QueueSimple(str(spool / "outgoing" / "cloud"))
    for i in range(5):
        q.add(f"message {i}")
    name = q.add("locked one")
    assert q.lock(name)
    QueueSimple(str(spool / "outgoing" / "storage")).add("x")
    (spool / "outgoing" / "cloud" / "abcdef01").mkdir()
    (spool / "outgoing" / "cloud" / "abcdef01" / "0123456789abcd.tmp").write_text("half")

    rows = {r["queue"]: r for r in status.collect(cfg, NOW, probe=None)["queues"]["queues"]}
    assert rows["cloud"]["elements"] == 6
    assert rows["cloud"]["temporary"] == 1
    assert rows["storage"]["elements"] == 1
    assert "cloud=6" in status.render_text(status.collect(cfg, NOW, probe=None))


def test_cache_use(cfg):
    assert status.collect(cfg, NOW, probe=None)["cache"]["exists"] is False
    d = cfg.paths.image_dir / "fedcloud.egi.eu"
    d.mkdir(parents=True)
    (d / "a.qcow2").write_bytes(b"x" * 3000)
    (d / "b.qcow2").write_bytes(b"y" * 1000)
    (d / "link").symlink_to("/etc/passwd")  # counted as a link, never followed
    c = status.collect(cfg, NOW, probe=None)["cache"]
    assert c["files"] == 3
    assert 4000 <= c["bytes"] < 4100
    assert c["disk_free"] > 0
    assert "image cache" in status.render_text(status.collect(cfg, NOW, probe=None))


def test_bdii_rows_from_probe(cfg):
    seen = []

    def probe(t: status.BdiiTarget) -> status.BdiiProbe:
        seen.append(t)
        if t.name == "resource":
            return status.BdiiProbe(answered=True, entries=13, newest=NOW - timedelta(minutes=4))
        return status.BdiiProbe(
            answered=False, error="no answer from ldap://127.0.0.1:2171: refused"
        )

    data = status.collect(cfg, NOW, probe=probe)
    assert [(t.name, t.url, t.base) for t in seen] == [
        ("resource", "ldap://127.0.0.1:2170", "o=glue"),
        ("site", "ldap://127.0.0.1:2171", "GLUE2DomainID=DEMO-SITE,o=glue"),
    ]
    res, site = data["bdiis"]
    assert res["fresh"] is True
    assert res["entries"] == 13
    assert res["age_seconds"] == 240
    assert site["answered"] is False
    assert any("BDII site" in p for p in status.problems(data))
    assert "13 entries, newest change 4.0m ago" in status.render_text(data)


def test_stale_bdii(cfg):
    old = status.BdiiProbe(answered=True, entries=13, newest=NOW - timedelta(days=2))
    data = status.collect(cfg, NOW, probe=lambda t: old)
    assert data["bdiis"][0]["fresh"] is False
    assert "(stale)" in status.render_text(data)


def test_bdii_option_and_listen_address(cfg):
    t = status.parse_bdii_option("site=ldap://site-bdii:2170", cfg)
    assert (t.url, t.base) == ("ldap://site-bdii:2170", "GLUE2DomainID=DEMO-SITE,o=glue")
    assert status.parse_bdii_option("resource=ldap://x:1", cfg).base == "o=glue"
    with pytest.raises(ValueError, match="NAME=ldap"):
        status.parse_bdii_option("http://x", cfg)
    cfg2 = cfg.model_copy(update={"bdii": cfg.bdii.model_copy(update={"host": "0.0.0.0"})})
    assert status.default_bdiis(cfg2)[0].url == "ldap://127.0.0.1:2170"


@pytest.mark.parametrize(
    ("site", "base"),
    [
        ("A,o=other", "GLUE2DomainID=A\\,o=other,o=glue"),
        ("A+B", "GLUE2DomainID=A\\+B,o=glue"),
        (" #X", "GLUE2DomainID=\\ #X,o=glue"),
    ],
)
def test_site_search_base_escapes_the_site_name(cfg, site, base):
    """The site name goes into the LDAP search base DN-escaped (issue 18), as the site tree
    writes it: a ',' or '+' never makes another base. (The config's name pattern refuses
    these already; a model built without validation still must not produce a wrong base.)"""
    odd = cfg.model_copy(update={"site": cfg.site.model_copy(update={"name": site})})
    assert status.parse_bdii_option("site=ldap://x:1", odd).base == base
    assert status.default_bdiis(odd)[1].base == base
    assert dnlib.split_dn(base)[1:] == ["o=glue"]


def test_ldap_time_parsing():
    assert status._ldap_time(["20260501115600Z"]) == datetime(2026, 5, 1, 11, 56, tzinfo=UTC)
    assert status._ldap_time(datetime(2026, 5, 1, 11, 56)) == datetime(
        2026, 5, 1, 11, 56, tzinfo=UTC
    )
    assert status._ldap_time("garbage") is None
    assert status.human_bytes(1536) == "1.5 KiB"
    assert status.human_age(7200) == "2.0h"


def test_partial_runs_in_a_row_become_unhealthy_and_an_ok_run_resets(cfg):
    state = cfg.paths.state_dir
    assert cfg.scheduler.max_partial_runs == 3

    def run(errors: list[str]) -> list[str]:
        store_report(state, _report("accounting-extract", NOW, errors=errors))
        return status.problems(status.collect(cfg, NOW, probe=None, jobs=["accounting-extract"]))

    assert run(["server x: record set aside"]) == []
    assert run(["server x: record set aside"]) == []
    assert run(["server x: record set aside"]) == [
        "accounting extract: 3 partial runs in a row (some items keep failing; see the run report)"
    ]
    assert status.load_report(state, "accounting-extract")["partial_runs"] == 3
    assert run([]) == []
    assert status.load_report(state, "accounting-extract")["partial_runs"] == 0
    assert run(["again"]) == []


def test_partial_run_limit_is_configurable(tmp_path):
    text = f"site: {{name: X}}\npaths: {{state_dir: {tmp_path}/state}}\nscheduler: {{max_partial_runs: 1}}\n"
    cfg = parse_config(text, source="test", environ={})
    store_report(cfg.paths.state_dir, _report("ssm-send", NOW, errors=["message set aside"]))
    probs = status.problems(status.collect(cfg, NOW, probe=None, jobs=["ssm-send"]))
    assert probs == [
        "ssm send: 1 partial runs in a row (some items keep failing; see the run report)"
    ]


def test_queue_with_messages_that_nobody_sends_is_flagged(tmp_path):
    text = f"""
site: {{name: DEMO-SITE}}
paths: {{state_dir: {tmp_path}/state, spool_dir: {tmp_path}/spool}}
accounting: {{ip_records: true}}
ssm: {{queues: [cloud, storage, ip], ams_topics: {{cloud: c, storage: s, ip: i}}}}
"""
    cfg = parse_config(text, source="test", environ={})
    out = tmp_path / "spool" / "outgoing"
    for name, n in (("cloud", 2), ("storage", 1), ("accelerator", 4), ("old", 0)):
        q = QueueSimple(str(out / name))
        for i in range(n):
            q.add(f"m{i}")
    data = status.collect(cfg, NOW, probe=None, jobs=[])
    rows = {r["queue"]: r for r in data["queues"]["queues"]}
    assert {k for k, r in rows.items() if r["unsent"]} == {"accelerator"}
    assert status.problems(data) == [
        f"outgoing queue accelerator: 4 message(s) that nobody sends (not in ssm.queues): "
        f"{out / 'accelerator'}"
    ]
    assert "accelerator=4 (nobody sends it)" in status.render_text(data)
    from fedcloud_appliance import web

    page = web.render_html(data)
    assert 'data-unsent="yes"><td>accelerator</td>' in page
    assert "(nobody sends this queue)" in page

    # the ssm job disabled: every queue with messages is unsent
    cfg.scheduler.ssm = 0
    data = status.collect(cfg, NOW, probe=None, jobs=[])
    assert {r["queue"] for r in data["queues"]["queues"] if r["unsent"]} == {
        "cloud",
        "storage",
        "accelerator",
    }
    assert "the ssm job is disabled" in status.problems(data)[0]
