"""The history part of the status page: plots and the replicated images table.

Reads ``data["history"]`` (:func:`fedcloud_appliance.trends.collect_history`); the SVG
comes from :mod:`.plots`. Every value is HTML-escaped.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

from . import plots
from .status import human_bytes


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def strip(data: dict[str, Any], job_key: str) -> str:
    """The result strip of one job (empty when there is no history)."""
    runs = (data.get("history") or {}).get("runs", {}).get(job_key) or []
    return plots.result_strip(runs) if runs else ""


def _short_time(value: Any) -> str:
    return str(value or "-").replace("T", " ").replace("+00:00", "")[:16]


def render(data: dict[str, Any]) -> str:
    h = data.get("history")
    if not h:
        return ""
    days = h.get("days") or []
    try:
        end = datetime.fromisoformat(str(data["generated"]))
    except (KeyError, ValueError):
        end = datetime.now(UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    start = end - timedelta(days=len(days) or 7)
    sent = h.get("records_sent_per_day") or {}
    parts = [
        f'<h2 id="history">History (last {len(days)} days)</h2>',
        '<figure id="plot-records"><figcaption>Accounting records sent to APEL per day, per VO'
        "</figcaption>"
        + plots.per_day(
            "accounting records sent per day per VO", days, sent.get("days", {}), "records"
        )
        + "</figure>",
        '<figure id="plot-bdii"><figcaption>BDII entries published</figcaption>'
        + plots.over_time(
            "BDII entries over time", h.get("bdii_entries", {}), "entries", start=start, end=end
        )
        + "</figure>",
        '<figure id="plot-durations"><figcaption>Job durations</figcaption>'
        + plots.over_time("job durations", h.get("durations", {}), "seconds", start=start, end=end)
        + "</figure>",
    ]
    rows = []
    for img in h.get("images") or []:
        state = str(img.get("state") or "?")
        klass = {"failed": "failed", "new": "ok", "updated": "ok", "unchanged": "ok"}.get(
            state, "stale"
        )
        if not img.get("in_last_sync", True):
            state, klass = f"{state} (not in the last sync)", "stale"
        size = img.get("size")
        rows.append(
            f'<tr class="image" data-state="{_e(state)}"><td>{_e(img.get("name"))}</td>'
            f"<td>{_e(img.get('vo'))}</td><td>{_e(img.get('version') or '-')}</td>"
            f'<td class="{klass}">{_e(state)}</td>'
            f"<td>{_e(human_bytes(size) if isinstance(size, int | float) else '-')}</td>"
            f"<td>{_e(_short_time(img.get('last_verified')))}</td>"
            f"<td>{_e(img.get('last_error') or '')}"
            + (
                f' <span class="meta">({_e(_short_time(img.get("last_error_at")))})</span>'
                if img.get("last_error")
                else ""
            )
            + "</td></tr>"
        )
    parts.append(
        '<h2 id="replicated-images">Replicated images</h2>\n<table id="images"><tr><th>image</th><th>VO</th>'
        "<th>version</th><th>state</th><th>size</th><th>last verified</th><th>last error</th></tr>"
        + ("".join(rows) or '<tr><td colspan="7">no image synced yet</td></tr>')
        + "</table>"
    )
    for job, err in sorted((h.get("errors") or {}).items()):
        parts.append(f'<p class="failed">history of {_e(job)}: {_e(err)}</p>')
    return "\n".join(parts)
