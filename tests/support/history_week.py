"""A week of synthetic run history for the status page (plots, strips, image table).

``write_week(state_dir, now)`` writes what a week of scheduled runs of every job would
leave: each job's history file (built from :class:`RunReport` objects through
:func:`fedcloud_core.history.run_record`, written once through the versioned state
helper rather than appended run by run) and the last run report + heartbeat of each job.
Deterministic: the same ``now`` gives the same files.
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fedcloud_core import history
from fedcloud_core.report import RunReport, heartbeat_path, store_report
from fedcloud_core.statefile import dump_versioned

VOS = ("fedcloud.egi.eu", "ops", "vo.access.egi.eu")
IMAGES = (
    ("AlmaLinux 9", "fedcloud.egi.eu", "2026.11.02"),
    ("Ubuntu 24.04 LTS", "fedcloud.egi.eu", "2026.11.20"),
    ("EGI Docker", "vo.access.egi.eu", "1.4.0"),
    ("EGI Notebooks base", "vo.access.egi.eu", "2.1.3"),
    ("CernVM 5", "ops", "5.2"),
)
#: job key -> minutes between runs in the synthetic week
EVERY = {
    "cloud-info": 30,
    "bdii-update": 30,
    "site-bdii": 30,
    "accounting-extract": 60,
    "ssm-send": 360,
    "images-sync": 240,
}
DAYS = 7


def _report(job: str, finished: datetime, rnd: random.Random, i: int, day: int) -> RunReport:
    r = RunReport(job=job, started=finished - timedelta(seconds=5))
    if job == "cloud-info":
        r.started = finished - timedelta(seconds=rnd.uniform(8, 14))
        r.counts.update(entries=180 + 6 * day + rnd.randint(0, 3), images=12 + day // 2)
    elif job == "bdii-update":
        r.started = finished - timedelta(seconds=rnd.uniform(1, 3))
        r.counts.update(entries=180 + 6 * day + rnd.randint(0, 3))
    elif job == "site-bdii":
        r.started = finished - timedelta(seconds=rnd.uniform(1, 2))
        r.counts.update(resource_entries=186 + 6 * day)
    elif job == "accounting-extract":
        r.started = finished - timedelta(seconds=rnd.uniform(20, 40))
        r.counts.update(records_cloud=40 + rnd.randint(0, 20), records_storage=8, messages=2)
        if i % 50 == 7:
            r.error("project p-17 (ops): Nova answered 503; checkpoint kept")
    elif job == "ssm-send":
        r.started = finished - timedelta(seconds=rnd.uniform(3, 9))
        if finished.weekday() == 2 and finished.hour < 12:  # the broker was down one morning
            r.fatal = "STOMP: connection to broker.example.org:6162 refused"
            return r
        by_vo = {
            vo: int((6 + k * 9 + day * (k + 1)) * rnd.uniform(0.8, 1.2)) for k, vo in enumerate(VOS)
        }
        r.details["records_by_vo"] = by_vo
        r.counts.update(sent=4, sent_bytes=sum(by_vo.values()) * 700)
    elif job == "images-sync":
        r.started = finished - timedelta(seconds=rnd.uniform(40, 150))
        imgs: list[dict[str, Any]] = []
        for n, (name, vo, version) in enumerate(IMAGES):
            imgs.append(
                {
                    "key": f"appdb-{vo}/img-{n}",
                    "source": f"appdb-{vo}",
                    "name": name,
                    "vo": vo,
                    "version": version,
                    "state": "unchanged",
                    "size": (n + 1) * 700 * 1024 * 1024,
                    "error": None,
                }
            )
        r.details["images"] = imgs
        r.counts.update(lists_fetched=3, images_unchanged=len(imgs))
    return r


def write_week(state_dir: Path, now: datetime, *, seed: int = 16) -> None:
    """A week of history for every job ending at ``now`` (UTC, aware)."""
    rnd = random.Random(seed)
    for job, minutes in EVERY.items():
        # the last run ended 3 minutes ago; the first a week before
        steps = (DAYS * 24 * 60 - 3) // minutes
        start = now - timedelta(minutes=3 + steps * minutes)
        doc: dict[str, Any] = {"job": job, "runs": []}
        images: dict[str, dict[str, Any]] = {}
        last: RunReport | None = None
        t, i = start, 0
        while t <= now:
            r = _report(job, t, rnd, i, (t.date() - start.date()).days)
            r.finished = t
            if (
                job == "images-sync"
                and now - t < timedelta(hours=30)
                and now - t > timedelta(hours=20)
            ):
                # yesterday one image failed to download once; it is in order again since
                r.details["images"][3].update(state="failed", version="2.2.0")
                r.details["images"][3]["error"] = (
                    "download https://appdb.example.org/notebooks-2.2.0.ova: digest mismatch"
                )
                r.error("appdb-vo.access.egi.eu: image img-3: digest mismatch")
            doc["runs"].append(history.run_record(r))
            if job == "images-sync":
                when = r.finished.isoformat()
                for img in r.details["images"]:
                    row = images.setdefault(img["key"], {})
                    row.update({k: v for k, v in img.items() if k not in ("key", "error")})
                    row["last_seen"] = when
                    if img["state"] in history.VERIFIED_STATES:
                        row["last_verified"] = when
                    if img.get("error"):
                        row["last_error"] = img["error"]
                        row["last_error_at"] = when
            last = r
            t += timedelta(minutes=minutes)
            i += 1
        if images:
            doc["images"] = images
        dump_versioned(
            history.history_path(state_dir, job), doc, history.HISTORY_VERSION, sort_keys=True
        )
        if last is not None:
            store_report(state_dir, last)
            ts = (last.finished or now).timestamp()
            for p in (
                state_dir / "status" / f"{job}.json",
                heartbeat_path(state_dir, job),
            ):
                if p.exists():
                    os.utime(p, (ts, ts))
