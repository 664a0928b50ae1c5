"""``GET /metrics`` on the status server: the status data in Prometheus text format.

Rendered with ``prometheus-client`` from the same data as the page and ``status --json``
(:func:`fedcloud_appliance.status.collect`); no second source of truth, nothing counted
in the web process. The names follow the Prometheus conventions (``fedcloud_`` prefix,
base units, ``_seconds`` / ``_bytes`` / ``_timestamp_seconds``); figures of "the last run"
are gauges, since each run reports its own. :data:`METRICS` lists every name with its
labels and help text (docs/operations.md is checked against it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from .status import problems

#: text format 0.0.4: what every Prometheus (2.x and 3.x) and Telegraf/VictoriaMetrics read;
#: the metric names are all classic names, so the body is the same in format 1.0.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RESULTS = ("ok", "partial", "failed", "never", "unknown")

#: name -> (labels, help)
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "fedcloud_job_last_run_timestamp_seconds": (("job",), "When the last run of the job ended"),
    "fedcloud_job_last_success_timestamp_seconds": (
        ("job",),
        "When the last successful run of the job ended (its heartbeat)",
    ),
    "fedcloud_job_last_duration_seconds": (("job",), "How long the last run took"),
    "fedcloud_job_last_result": (
        ("job", "result"),
        "1 for the result of the last run (ok, partial, failed, never, unknown), 0 for the others",
    ),
    "fedcloud_job_interval_seconds": (
        ("job",),
        "Scheduled interval of the job (0: disabled)",
    ),
    "fedcloud_job_overdue": (
        ("job",),
        "1 when the job had no successful run for more than twice its interval",
    ),
    "fedcloud_job_partial_runs": (("job",), "Partial runs in a row up to the last one"),
    "fedcloud_job_last_run_figure": (
        ("job", "figure"),
        "Every figure the last run of the job reported (records, messages, entries, ...)",
    ),
    "fedcloud_accounting_records_last_run": (
        ("type",),
        "Usage records the last accounting extract queued, per record type",
    ),
    "fedcloud_accounting_records_rejected_last_run": (
        (),
        "Usage records the last accounting extract set aside as invalid",
    ),
    "fedcloud_ssm_messages_sent_last_run": ((), "Messages the last ssm send delivered"),
    "fedcloud_bdii_entries_published_last_run": (
        ("job",),
        "LDAP entries the last cloud-info / bdii-update / site-bdii run published",
    ),
    "fedcloud_images_last_run": (
        ("state",),
        "Images the last images sync found new, updated, unchanged, failed or removed",
    ),
    "fedcloud_images_downloaded_bytes_last_run": ((), "Bytes the last images sync downloaded"),
    "fedcloud_queue_messages": (("queue",), "Messages waiting in an outgoing accounting queue"),
    "fedcloud_queue_unsent": (
        ("queue",),
        "1 when the queue holds messages that no ssm send job sends",
    ),
    "fedcloud_bdii_up": (("bdii",), "1 when the BDII answers an anonymous search"),
    "fedcloud_bdii_entries": (("bdii",), "Entries below the BDII's base"),
    "fedcloud_bdii_newest_change_timestamp_seconds": (
        ("bdii",),
        "Newest modifyTimestamp/createTimestamp below the BDII's base",
    ),
    "fedcloud_image_cache_bytes": ((), "Bytes in the image cache"),
    "fedcloud_image_cache_files": ((), "Files in the image cache"),
    "fedcloud_image_cache_free_bytes": ((), "Free bytes on the image cache's disk"),
    "fedcloud_certificate_expiry_timestamp_seconds": (
        ("use", "path"),
        "When the host certificate expires (notAfter)",
    ),
    "fedcloud_problems": ((), "Problems 'status --check' reports (0: healthy)"),
}

_IMAGE_STATES = {
    "new": "images_new",
    "updated": "images_updated",
    "unchanged": "images_unchanged",
    "failed": "images_failed",
    "removed": "images_removed",
}
_BDII_FIGURE = {"cloud-info": "entries", "bdii-update": "entries", "site-bdii": "resource_entries"}


def _ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class StatusCollector:
    """A prometheus-client collector over one status snapshot."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def _family(self, name: str) -> GaugeMetricFamily:
        labels, text = METRICS[name]
        return GaugeMetricFamily(name, text, labels=list(labels))

    def collect(self) -> Iterator[Metric]:
        d = self.data
        f = {name: self._family(name) for name in METRICS}
        now = _ts(d.get("generated")) or datetime.now(UTC).timestamp()
        jobs = {j["key"]: j for j in d.get("jobs", [])}
        for key, j in jobs.items():
            last = _ts(j.get("last_run"))
            if last is not None:
                f["fedcloud_job_last_run_timestamp_seconds"].add_metric([key], last)
            hb = j.get("heartbeat_age_seconds")
            if _num(hb):
                f["fedcloud_job_last_success_timestamp_seconds"].add_metric([key], now - hb)
            if _num(j.get("duration")):
                f["fedcloud_job_last_duration_seconds"].add_metric([key], j["duration"])
            result = j.get("status") if j.get("last_run") else "never"
            result = result if result in RESULTS else "unknown"
            for r in RESULTS:
                f["fedcloud_job_last_result"].add_metric([key, r], 1.0 if r == result else 0.0)
            f["fedcloud_job_interval_seconds"].add_metric(
                [key], 60.0 * (j.get("interval_minutes") or 0)
            )
            f["fedcloud_job_overdue"].add_metric([key], 1.0 if j.get("overdue") else 0.0)
            f["fedcloud_job_partial_runs"].add_metric([key], float(j.get("partial_runs") or 0))
            for fig, v in sorted((j.get("counts") or {}).items()):
                if _num(v):
                    f["fedcloud_job_last_run_figure"].add_metric([key, fig], v)

        def counts(job: str) -> dict[str, Any] | None:
            j = jobs.get(job)
            return j.get("counts") or {} if j and j.get("last_run") else None

        acc = counts("accounting-extract")
        if acc is not None:
            for fig, v in sorted(acc.items()):
                if fig.startswith("records_") and fig != "records_rejected" and _num(v):
                    f["fedcloud_accounting_records_last_run"].add_metric([fig[8:]], v)
            f["fedcloud_accounting_records_rejected_last_run"].add_metric(
                [], acc.get("records_rejected", 0) or 0
            )
        ssm = counts("ssm-send")
        if ssm is not None:
            f["fedcloud_ssm_messages_sent_last_run"].add_metric([], ssm.get("sent", 0) or 0)
        for job, fig in _BDII_FIGURE.items():
            c = counts(job)
            if c is not None and _num(c.get(fig)):
                f["fedcloud_bdii_entries_published_last_run"].add_metric([job], c[fig])
        img = counts("images-sync")
        if img is not None:
            for state, fig in _IMAGE_STATES.items():
                f["fedcloud_images_last_run"].add_metric([state], img.get(fig, 0) or 0)
            f["fedcloud_images_downloaded_bytes_last_run"].add_metric(
                [], img.get("bytes_downloaded", 0) or 0
            )
        for q in (d.get("queues") or {}).get("queues", []):
            if _num(q.get("elements")):
                f["fedcloud_queue_messages"].add_metric([q["queue"]], q["elements"])
            f["fedcloud_queue_unsent"].add_metric([q["queue"]], 1.0 if q.get("unsent") else 0.0)
        for b in d.get("bdiis", []):
            f["fedcloud_bdii_up"].add_metric([b["name"]], 1.0 if b.get("answered") else 0.0)
            if b.get("answered"):
                f["fedcloud_bdii_entries"].add_metric([b["name"]], b.get("entries") or 0)
            newest = _ts(b.get("newest_change"))
            if newest is not None:
                f["fedcloud_bdii_newest_change_timestamp_seconds"].add_metric([b["name"]], newest)
        cache = d.get("cache") or {}
        if cache.get("exists"):
            f["fedcloud_image_cache_bytes"].add_metric([], cache.get("bytes", 0))
            f["fedcloud_image_cache_files"].add_metric([], cache.get("files", 0))
            if _num(cache.get("disk_free")):
                f["fedcloud_image_cache_free_bytes"].add_metric([], cache["disk_free"])
        for cert in d.get("certificates", []):
            after = _ts(cert.get("not_after"))
            if after is not None:
                f["fedcloud_certificate_expiry_timestamp_seconds"].add_metric(
                    [cert["use"], cert["path"]], after
                )
        f["fedcloud_problems"].add_metric([], float(len(problems(d))))
        yield from f.values()


def render(data: dict[str, Any]) -> str:
    """The text exposition (format 0.0.4) of ``data``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(data))
    return generate_latest(registry).decode("utf-8")
