"""``fedcloud-appliance status``: the appliance on one screen, read-only.

What it shows (and where it comes from):

- each job's last run, result, figures and age: the run reports the core stores
  under ``<state_dir>/status/<job>.json`` and the heartbeats next to them;
- BDII freshness: an anonymous LDAP query of each BDII (entry count and the newest
  ``modifyTimestamp``/``createTimestamp`` below the base);
- queue depth: the dirq elements of every queue under ``<spool_dir>/outgoing/``; a
  queue holding messages that nobody sends (not in ``ssm.queues``, or the ssm job
  disabled) is flagged ``unsent``;
- cache use: bytes and files under ``image_dir`` (and the free space of its disk);
- history (:mod:`.trends`): each job's last runs, records sent per day and VO, BDII
  entries and job durations over the last week, the replicated images.

Nothing here writes: a missing directory is reported as missing, never created.
``collect`` takes the LDAP probe as a parameter so tests pass a fake one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.config import AppConfig
from fedcloud_core.report import heartbeat_path, load_report

from . import catalog, certinfo, trends

#: grace added to 2 x interval before a job counts as overdue (slow runs, jitter)
OVERDUE_GRACE = 300
LDAP_TIMEOUT = 5  # seconds; ldap3 needs an int for receive_timeout
LDAP_SIZE_LIMIT = 50000
_DIRQ_INTERM = re.compile(r"^[0-9a-f]{8}$")


@dataclass(frozen=True)
class BdiiTarget:
    """A BDII to probe: a name for the screen, an LDAP URL and a search base."""

    name: str
    url: str
    base: str


@dataclass
class BdiiProbe:
    answered: bool
    entries: int = 0
    newest: datetime | None = None
    error: str | None = None


LdapProbe = Callable[[BdiiTarget], BdiiProbe]


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "*") else host  # noqa: S104 - a listen address


def site_base(config: AppConfig) -> str:
    """The site BDII's search base, the site name DN-escaped as the site tree writes it."""
    return f"GLUE2DomainID={dnlib.escape(config.site.name)},o=glue"


def default_bdiis(config: AppConfig) -> list[BdiiTarget]:
    """The resource and site BDII as the config describes them (listen address -> client address)."""
    return [
        BdiiTarget(
            "resource", f"ldap://{_client_host(config.bdii.host)}:{config.bdii.port}", "o=glue"
        ),
        BdiiTarget(
            "site",
            f"ldap://{_client_host(config.site_bdii.host)}:{config.site_bdii.port}",
            site_base(config),
        ),
    ]


def parse_bdii_option(value: str, config: AppConfig) -> BdiiTarget:
    """``NAME=URL`` from the command line; the base follows the name (site: the domain)."""
    name, sep, url = value.partition("=")
    if not sep or not name or not url.startswith(("ldap://", "ldaps://")):
        raise ValueError(f"--bdii {value!r}: expected NAME=ldap://HOST:PORT")
    base = site_base(config) if name == "site" else "o=glue"
    return BdiiTarget(name, url, base)


def _ldap_time(value: Any) -> datetime | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            return None
    return None


def ldap_probe(target: BdiiTarget) -> BdiiProbe:
    """Anonymous subtree search: entry count and the newest change time below ``target.base``."""
    import ldap3
    from ldap3.core.exceptions import LDAPException

    server = ldap3.Server(target.url, connect_timeout=LDAP_TIMEOUT, get_info=ldap3.NONE)
    # ldap3 leaks its sockets when the connection is refused: probe the port first
    try:
        socket.create_connection((server.host, server.port), timeout=LDAP_TIMEOUT).close()
    except OSError as exc:
        return BdiiProbe(answered=False, error=f"no answer from {target.url}: {exc}")
    conn = ldap3.Connection(server, receive_timeout=LDAP_TIMEOUT, read_only=True)
    try:
        conn.bind()
    except (LDAPException, OSError, ValueError, struct.error) as exc:
        # ldap3 reports an unresolvable host as struct.error; any of these means "no answer".
        # unbind() closes the socket that a failed bind leaves open.
        conn.unbind()
        return BdiiProbe(answered=False, error=f"no answer from {target.url}: {exc}")
    try:
        gen = conn.extend.standard.paged_search(
            target.base,
            "(objectClass=*)",
            attributes=["modifyTimestamp", "createTimestamp"],
            paged_size=1000,
            generator=True,
            size_limit=LDAP_SIZE_LIMIT,
            time_limit=int(LDAP_TIMEOUT),
        )
        entries, newest = 0, None
        for item in gen:
            if item.get("type") != "searchResEntry":
                continue
            entries += 1
            attrs = item.get("attributes", {})
            for key in ("modifyTimestamp", "createTimestamp"):
                t = _ldap_time(attrs.get(key))
                if t and (newest is None or t > newest):
                    newest = t
        return BdiiProbe(answered=True, entries=entries, newest=newest)
    except LDAPException as exc:
        text = str(exc)
        if "noSuchObject" in text or "no such object" in text.lower():
            return BdiiProbe(
                answered=True, entries=0, error=f"{target.base}: no such entry (nothing published)"
            )
        return BdiiProbe(answered=True, error=f"search of {target.base} failed: {exc}")
    finally:
        conn.unbind()


