"""The status page: escaping, read-only handler, cache, listen address parsing."""

from __future__ import annotations

import http.client
import threading
from datetime import UTC, datetime

import pytest

from fedcloud_appliance import web

pytestmark = pytest.mark.unit


def _data(job_name: str = "accounting extract", fatal: str | None = None) -> dict:
    return {
        "site": "DEMO<SITE>",
        "generated": "2026-05-01T12:00:00+00:00",
        "jobs": [
            {
                "job": job_name,
                "key": job_name.replace(" ", "-"),
                "interval_minutes": 60,
                "enabled": True,
                "last_run": "2026-05-01T11:30:00+00:00",
                "status": "failed" if fatal else "ok",
                "age_seconds": 1800.0,
                "duration": 2.5,
                "counts": {"records": 12},
                "errors": 0,
                "fatal": fatal,
                "overdue": False,
                "heartbeat_age_seconds": 1800.0,
            },
            {
                "job": "images sync",
                "key": "images-sync",
                "interval_minutes": 0,
                "enabled": False,
                "last_run": None,
                "status": "never",
                "overdue": False,
                "heartbeat_age_seconds": None,
            },
        ],
        "bdiis": [
            {
                "name": "resource",
                "url": "ldap://r:2170",
                "base": "o=glue",
                "answered": True,
                "entries": 13,
                "newest_change": None,
                "age_seconds": 60.0,
                "error": None,
                "fresh": True,
            }
        ],
        "queues": {
            "path": "/var/spool/apel/outgoing",
            "queues": [
                {"queue": "cloud", "path": "/q", "elements": 7, "temporary": 0, "error": None}
            ],
        },
        "cache": {
            "path": "/image_data",
            "exists": True,
            "bytes": 2048,
            "files": 2,
            "disk_free": 10 << 30,
        },
    }


def test_render_html_escapes_everything():
    page = web.render_html(_data(fatal='<script>alert("x")</script>'))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "DEMO&lt;SITE&gt;" in page
    assert 'data-job="accounting-extract" data-status="failed"' in page
    assert 'data-job="images-sync" data-status="disabled"' in page
    assert "13 entries" in page
    assert ">7<" in page
    assert "2.0 KiB in 2 file(s)" in page
    assert "last run failed" in page  # the problems list


def test_healthy_page_says_so():
    page = web.render_html(_data())
    assert 'id="healthy"' in page
    assert 'class="ok">ok' in page


def test_cache_collects_at_most_every_n_seconds():
    calls, now = [], [100.0]
    cache = web.StatusCache(
        lambda: calls.append(1) or {"n": len(calls)}, seconds=10, clock=lambda: now[0]
    )
    assert cache.get() == {"n": 1}
    assert cache.get() == {"n": 1}
    now[0] += 10
    assert cache.get() == {"n": 2}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("[::1]:80", ("::1", 80)),
        (":81", ("127.0.0.1", 81)),
    ],
)
def test_parse_listen(value, expected):
    assert web.parse_listen(value) == expected


@pytest.mark.parametrize("value", ["x", "host:port", "1:99999"])
def test_parse_listen_rejects(value):
    with pytest.raises(ValueError, match="--serve"):
        web.parse_listen(value)


@pytest.fixture
def server():
    state = {"boom": False}

    def collect():
        if state["boom"]:
            raise RuntimeError("collect failed")
        return _data()

    srv = web.make_server(("127.0.0.1", 0), collect, cache_seconds=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, state
    srv.shutdown()
    srv.server_close()
    t.join(timeout=5)


def _req(srv, method, path):
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=5)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def test_server_serves_read_only(server):
    srv, state = server
    code, headers, body = _req(srv, "GET", "/")
    assert code == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "accounting extract" in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    code, _, body = _req(srv, "GET", "/status.json")
    assert code == 200
    assert '"site": "DEMO<SITE>"' in body
    assert _req(srv, "GET", "/healthz")[:1] == (200,)
    assert _req(srv, "GET", "/../etc/passwd")[0] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        code, headers, _ = _req(srv, method, "/")
        assert code == 405
        assert headers["Allow"] == "GET, HEAD"
    state["boom"] = True
    assert _req(srv, "GET", "/")[0] == 500
    assert _req(srv, "GET", "/healthz")[0] == 200
    assert datetime.now(UTC)  # the server thread is still alive after the failed collection
