"""What the run history says, for the status page, ``status --json`` and ``/metrics``.

Read-only, from the history files the core appends to on every run
(:mod:`fedcloud_core.history`): the last runs of each job (the page's result strips),
accounting records sent per day and VO, BDII entries over time, job durations, and the
table of replicated images.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fedcloud_core.history import load_history

#: runs shown per job in the result strip
STRIP_RUNS = 24
#: which figure of which job is "BDII entries"
BDII_FIGURES = (
    ("cloud-info", "entries"),
    ("bdii-update", "entries"),
    ("site-bdii", "resource_entries"),
)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _newest(state_dirs: Sequence[Path], job: str) -> dict[str, Any]:
    """The history of ``job`` from the state directory whose last run is the newest."""
    best: dict[str, Any] = {"job": job, "runs": []}
    best_at: datetime | None = None
    for d in state_dirs:
        h = load_history(d, job)
        runs = h.get("runs") or []
        at = _time(runs[-1].get("finished")) if runs else None
        if at is not None and (best_at is None or at > best_at):
            best, best_at = h, at
        elif best_at is None and h.get("error"):
            best = h
    return best


def collect_history(
    jobs: Sequence[str],
    state_dirs: Sequence[Path],
    now: datetime,
    *,
    days: int = 7,
    strip: int = STRIP_RUNS,
) -> dict[str, Any]:
    """Everything the page plots, as plain data (JSON-ready).

    ``days``: the span of the per-day and over-time series (ending today, UTC).
    """
    histories = {job: _newest(state_dirs, job) for job in jobs}
    since = now - timedelta(days=days)

    def recent(job: str) -> list[dict[str, Any]]:
        return [
            r
            for r in histories.get(job, {}).get("runs", [])
            if (_time(r.get("finished")) or now) >= since
        ]

    runs = {
        job: [
            {
                k: r.get(k)
                for k in ("finished", "status", "duration", "error", "nothing_accepted")
                if r.get(k) is not None
            }
            for r in h.get("runs", [])[-strip:]
        ]
        for job, h in histories.items()
    }
    first_day = (now - timedelta(days=days - 1)).date()
    day_list = [(first_day + timedelta(days=i)).isoformat() for i in range(days)]
    per_day: dict[str, dict[str, int]] = {d: {} for d in day_list}
    for r in recent("ssm-send"):
        t = _time(r.get("finished"))
        day = t.date().isoformat() if t else None
        if day not in per_day:
            continue
        for vo, n in (r.get("records_by_vo") or {}).items():
            per_day[day][vo] = per_day[day].get(vo, 0) + int(n)
    vos = sorted({vo for d in per_day.values() for vo in d})
    bdii = {
        job: [
            [r["finished"], r["counts"][figure]]
            for r in recent(job)
            if isinstance(r.get("counts"), dict) and figure in r["counts"]
        ]
        for job, figure in BDII_FIGURES
        if job in histories
    }
    durations = {
        job: [[r["finished"], r.get("duration") or 0] for r in recent(job) if r.get("finished")]
        for job in jobs
    }
    images = sorted(
        (
            {"key": k, **v}
            for k, v in (histories.get("images-sync", {}).get("images") or {}).items()
        ),
        key=lambda x: (str(x.get("vo")), str(x.get("name")), str(x.get("key"))),
    )
    sync_runs = histories.get("images-sync", {}).get("runs") or []
    last_sync = sync_runs[-1].get("finished") if sync_runs else None
    for img in images:
        # retired, or its list was not read in the last run: shown as such, dropped after N days
        img["in_last_sync"] = img.get("last_seen") == last_sync
    errors = {job: h["error"] for job, h in histories.items() if h.get("error")}
    return {
        "days": day_list,
        "runs": runs,
        "records_sent_per_day": {"vos": vos, "days": per_day},
        "bdii_entries": {k: v for k, v in bdii.items() if v},
        "durations": {k: v for k, v in durations.items() if v},
        "images": images,
        "errors": errors,
    }