def queue_depths(outgoing: Path) -> list[dict[str, Any]]:
    """Element count of every dirq queue directly under ``outgoing`` (read-only)."""
    if not outgoing.is_dir():
        return []
    from dirq.QueueSimple import QueueSimple

    out = []
    for q in sorted(p for p in outgoing.iterdir() if p.is_dir()):
        try:
            n: int | None = QueueSimple(str(q)).count()
            err = None
        except OSError as exc:
            n, err = None, str(exc)
        try:
            temp = sum(
                1
                for d in q.iterdir()
                if _DIRQ_INTERM.match(d.name) and d.is_dir()
                for f in d.iterdir()
                if f.name.endswith(".tmp")
            )
        except OSError:
            temp = 0
        out.append(
            {"queue": q.name, "path": str(q), "elements": n, "temporary": temp, "error": err}
        )
    return out


def cache_use(image_dir: Path) -> dict[str, Any]:
    """Bytes and files under the image cache (no symlinks followed) and the disk's free space."""
    info: dict[str, Any] = {
        "path": str(image_dir),
        "exists": image_dir.is_dir(),
        "bytes": 0,
        "files": 0,
    }
    if not info["exists"]:
        return info
    for root, _dirs, files in os.walk(image_dir, onerror=lambda _e: None):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            info["bytes"] += st.st_size
            info["files"] += 1
    try:
        du = shutil.disk_usage(image_dir)
        info["disk_free"] = du.free
        info["disk_total"] = du.total
    except OSError:
        pass
    return info


def _file_age(path: Path, now: datetime) -> float | None:
    try:
        return max(0.0, now.timestamp() - path.stat().st_mtime)
    except OSError:
        return None


def report_dir(state_dirs: Sequence[Path], job: str) -> Path:
    """The state directory holding the newest run report of ``job`` (the first when none).

    The BDII containers keep their state (and so their run reports and heartbeats) in a
    volume of their own (``status --reports-from``): a job's report is the newest found.
    """
    best, newest = state_dirs[0], None
    for d in state_dirs:
        rep = load_report(d, job)
        when = _parse_time(rep.get("finished")) if rep else None
        if rep and (newest is None or (when is not None and when > newest)):
            best, newest = d, when or datetime.min.replace(tzinfo=UTC)
    return best


