"""Run history: every job run appends a small record to ``<state_dir>/history/<job>.json``.

The status page (result strips, plots, the image table), ``status --json``, the probes and
``/metrics`` all read these files and the run reports (:mod:`.report`); nothing else keeps
monitoring state. A history file is versioned state (:mod:`.statefile`), rewritten
atomically on each run (temp file + rename: a reader sees the old or the new file, never
half of one) and bounded: records older than ``days`` are dropped, then the oldest ones
until the file is under ``max_bytes``. Only the job itself writes its file, under its run
lock.

A record holds the run's outcome, duration and numeric figures, the first error (cut
short), and two optional extras a job may put in its report's details:

- ``records_by_vo`` (``{vo: n}``): accounting records per VO (the ssm job counts the
  records it sent);
- ``images`` (a list of ``{"key", "name", "vo", "version", "state", "size", "error"}``):
  merged into the file's ``images`` table, which keeps for each image its last state,
  when it was last verified (a run that found it in order) and its last error.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import StateVersionError
from .statefile import dump_versioned, load_versioned

log = logging.getLogger(__name__)

HISTORY_VERSION = 1
DEFAULT_DAYS = 14
DEFAULT_MAX_BYTES = 1_000_000
ERROR_CHARS = 300  # the first error of a run, cut to this length
VERIFIED_STATES = ("new", "updated", "unchanged")


def history_path(state_dir: str | Path, job: str) -> Path:
    return Path(state_dir) / "history" / f"{job.replace(' ', '-')}.json"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def run_record(report: Any) -> dict[str, Any]:
    """The history record of a finished :class:`~fedcloud_core.report.RunReport`."""
    first = report.fatal or (report.errors[0] if report.errors else None)
    rec: dict[str, Any] = {
        "started": report.started.isoformat(),
        "finished": (report.finished or report.started).isoformat(),
        "status": report.status.value,
        "duration": round(report.duration, 3),
        "counts": {
            k: v
            for k, v in report.counts.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
        "errors": len(report.errors),
    }
    if first:
        rec["error"] = str(first)[:ERROR_CHARS]
    if report.nothing_accepted:
        rec["nothing_accepted"] = str(report.nothing_accepted)[:ERROR_CHARS]
    by_vo = report.details.get("records_by_vo")
    if isinstance(by_vo, Mapping) and by_vo:
        rec["records_by_vo"] = {str(k): int(v) for k, v in by_vo.items()}
    return rec


def _merge_images(
    table: dict[str, dict[str, Any]], seen: Iterable[Any], when: str, cutoff: datetime
) -> dict[str, dict[str, Any]]:
    out = dict(table)
    for img in seen:
        if not isinstance(img, Mapping) or not img.get("key"):
            continue
        key = str(img["key"])
        row = dict(out.get(key, {}))
        for field in ("name", "vo", "version", "state", "size", "source"):
            if img.get(field) is not None:
                row[field] = img[field]
        row["last_seen"] = when
        if img.get("state") in VERIFIED_STATES:
            row["last_verified"] = when
        if img.get("error"):
            row["last_error"] = str(img["error"])[:ERROR_CHARS]
            row["last_error_at"] = when
        out[key] = row
    return {
        k: v
        for k, v in out.items()
        if (_time(v.get("last_seen")) or datetime.max.replace(tzinfo=UTC)) >= cutoff
    }


def _bounded(doc: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    runs = doc["runs"]
    size = len(json.dumps(doc, sort_keys=True, default=str))
    while runs and size > max_bytes:
        # drop the oldest tenth at a time (at least one) until the file fits
        drop = max(1, len(runs) // 10)
        del runs[:drop]
        size = len(json.dumps(doc, sort_keys=True, default=str))
    return doc


def append_run(
    state_dir: str | Path,
    report: Any,
    *,
    days: int = DEFAULT_DAYS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> None:
    """Add ``report`` to its job's history, dropping what is older than ``days``.

    A history file of a newer version is left alone (:class:`StateVersionError`); an
    unreadable one is replaced (the history is a convenience, the run report is not).
    """
    path = history_path(state_dir, report.job)
    try:
        doc = load_versioned(path, "run history", HISTORY_VERSION) or {}
    except StateVersionError:
        raise
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable run history, starting a new one: %s", path, exc)
        doc = {}
    rec = run_record(report)
    finished = _time(rec["finished"]) or datetime.now(UTC)
    cutoff = finished - timedelta(days=days)
    runs = [r for r in doc.get("runs", []) if isinstance(r, dict)]
    runs = [r for r in runs if (_time(r.get("finished")) or cutoff) > cutoff]
    runs.append(rec)
    new: dict[str, Any] = {"job": report.job, "runs": runs}
    images = report.details.get("images")
    old_images = doc.get("images") if isinstance(doc.get("images"), dict) else {}
    if isinstance(images, list) or old_images:
        new["images"] = _merge_images(
            old_images or {}, images if isinstance(images, list) else [], rec["finished"], cutoff
        )
    dump_versioned(path, _bounded(new, max_bytes), HISTORY_VERSION, sort_keys=True, default=str)


def load_history(state_dir: str | Path, job: str) -> dict[str, Any]:
    """The job's history (``{"job", "runs": [...], "images"?}``); empty when there is none.

    Read-only. A newer or unreadable file yields no runs and an ``"error"`` saying why.
    """
    path = history_path(state_dir, job)
    try:
        doc = load_versioned(path, "run history", HISTORY_VERSION)
    except StateVersionError as exc:
        return {"job": job, "runs": [], "error": str(exc)}
    except (OSError, ValueError) as exc:
        return {"job": job, "runs": [], "error": f"{path}: unreadable: {exc}"}
    if not doc:
        return {"job": job, "runs": []}
    doc["runs"] = [r for r in doc.get("runs", []) if isinstance(r, dict)]
    return doc


# ------------------------------------------------------------------ records per VO

_CLOUD_FQAN = re.compile(r"^FQAN: *(.*)$", re.MULTILINE)
_STORAGE_GROUP = re.compile(r"<sr:Group>([^<]*)</sr:Group>")


def vo_of_fqan(fqan: str) -> str:
    """``/vo.example.org/Role=x`` and ``vo.example.org`` are both VO ``vo.example.org``."""
    text = fqan.strip()
    if text.startswith("/"):
        text = text[1:].split("/", 1)[0]
    return text or "(none)"


def records_by_vo(body: bytes) -> dict[str, int]:
    """How many usage records of each VO an APEL message holds (cloud, storage, JSON)."""
    text = body.decode("utf-8", errors="replace")
    out: dict[str, int] = {}

    def add(vo: str) -> None:
        out[vo] = out.get(vo, 0) + 1

    if text.startswith("APEL-cloud-message"):
        # on the SSM send path (500 records a message): str.find, not a regex per record
        vos: dict[str, str] = {}
        for chunk in text.split("\n%%\n"):
            i = chunk.find("FQAN:")  # the first line that starts with it (= _CLOUD_FQAN)
            while i > 0 and chunk[i - 1] != "\n":
                i = chunk.find("FQAN:", i + 1)
            if i >= 0:
                j = chunk.find("\n", i)
                raw = chunk[i + 5 : j if j >= 0 else len(chunk)]
                if raw not in vos:
                    vos[raw] = vo_of_fqan(raw)
                add(vos[raw])
            elif "VMUUID:" in chunk:
                add("(none)")
    elif "StorageUsageRecord" in text:
        for rec in text.split("<sr:StorageUsageRecord>")[1:]:
            m = _STORAGE_GROUP.search(rec)
            add(m.group(1).strip() if m else "(none)")
    elif text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return out
        for rec in doc.get("UsageRecords", []) if isinstance(doc, dict) else []:
            if isinstance(rec, dict):
                add(vo_of_fqan(str(rec.get("FQAN") or rec.get("VO") or "")))
    return out
