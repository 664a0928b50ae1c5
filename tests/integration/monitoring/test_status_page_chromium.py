"""The status page after a week of history, in headless Chromium.

The real status server (``fedcloud-appliance status --serve``, a subprocess) over a state
directory holding a week of synthetic history (tests/support/history_week.py), an
outgoing queue and an image cache. Chromium renders the page: the DOM holds the SVG
plots (one point per day and VO), the result strips and the image table; the browser
asked the server for nothing but the page (no script, stylesheet, font or image), and
nothing else. Screenshots: ``FEDCLOUD_UPDATE_SCREENSHOTS=1`` writes them to docs/img/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from dirq.QueueSimple import QueueSimple

from integration.bdii.bdii_testlib import free_port
from support.history_week import DAYS, VOS, write_week

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[3]
CLI = str(REPO / ".venv" / "bin" / "fedcloud-appliance")
DOCS_IMG = REPO / "docs" / "img"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed")
    root = tmp_path_factory.mktemp("page")
    cfg = {
        "site": {"name": "DEMO-SITE"},
        "paths": {
            "state_dir": str(root / "state"),
            "spool_dir": str(root / "spool"),
            "image_dir": str(root / "images"),
        },
        "ssm": {"protocol": "STOMP", "certificate": str(root / "hostcert.pem")},
    }
    (root / "appliance.yaml").write_text(yaml.safe_dump(cfg))
    write_week(root / "state", datetime.now(UTC).replace(microsecond=0))
    q = QueueSimple(str(root / "spool" / "outgoing" / "cloud"))
    for _ in range(3):
        q.add(b"APEL-cloud-message: v0.4\n")
    QueueSimple(str(root / "spool" / "outgoing" / "storage"))
    (root / "images").mkdir()
    (root / "images" / "almalinux-9.qcow2").write_bytes(b"\0" * 300_000)
    port = free_port()
    log = root / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                CLI,
                "status",
                "--config",
                str(root / "appliance.yaml"),
                "--serve",
                f"127.0.0.1:{port}",
                "--no-bdii",
                "-vv",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    r.read()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _requested(log: Path) -> list[str]:
    return re.findall(r'"GET ([^ ]+) HTTP', log.read_text())


def test_page_renders_plots_strips_and_images_without_other_requests(page, tmp_path):
    url, log = page
    before = len(_requested(log))
    html = _chromium("--dump-dom", url, profile=tmp_path / "p1").stdout
    asked = _requested(log)[before:]
    assert asked[0] == "/"
    assert set(asked) <= {"/", "/favicon.ico"}, asked  # the browser's own icon, nothing else
    assert '<span id="site">DEMO-SITE</span>' in html
    fig = re.search(r'<figure id="plot-records">(.*?)</figure>', html, re.S)
    assert fig
    points = re.findall(r'class="point" data-series="([^"]+)" data-x="([^"]+)"', fig[1])
    assert len(points) == DAYS * len(VOS)
    assert len(set(points)) == len(points)
    assert {vo for vo, _ in points} == set(VOS)
    for job in ("cloud-info", "accounting-extract", "ssm-send", "images-sync"):
        row = re.search(rf'<tr class="job" data-job="{job}".*?</tr>', html, re.S)
        assert row
        assert row[0].count('class="run"') == 24
    assert html.count('<tr class="image"') == 5
    assert "<script" not in html


def test_screenshots(page, tmp_path):
    url, _log = page
    # the history half: the page as Chromium rendered it, from the History heading on
    # (headless screenshots do not scroll to a fragment); styles are inline, nothing to fetch
    dom = _chromium("--dump-dom", url, profile=tmp_path / "p0").stdout
    head, _, body = dom.partition("<body>")
    lower = body[body.index('<h2 id="history">') :]
    (tmp_path / "history.html").write_text(head + "<body>" + lower)
    shots = {
        "status-page-jobs.png": (url, "1280,1000"),
        "status-page-history.png": ((tmp_path / "history.html").as_uri(), "1280,1200"),
    }
    for name, (target, size) in shots.items():
        shot = tmp_path / name
        _chromium(
            f"--screenshot={shot}",
            f"--window-size={size}",
            target,
            profile=tmp_path / f"p-{name}",
        )
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert f"{width},{height}" == size
        assert len(png) > 40_000  # tables, strips and plots, not a blank canvas
        if os.environ.get("FEDCLOUD_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_IMG / name)
