"""The status page after a week of history: SVG plots, result strips, the image table,
no external resource; ``status --json`` carries the same data; ``/metrics`` parses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from dirq.QueueSimple import QueueSimple
from prometheus_client.parser import text_string_to_metric_families

from fedcloud_appliance import cli, metrics, plots, status, web
from fedcloud_core.config import parse_config
from support.history_week import DAYS, IMAGES, VOS, write_week

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 7, 9, 30, 0, tzinfo=UTC)


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    p = tmp_path / "appliance.yaml"
    p.write_text(
        "site: {name: DEMO-SITE}\n"
        f"paths: {{state_dir: {tmp_path}/state, spool_dir: {tmp_path}/spool, "
        f"image_dir: {tmp_path}/images}}\n"
        f"ssm: {{certificate: {tmp_path}/nocert.pem}}\n"
    )
    return p


@pytest.fixture
def week(cfg_path: Path) -> dict:
    cfg = parse_config(cfg_path.read_text(), source="t", environ={})
    write_week(cfg.paths.state_dir, NOW)
    QueueSimple(str(cfg.paths.spool_dir / "outgoing" / "cloud")).add(b"APEL-cloud-message: v0.4\n")
    return status.collect(cfg, NOW, probe=None)


class Resources(HTMLParser):
    """Every tag, and every attribute that would make the browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.fetches: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "srcset", "data", "poster", "background", "xlink:href") or (
                name == "href" and tag not in ("a",)
            ):
                self.fetches.append(f"<{tag} {name}={value}>")
            if name == "style" and value:
                self.styles.append(value)

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False