def collect(
    config: AppConfig,
    now: datetime | None = None,
    *,
    bdiis: Sequence[BdiiTarget] | None = None,
    probe: LdapProbe | None = ldap_probe,
    jobs: Sequence[str] | None = None,
    report_dirs: Sequence[Path] = (),
) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data (JSON-ready). ``probe=None`` skips the BDIIs.

    ``report_dirs``: more state directories to read run reports from (the BDIIs' volume).
    """
    now = now or datetime.now(UTC)
    state = config.paths.state_dir
    rows = []
    for spec in catalog.jobs():
        if jobs and spec.key not in jobs:
            continue
        where = report_dir([state, *report_dirs], spec.key) if report_dirs else state
        rep = load_report(where, spec.key)
        interval = spec.interval(config) if spec.interval else 0
        hb_age = _file_age(heartbeat_path(where, spec.key), now)
        entry: dict[str, Any] = {
            "job": spec.name,
            "key": spec.key,
            "interval_minutes": interval,
            "enabled": interval > 0,
            "last_run": None,
            "status": "never",
            "heartbeat_age_seconds": hb_age,
            "overdue": False,
        }
        if rep:
            finished = _parse_time(rep.get("finished"))
            age = (now - finished).total_seconds() if finished else None
            entry.update(
                last_run=rep.get("finished"),
                status=rep.get("status", "unknown"),
                age_seconds=age,
                duration=rep.get("duration"),
                counts=rep.get("counts", {}),
                errors=len(rep.get("errors", [])),
                fatal=rep.get("fatal"),
                nothing_accepted=rep.get("nothing_accepted"),
                partial_runs=rep.get("partial_runs", 0),
                max_partial_runs=config.scheduler.max_partial_runs,
            )
        if interval > 0 and rep:
            limit = 2 * interval * 60 + OVERDUE_GRACE
            entry["overdue"] = hb_age is not None and hb_age > limit
        rows.append(entry)

    bdii_rows = []
    if probe is not None:
        cloud_info_minutes = config.scheduler.cloud_info or 60
        for target in bdiis if bdiis is not None else default_bdiis(config):
            res = probe(target)
            age = (now - res.newest).total_seconds() if res.newest else None
            bdii_rows.append(
                {
                    "name": target.name,
                    "url": target.url,
                    "base": target.base,
                    "answered": res.answered,
                    "entries": res.entries,
                    "newest_change": res.newest.isoformat() if res.newest else None,
                    "age_seconds": age,
                    "error": res.error,
                    "fresh": bool(
                        res.answered
                        and res.entries
                        and age is not None
                        and age <= 2 * cloud_info_minutes * 60 + OVERDUE_GRACE
                    ),
                }
            )

    sent = set(config.ssm.send_queues) if config.scheduler.ssm > 0 else set()
    queues = queue_depths(config.outgoing_dir)
    for row in queues:
        row["unsent"] = bool(row["elements"]) and row["queue"] not in sent
    return {
        "site": config.site.name,
        "generated": now.replace(microsecond=0).isoformat(),
        "jobs": rows,
        "bdiis": bdii_rows,
        "queues": {"path": str(config.outgoing_dir), "queues": queues, "sent_by_ssm": sorted(sent)},
        "cache": cache_use(Path(config.paths.image_dir)),
        "certificates": certinfo.collect(config),
        "history": trends.collect_history(
            [r["key"] for r in rows], [state, *report_dirs], now.astimezone(UTC)
        ),
    }


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def problems(data: dict[str, Any]) -> list[str]:
    """What makes the appliance unhealthy: failed or overdue enabled jobs, a last run that
    accepted nothing, too many partial runs in a row, silent BDIIs, queues nobody sends."""
    out = []
    for j in data["jobs"]:
        if not j["enabled"]:
            continue
        limit = j.get("max_partial_runs", 0)
        if j["status"] == "failed":
            out.append(f"{j['job']}: last run failed: {j.get('fatal') or '?'}")
        elif j.get("nothing_accepted"):
            out.append(f"{j['job']}: last run accepted nothing: {j['nothing_accepted']}")
        elif j["overdue"]:
            out.append(f"{j['job']}: no successful run for more than twice its interval")
        elif j["status"] == "partial" and limit and j.get("partial_runs", 0) >= limit:
            out.append(
                f"{j['job']}: {j['partial_runs']} partial runs in a row (some items keep failing; "
                "see the run report)"
            )
    for b in data["bdiis"]:
        if not b["answered"]:
            out.append(f"BDII {b['name']} ({b['url']}): {b['error']}")
    q = data["queues"]
    for x in q["queues"]:
        if x.get("unsent"):
            why = "not in ssm.queues" if q.get("sent_by_ssm") else "the ssm job is disabled"
            out.append(
                f"outgoing queue {x['queue']}: {x['elements']} message(s) that nobody sends "
                f"({why}): {x['path']}"
            )
    return out


# ----------------------------------------------------------------------------- text


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def job_figures(j: dict[str, Any]) -> str:
    if j.get("fatal"):
        return f"fatal: {j['fatal']}"
    if j.get("nothing_accepted"):
        return f"nothing accepted: {j['nothing_accepted']}"
    figures = ", ".join(f"{k}={v}" for k, v in sorted(j.get("counts", {}).items()))
    if j.get("errors"):
        figures += ("; " if figures else "") + f"{j['errors']} error(s)"
    return figures


def bdii_summary(b: dict[str, Any]) -> str:
    if not b["answered"]:
        return b["error"] or "no answer"
    if b["error"]:
        return b["error"]
    if not b["entries"]:
        return f"answers, but nothing under {b['base']}"
    return f"{b['entries']} entries, newest change {human_age(b['age_seconds'])} ago" + (
        "" if b["fresh"] else " (stale)"
    )


def render_text(data: dict[str, Any]) -> str:
    lines = [f"fedcloud-appliance status for site {data['site']} ({data['generated']})", ""]
    lines.append(f"{'job':<20} {'result':<9} {'age':>7} {'took':>7}  figures")
    for j in data["jobs"]:
        if not j["last_run"]:
            state = "never" if j["enabled"] else "disabled"
            lines.append(f"{j['job']:<20} {state:<9} {'-':>7} {'-':>7}")
            continue
        result = j["status"] + ("!" if j.get("overdue") else "")
        lines.append(
            f"{j['job']:<20} {result:<9} {human_age(j.get('age_seconds')):>7} "
            f"{j.get('duration') or 0:>6.1f}s  {job_figures(j)}"
        )
    if data["bdiis"]:
        lines += ["", f"{'BDII':<20} {'url':<32} state"]
        for b in data["bdiis"]:
            lines.append(f"{b['name']:<20} {b['url']:<32} {bdii_summary(b)}")
    q = data["queues"]
    lines += [
        "",
        f"outgoing queues ({q['path']}): "
        + (
            ", ".join(
                f"{x['queue']}={x['elements'] if x['elements'] is not None else '?'}"
                + (" (nobody sends it)" if x.get("unsent") else "")
                for x in q["queues"]
            )
            or "none"
        ),
    ]
    c = data["cache"]
    if c["exists"]:
        free = f", {human_bytes(c.get('disk_free'))} free" if "disk_free" in c else ""
        lines.append(
            f"image cache ({c['path']}): {human_bytes(c['bytes'])} in {c['files']} file(s){free}"
        )
    else:
        lines.append(f"image cache ({c['path']}): missing")
    if any(j.get("overdue") for j in data["jobs"]):
        lines += ["", "! = overdue: no successful run for more than twice its interval"]
    return "\n".join(lines)


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)
