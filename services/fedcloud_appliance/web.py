"""The read-only status page: ``fedcloud-appliance status --serve [HOST:]PORT``.

Stdlib ``http.server`` only. ``GET /`` is the HTML page, ``GET /status.json`` the
same data as ``status --json``, ``GET /metrics`` the Prometheus text exposition of it
(:mod:`.metrics`), ``GET /healthz`` answers ``ok``. Every other path
is 404 and every other method 405: the page never changes anything. Every value
is HTML-escaped. The data is collected at most every ``cache_seconds`` (the page
refreshes itself every minute), so a busy browser does not hammer the BDIIs.
Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import metrics, webhistory
from .status import bdii_summary, human_age, human_bytes, job_figures, problems, to_json

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ("127.0.0.1", 8080)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.4em 0 .4em}
.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;min-width:60%}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.ok{background:#d8f5d8}.partial{background:#fff1c2}.failed{background:#f9d0d0}
.never,.disabled,.stale{background:#eee}.overdue{font-weight:bold;color:#a00}
ul.problems li{color:#a00}
figure{margin:.6em 0}figcaption{font-size:.9em;color:#444;margin-bottom:.2em}
td.strip{white-space:nowrap}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(data: dict[str, Any]) -> str:
    """The status page for ``data`` (from :func:`fedcloud_appliance.status.collect`)."""
    rows = []
    for j in data["jobs"]:
        status = j["status"] if j["last_run"] else ("never" if j["enabled"] else "disabled")
        klass = status if status in ("ok", "partial", "failed", "never", "disabled") else "stale"
        overdue = ' <span class="overdue">overdue</span>' if j.get("overdue") else ""
        every = f"{j['interval_minutes']} min" if j["enabled"] else "off"
        took = f"{j['duration']:.1f}s" if isinstance(j.get("duration"), int | float) else "-"
        rows.append(
            f'<tr class="job" data-job="{_e(j["key"])}" data-status="{_e(status)}">'
            f'<td>{_e(j["job"])}</td><td class="{_e(klass)}">{_e(status)}{overdue}</td>'
            f"<td>{_e(j['last_run'] or '-')}</td><td>{_e(human_age(j.get('age_seconds')))}</td>"
            f"<td>{_e(took)}</td><td>{_e(every)}</td><td>{_e(job_figures(j))}</td>"
            f'<td class="strip">{webhistory.strip(data, j["key"])}</td></tr>'
        )
    bdii_rows = [
        f'<tr class="bdii" data-bdii="{_e(b["name"])}"><td>{_e(b["name"])}</td><td>{_e(b["url"])}</td>'
        f"<td>{_e(b['base'])}</td>"
        f'<td class="{"ok" if b["answered"] and b["fresh"] else "failed" if not b["answered"] else "stale"}">'
        f"{_e(bdii_summary(b))}</td></tr>"
        for b in data["bdiis"]
    ]
    q = data["queues"]
    queue_rows = [
        f'<tr class="queue" data-unsent="{"yes" if x.get("unsent") else "no"}"><td>{_e(x["queue"])}</td>'
        f'<td class="{"failed" if x.get("unsent") else ""}">'
        f"{_e(x['elements'] if x['elements'] is not None else '?')}"
        f"{' (nobody sends this queue)' if x.get('unsent') else ''}"
        f"</td><td>{_e(x['temporary'])}</td><td>{_e(x['path'])}</td></tr>"
        for x in q["queues"]
    ] or ['<tr><td colspan="4">no queue yet</td></tr>']
    c = data["cache"]
    cache = (
        f"{_e(human_bytes(c['bytes']))} in {_e(c['files'])} file(s)"
        + (f", {_e(human_bytes(c['disk_free']))} free on its disk" if "disk_free" in c else "")
        if c["exists"]
        else "missing"
    )
    probs = problems(data)
    prob_html = (
        '<ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in probs) + "</ul>"
        if probs
        else '<p class="ok" id="healthy">no problems</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="60">
<title>fedcloud-appliance: {_e(data["site"])}</title>
<style>{_CSS}</style></head>
<body>
<h1>fedcloud-appliance: <span id="site">{_e(data["site"])}</span></h1>
<p class="meta">generated {_e(data["generated"])} &middot; read-only &middot;
<a href="status.json">status.json</a> &middot; <a href="metrics">metrics</a></p>
<h2>Problems</h2>
{prob_html}
<h2>Jobs</h2>
<table id="jobs"><tr><th>job</th><th>result</th><th>last run</th><th>age</th><th>took</th>
<th>every</th><th>figures</th><th>last runs (oldest left)</th></tr>
{"".join(rows)}
</table>
<h2>BDII</h2>
<table id="bdiis"><tr><th>BDII</th><th>URL</th><th>base</th><th>state</th></tr>
{"".join(bdii_rows) or '<tr><td colspan="4">not probed</td></tr>'}
</table>
<h2>Outgoing accounting queues</h2>
<p class="meta">{_e(q["path"])}</p>
<table id="queues"><tr><th>queue</th><th>messages</th><th>being written</th><th>path</th></tr>
{"".join(queue_rows)}
</table>
<h2>Image cache</h2>
<p id="cache">{_e(c["path"])}: {cache}</p>
{webhistory.render(data)}
</body></html>
"""


class StatusCache:
    """Calls ``collect()`` at most once every ``seconds``; thread-safe."""

    def __init__(
        self,
        collect: Callable[[], dict[str, Any]],
        seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._collect = collect
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, Any] | None = None
        self._at = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if self._data is None or now - self._at >= self._seconds:
                self._data = self._collect()
                self._at = now
            return self._data


def make_handler(cache: StatusCache) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fedcloud-status"
        sys_version = ""

        def _send(self, code: int, body: str, ctype: str) -> None:
            raw = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(200, render_html(cache.get()), "text/html; charset=utf-8")
                elif path == "/status.json":
                    self._send(200, to_json(cache.get()) + "\n", "application/json")
                elif path == "/metrics":
                    self._send(200, metrics.render(cache.get()), metrics.CONTENT_TYPE)
                elif path == "/healthz":
                    self._send(200, "ok\n", "text/plain; charset=utf-8")
                else:
                    self._send(404, "not found\n", "text/plain; charset=utf-8")
            except Exception:  # the page must keep serving whatever one collection does
                log.exception("status page: collecting the status failed")
                self._send(
                    500,
                    "collecting the status failed; see the container log\n",
                    "text/plain; charset=utf-8",
                )

        do_HEAD = do_GET

        def _refuse(self) -> None:
            self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("status page: %s " + format, self.address_string(), *args)

    return Handler


def parse_listen(value: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[v6]:PORT``; host defaults to 127.0.0.1."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = DEFAULT_LISTEN[0], value
    host = host.strip("[]") or DEFAULT_LISTEN[0]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--serve {value!r}: expected [HOST:]PORT")
    return host, int(port)


def make_server(
    listen: tuple[str, int], collect: Callable[[], dict[str, Any]], cache_seconds: float = 10.0
) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(listen, make_handler(StatusCache(collect, cache_seconds)))
    server.daemon_threads = True
    return server


def serve(
    listen: tuple[str, int], collect: Callable[[], dict[str, Any]], cache_seconds: float = 10.0
) -> None:
    """Serve until SIGTERM/SIGINT."""
    import signal

    server = make_server(listen, collect, cache_seconds)
    host, port = server.server_address[:2]
    log.info("status page on http://%s:%s/ (read-only)", host, port)

    def stop(signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