def test_records_plot_has_one_point_per_day_and_vo(week):
    page = web.render_html(week)
    fig = re.search(r'<figure id="plot-records">(.*?)</figure>', page, re.S)
    assert fig
    points = re.findall(r'<circle class="point" data-series="([^"]+)" data-x="([^"]+)"', fig[1])
    days = [(NOW.date() - timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
    assert sorted(points) == sorted((vo, d) for vo in VOS for d in days)
    # the values are the records the ssm runs of that day sent for the VO
    sent = week["history"]["records_sent_per_day"]["days"]
    for vo, day, value in re.findall(
        r'data-series="([^"]+)" data-x="([^"]+)" data-value="([^"]+)"', fig[1]
    ):
        assert float(value) == sent[day].get(vo, 0)
    assert all(sent[d] for d in days)  # every day had records


def test_bdii_and_duration_plots_and_result_strips(week):
    page = web.render_html(week)
    for fig_id in ("plot-bdii", "plot-durations"):
        fig = re.search(rf'<figure id="{fig_id}">(.*?)</figure>', page, re.S)
        assert fig
        assert fig[1].count("<polyline") >= 3
    for job in ("cloud-info", "ssm-send", "images-sync"):
        row = re.search(rf'<tr class="job" data-job="{job}".*?</tr>', page, re.S)
        assert row
        assert row[0].count('class="run"') == 24
    ssm_strip = re.search(r'data-job="ssm-send".*?</tr>', page, re.S)[0]  # type: ignore[index]
    assert 'data-status="failed"' in ssm_strip
    assert "refused" in ssm_strip  # the failed run's error is its tooltip


def test_image_table(week):
    page = web.render_html(week)
    rows = re.findall(r'<tr class="image" data-state="([^"]+)"><td>([^<]+)</td><td>([^<]+)', page)
    assert sorted((name, vo) for _s, name, vo in rows) == sorted((n, v) for n, v, _ in IMAGES)
    failed_once = re.search(r"<td>EGI Notebooks base</td>.*?</tr>", page, re.S)
    assert failed_once
    assert "digest mismatch" in failed_once[0]


def test_page_has_no_external_resource(week):
    page = web.render_html(week)
    p = Resources()
    p.feed(page)
    assert not {"script", "link", "img", "iframe", "object", "embed", "image", "use"} & set(p.tags)
    assert p.fetches == []
    css = " ".join(p.styles)
    assert "url(" not in css
    assert "@import" not in css
    assert "@font-face" not in css
    assert "svg" in p.tags  # the plots are inline
    # every link is relative (the page's own JSON and metrics)
    assert set(re.findall(r'<a href="([^"]+)"', page)) == {"status.json", "metrics"}


def test_empty_history_says_so(cfg_path):
    cfg = parse_config(cfg_path.read_text(), source="t", environ={})
    page = web.render_html(status.collect(cfg, NOW, probe=None))
    assert "nothing yet" in page
    assert "no image synced yet" in page


def test_status_json_carries_the_history(cfg_path, week, capsys):
    assert cli.main(["status", "--config", str(cfg_path), "--json", "--no-bdii"]) == 0
    data = json.loads(capsys.readouterr().out)
    h = data["history"]
    assert set(h) >= {"runs", "records_sent_per_day", "bdii_entries", "durations", "images"}
    assert len(h["images"]) == len(IMAGES)
    assert data["certificates"][0]["use"] == "ssm"
    assert "error" in data["certificates"][0]


def test_metrics_parse_and_carry_every_documented_name(week):
    text = metrics.render(week)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(fams) == set(metrics.METRICS)  # all gauges: parser names are the metric names
    missing = {name for name, fam in fams.items() if not fam.samples}
    # no certificate in this config and no BDII probed: those two are absent, rightly
    assert missing == {
        "fedcloud_certificate_expiry_timestamp_seconds",
        "fedcloud_bdii_up",
        "fedcloud_bdii_entries",
        "fedcloud_bdii_newest_change_timestamp_seconds",
        "fedcloud_image_cache_bytes",
        "fedcloud_image_cache_files",
        "fedcloud_image_cache_free_bytes",
    }
    for name, fam in fams.items():
        labels, _help = metrics.METRICS[name]
        for s in fam.samples:
            assert tuple(sorted(s.labels)) == tuple(sorted(labels)), (name, s.labels)
    result = {
        (s.labels["job"], s.labels["result"]): s.value
        for s in fams["fedcloud_job_last_result"].samples
    }
    assert result[("ssm-send", "ok")] == 1.0
    assert result[("ssm-send", "failed")] == 0.0
    queued = fams["fedcloud_queue_messages"].samples
    assert [(q.labels, q.value) for q in queued] == [({"queue": "cloud"}, 1.0)]


def test_plot_functions_escape_and_handle_one_day():
    svg = plots.per_day("t<", ["2026-05-01"], {"2026-05-01": {"<vo>": 3}}, "records")
    assert "<vo>" not in svg
    assert "&lt;vo&gt;" in svg
    assert svg.count('class="point"') == 1
    assert "nothing yet" in plots.per_day("t", [], {}, "x")


def test_every_metric_is_documented_with_its_labels():
    doc = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    for name, (labels, _help) in metrics.METRICS.items():
        row = re.search(rf"^\| `{name}` \| ([^|]+) \|", doc, re.M)
        assert row, f"{name} is not in docs/operations.md"
        assert row[1].strip() == (", ".join(labels) or "-"), name


def test_history_values_are_escaped(week):
    week["history"]["images"][0].update(name="<img src=x onerror=alert(1)>", last_error="a<b")
    week["history"]["runs"]["ssm-send"][-1]["error"] = "<script>x</script>"
    page = web.render_html(week)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>" not in page
    assert "a&lt;b" in page


def test_an_image_missing_from_the_last_sync_is_marked(cfg_path):
    cfg = parse_config(cfg_path.read_text(), source="t", environ={})
    state = cfg.paths.state_dir
    write_week(state, NOW)
    from fedcloud_core import history
    from fedcloud_core.report import RunReport

    r = RunReport(job="images-sync", started=NOW)
    r.finished = NOW
    r.details["images"] = [
        {"key": "appdb-ops/img-4", "name": "CernVM 5", "vo": "ops", "state": "unchanged"}
    ]
    history.append_run(state, r)
    data = status.collect(cfg, NOW, probe=None)
    rows = {i["name"]: i["in_last_sync"] for i in data["history"]["images"]}
    assert rows["CernVM 5"] is True
    assert rows["AlmaLinux 9"] is False
    page = web.render_html(data)
    assert re.search(r"<td>AlmaLinux 9</td>.*?unchanged \(not in the last sync\)", page, re.S)
