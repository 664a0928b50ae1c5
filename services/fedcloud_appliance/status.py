"""``fedcloud-appliance status``: each job's last run, result, figures and age."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fedcloud_core.config import AppConfig
from fedcloud_core.report import load_report

from . import registry


def collect(config: AppConfig, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    jobs = []
    for spec in registry.jobs():
        rep = load_report(config.paths.state_dir, spec.key)
        interval = spec.interval(config) if spec.interval else 0
        entry: dict[str, Any] = {"job": spec.name, "interval_minutes": interval, "last_run": None}
        if rep:
            finished = datetime.fromisoformat(rep["finished"]) if rep.get("finished") else None
            age = (now - finished).total_seconds() if finished else None
            entry.update(
                last_run=rep.get("finished"), status=rep.get("status"), age_seconds=age,
                duration=rep.get("duration"), counts=rep.get("counts", {}),
                errors=len(rep.get("errors", [])), fatal=rep.get("fatal"),
                overdue=bool(age is not None and interval and age > 2 * interval * 60),
            )
        jobs.append(entry)
    return {"site": config.site.name, "generated": now.replace(microsecond=0).isoformat(), "jobs": jobs}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render_text(data: dict[str, Any]) -> str:
    lines = [f"fedcloud-appliance status for site {data['site']} ({data['generated']})", ""]
    lines.append(f"{'job':<20} {'result':<9} {'age':>7} {'took':>7}  figures")
    for j in data["jobs"]:
        if not j["last_run"]:
            lines.append(f"{j['job']:<20} {'never':<9} {'-':>7} {'-':>7}")
            continue
        figures = ", ".join(f"{k}={v}" for k, v in sorted(j["counts"].items()))
        if j.get("fatal"):
            figures = f"fatal: {j['fatal']}"
        result = j["status"] + ("!" if j.get("overdue") else "")
        lines.append(f"{j['job']:<20} {result:<9} {_age(j['age_seconds']):>7} "
                     f"{j['duration'] or 0:>6.1f}s  {figures}")
    if any(j.get("overdue") for j in data["jobs"]):
        lines += ["", "! = overdue: no run for more than twice its interval"]
    return "\n".join(lines)


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
