"""``fedcloud-appliance probe <check>``: Nagios / Icinga / ARGO plugins, read-only.

Each probe follows the monitoring plugin API: one line
``CHECK STATUS - text | perfdata`` on stdout and the exit code 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN (also for a bad config or option, or ``--timeout``). ``-w``/``-c``
take a Nagios threshold range (``10``, ``10:``, ``~:10``, ``@10:20``) for the probe's main
figure; each has a default that fits the configured intervals. Perfdata is
``'label'=value[UOM];warn;crit;min;max``.

The probes read what ``status`` and the status page read (the run reports and
heartbeats under ``<state_dir>/status``, the run history, the outgoing queues, the image
cache, the certificate files) and write nothing:

- ``bdii``: an LDAP URL answers, holds GLUE2 services and shares, and its newest change
  is younger than ``-w``/``-c`` minutes;
- ``accounting``: hours since the last successful extract and send, outgoing backlog
  (messages, age of the oldest) and rejected records;
- ``images``: hours since the last successful sync, rejected lists, failed images, free
  space of the cache disk;
- ``certificate``: days until the host certificate expires, the key matches, the chain
  verifies against the CA directory (IGTF);
- ``openstack``: a token is issued, Keystone, Nova and Glance answer; latency.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

from fedcloud_core.config import AppConfig
from fedcloud_core.report import heartbeat_path, load_report

from .status import BdiiTarget, default_bdiis, queue_depths, report_dir

GRACE_MINUTES = 5


class State(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class ProbeError(Exception):
    """The probe cannot tell (bad option, unreadable input): UNKNOWN."""


class ProbeTimeout(BaseException):
    """``--timeout`` ran out (UNKNOWN). A BaseException, so that the network libraries'
    broad ``except Exception`` / ``except OSError`` cannot turn it into a CRITICAL."""


# ------------------------------------------------------------------ thresholds


@dataclass(frozen=True)
class Range:
    """A Nagios threshold range: alert when the value is outside ``start..end``
    (inside it with ``@``)."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Range:
        raw = text.strip()
        spec = raw
        inside = spec.startswith("@")
        if inside:
            spec = spec[1:]
        try:
            if ":" in spec:
                lo, hi = spec.split(":", 1)
                start = -math.inf if lo == "~" else float(lo or 0)
                end = float(hi) if hi else math.inf
            else:
                start, end = 0.0, float(spec)
        except ValueError:
            raise ProbeError(f"not a threshold range: {text!r}") from None
        if start > end:
            raise ProbeError(f"threshold range {text!r}: start is above end")
        return cls(start, end, inside, raw)

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        return self.text


def _rng(value: str | None, default: str) -> Range:
    return Range.parse(value if value is not None else default)


@dataclass
class Perf:
    label: str
    value: float | None
    uom: str = ""
    warn: Range | None = None
    crit: Range | None = None
    min: float | None = None
    max: float | None = None

    def render(self) -> str:
        def num(v: float | None) -> str:
            if v is None:
                return ""
            return str(int(v)) if float(v).is_integer() else f"{v:.3f}".rstrip("0").rstrip(".")

        value = "U" if self.value is None else num(self.value)
        parts = [
            f"'{self.label}'={value}{self.uom if self.value is not None else ''}",
            str(self.warn or ""),
            str(self.crit or ""),
            num(self.min),
            num(self.max),
        ]
        return ";".join(parts).rstrip(";")


#: which state wins when a probe finds several things (UNKNOWN above WARNING, as Icinga)
_RANK = {State.OK: 0, State.WARNING: 1, State.UNKNOWN: 2, State.CRITICAL: 3}


@dataclass
class Result:
    check: str
    state: State = State.OK
    messages: list[tuple[State, str]] = field(default_factory=list)
    perf: list[Perf] = field(default_factory=list)

    def add(self, state: State, text: str) -> None:
        self.messages.append((state, text))
        if _RANK[state] > _RANK[self.state]:
            self.state = state

    def grade(
        self, value: float | None, warn: Range, crit: Range, text: str, *, missing: State
    ) -> None:
        """Add ``text`` graded by the thresholds (``missing``: the state when no value)."""
        if value is None:
            self.add(missing, text)
        elif crit.alerts(value):
            self.add(State.CRITICAL, text)
        elif warn.alerts(value):
            self.add(State.WARNING, text)
        else:
            self.add(State.OK, text)

    @property
    def line(self) -> str:
        worst = [t for s, t in self.messages if s is self.state and s is not State.OK]
        rest = [t for s, t in self.messages if not (s is self.state and s is not State.OK)]
        text = "; ".join(worst + rest) or "no data"
        perf = " ".join(p.render() for p in self.perf)
        text = " ".join(text.replace("|", "/").split())  # one line; '|' starts the perfdata
        return f"{self.check.upper()} {self.state.name} - {text}" + (f" | {perf}" if perf else "")


# ------------------------------------------------------------------ helpers


def _age(path: Path, now: float) -> float | None:
    try:
        return max(0.0, now - path.stat().st_mtime)
    except OSError:
        return None


def _heartbeat_age(
    state_dirs: Sequence[Path], job: str, now: float
) -> tuple[float | None, dict[str, Any] | None]:
    where = report_dir(list(state_dirs), job)
    return _age(heartbeat_path(where, job), now), load_report(where, job)


def _interval(cfg: AppConfig, job: str) -> int:
    from . import catalog

    for spec in catalog.jobs():
        if spec.key == job:
            return spec.interval(cfg) if spec.interval else 0
    return 0


def _default_hours(cfg: AppConfig, job: str, factor: int) -> str:
    minutes = _interval(cfg, job) or 60
    return f"{round((factor * minutes + GRACE_MINUTES) / 60, 1):g}"


def _fmt_hours(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds / 3600:.1f} h ago"


def _last_run_problem(res: Result, name: str, rep: dict[str, Any] | None) -> None:
    if not rep:
        return
    if rep.get("status") == "failed":
        res.add(State.CRITICAL, f"last {name} failed: {rep.get('fatal') or '?'}")
    elif rep.get("status") == "unknown":
        res.add(State.UNKNOWN, f"{name}: {rep.get('fatal')}")
    elif rep.get("nothing_accepted"):
        res.add(State.CRITICAL, f"last {name} accepted nothing: {rep['nothing_accepted']}")


# ------------------------------------------------------------------ bdii


@dataclass
class BdiiContent:
    entries: int = 0
    services: int = 0
    shares: int = 0
    newest: datetime | None = None
    #: services per admin domain (GLUE2ServiceAdminDomainForeignKey, lower case)
    domains: dict[str, int] = field(default_factory=dict)


def ldap_content(url: str, base: str, timeout: float) -> BdiiContent:
    """Anonymous subtree search below ``base``: entries, services, shares, newest change."""
    import socket

    import ldap3
    from ldap3.core.exceptions import LDAPException, LDAPNoSuchObjectResult

    from .status import _ldap_time

    server = ldap3.Server(url, connect_timeout=max(1, int(timeout)), get_info=ldap3.NONE)
    try:
        socket.create_connection((server.host, server.port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"no answer from {url}: {exc}") from None
    conn = ldap3.Connection(server, receive_timeout=max(1, int(timeout)), read_only=True)
    try:
        conn.bind()
        out = BdiiContent()
        for item in conn.extend.standard.paged_search(
            base,
            "(objectClass=*)",
            attributes=[
                "objectClass",
                "modifyTimestamp",
                "createTimestamp",
                "GLUE2ServiceAdminDomainForeignKey",
            ],
            paged_size=1000,
            generator=True,
            time_limit=max(1, int(timeout)),
        ):
            if item.get("type") != "searchResEntry":
                continue
            out.entries += 1
            attrs = item.get("attributes", {})
            classes = {str(c).lower() for c in attrs.get("objectClass", [])}
            if "glue2service" in classes:
                out.services += 1
                for d in attrs.get("GLUE2ServiceAdminDomainForeignKey") or []:
                    out.domains[str(d).lower()] = out.domains.get(str(d).lower(), 0) + 1
            out.shares += "glue2share" in classes
            for key in ("modifyTimestamp", "createTimestamp"):
                t = _ldap_time(attrs.get(key))
                if t and (out.newest is None or t > out.newest):
                    out.newest = t
        return out
    except LDAPNoSuchObjectResult:
        return BdiiContent()
    except (LDAPException, OSError) as exc:
        if "noSuchObject" in str(exc):
            return BdiiContent()
        raise ConnectionError(f"{url}: search of {base} failed: {exc}") from None
    finally:
        conn.unbind()


LdapContent = Callable[[str, str, float], BdiiContent]


def probe_bdii(
    cfg: AppConfig,
    *,
    warning: str | None = None,
    critical: str | None = None,
    timeout: float = 10.0,
    target: str = "resource",
    url: str | None = None,
    base: str | None = None,
    now: datetime | None = None,
    content: LdapContent = ldap_content,
) -> Result:
    """Newest change (minutes) against -w/-c; no answer or no service/share is CRITICAL."""
    now = now or datetime.now(UTC)
    known = {t.name: t for t in default_bdiis(cfg)}
    if target not in known:
        raise ProbeError(f"--bdii {target!r}: expected one of {', '.join(known)}")
    t = known[target]
    t = BdiiTarget(t.name, url or t.url, base or t.base)
    minutes = cfg.scheduler.cloud_info or 60
    warn = _rng(warning, f"{2 * minutes + GRACE_MINUTES}")
    crit = _rng(critical, f"{6 * minutes + GRACE_MINUTES}")
    res = Result("bdii")
    t0 = time.monotonic()
    try:
        c = content(t.url, t.base, timeout)
    except ConnectionError as exc:
        res.add(State.CRITICAL, f"{t.name} BDII {exc}")
        res.perf.append(Perf("time", round(time.monotonic() - t0, 3), "s", min=0))
        return res
    took = round(time.monotonic() - t0, 3)
    age = (now - c.newest).total_seconds() / 60 if c.newest else None
    if not c.entries:
        res.add(State.CRITICAL, f"{t.name} BDII {t.url} holds nothing under {t.base}")
    else:
        site = cfg.site.name
        if c.services and c.domains and not c.domains.get(site.lower()):
            res.add(
                State.CRITICAL,
                f"no GLUE2 service of site {site} under {t.base} (services of "
                + ", ".join(sorted(c.domains))
                + ")",
            )
        elif not c.services:
            res.add(State.CRITICAL, f"no GLUE2 service under {t.base}")
        if not c.shares:
            res.add(State.CRITICAL, f"no GLUE2 share under {t.base}")
        res.grade(
            age,
            warn,
            crit,
            f"{t.name} BDII {t.url}: {c.entries} entries, {c.services} service(s), "
            f"{c.shares} share(s), newest change "
            + (f"{age:.0f} min ago" if age is not None else "unknown"),
            missing=State.WARNING,
        )
    res.perf += [
        Perf("entries", c.entries, min=0),
        Perf("services", c.services, min=0),
        Perf("shares", c.shares, min=0),
        Perf("age", None if age is None else round(age, 1), "min", warn, crit, min=0),
        Perf("time", took, "s", min=0),
    ]
    return res


# ------------------------------------------------------------------ accounting


def _oldest_message_age(queue_path: Path, now: float) -> float | None:
    """Age of the oldest element of a dirq queue (its file's mtime), without locking it."""
    oldest = None
    try:
        for d in queue_path.iterdir():
            if not d.is_dir() or len(d.name) != 8:
                continue
            for f in d.iterdir():
                if f.name.endswith((".tmp", ".lck")):
                    continue
                try:
                    m = f.stat().st_mtime
                except OSError:
                    continue
                oldest = m if oldest is None or m < oldest else oldest
    except OSError:
        return None
    return None if oldest is None else max(0.0, now - oldest)


def probe_accounting(
    cfg: AppConfig,
    *,
    warning: str | None = None,
    critical: str | None = None,
    report_dirs: Sequence[Path] = (),
    now: float | None = None,
) -> Result:
    """Hours since the last successful extract / send against -w/-c (default: 2x / 4x the
    job's interval); the oldest queued message against the send thresholds; rejected
    records and set-aside messages of the last runs are a WARNING."""
    now = time.time() if now is None else now
    dirs = [cfg.paths.state_dir, *report_dirs]
    res = Result("accounting")
    backlog_warn: Range | None = None
    backlog_crit = Range()
    for job, name in (("accounting-extract", "extract"), ("ssm-send", "send")):
        warn = _rng(warning, _default_hours(cfg, job, 2))
        crit = _rng(critical, _default_hours(cfg, job, 4))
        if job == "ssm-send":
            backlog_warn, backlog_crit = warn, crit
        if not _interval(cfg, job):
            res.add(State.OK, f"{name} disabled")
            continue
        age, rep = _heartbeat_age(dirs, job, now)
        hours = None if age is None else age / 3600
        res.grade(
            hours, warn, crit, f"last successful {name} {_fmt_hours(age)}", missing=State.CRITICAL
        )
        _last_run_problem(res, name, rep)
        counts = (rep or {}).get("counts", {})
        if job == "accounting-extract":
            rejected = int(counts.get("records_rejected", 0) or 0)
            if rejected:
                res.add(State.WARNING, f"{rejected} record(s) rejected by the last extract")
            res.perf.append(Perf("rejected_records", rejected, min=0))
        else:
            aside = int(counts.get("set_aside", 0) or 0)
            if aside:
                res.add(State.WARNING, f"{aside} message(s) set aside by the last send")
            res.perf.append(Perf("set_aside_messages", aside, min=0))
        res.perf.append(
            Perf(f"{name}_age", None if hours is None else round(hours, 2), "h", warn, crit, min=0)
        )
    outgoing = cfg.outgoing_dir
    queues = queue_depths(outgoing)
    backlog = sum(q["elements"] or 0 for q in queues)
    ages = [_oldest_message_age(Path(q["path"]), now) for q in queues if q["elements"]]
    oldest = max((a for a in ages if a is not None), default=None)
    oldest_h = None if oldest is None else oldest / 3600
    if backlog and oldest_h is not None and backlog_warn is not None:
        res.grade(
            oldest_h,
            backlog_warn,
            backlog_crit,
            f"{backlog} message(s) queued, the oldest {oldest_h:.1f} h old",
            missing=State.OK,
        )
    else:
        res.add(State.OK, f"{backlog} message(s) queued")
    res.perf += [
        Perf("backlog", backlog, min=0),
        Perf("oldest_message_age", 0 if oldest_h is None else round(oldest_h, 2), "h", min=0),
    ]
    return res


# ------------------------------------------------------------------ images


def probe_images(
    cfg: AppConfig,
    *,
    warning: str | None = None,
    critical: str | None = None,
    free_warning: float = 10.0,
    free_critical: float = 5.0,
    report_dirs: Sequence[Path] = (),
    now: float | None = None,
) -> Result:
    """Hours since the last successful sync against -w/-c; rejected lists and failed
    images of the last run are a WARNING; the cache disk's free space (percent) against
    ``--free-warning``/``--free-critical``."""
    now = time.time() if now is None else now
    res = Result("images")
    job = "images-sync"
    warn = _rng(warning, _default_hours(cfg, job, 2))
    crit = _rng(critical, _default_hours(cfg, job, 4))
    age, rep = _heartbeat_age([cfg.paths.state_dir, *report_dirs], job, now)
    hours = None if age is None else age / 3600
    if not _interval(cfg, job):
        res.add(State.OK, "images sync disabled")
    else:
        res.grade(
            hours, warn, crit, f"last successful sync {_fmt_hours(age)}", missing=State.CRITICAL
        )
        _last_run_problem(res, "sync", rep)
    counts = (rep or {}).get("counts", {})
    lists_rej = int(counts.get("lists_rejected", 0) or 0)
    failed = int(counts.get("images_failed", 0) or 0)
    if lists_rej:
        names = ", ".join(sorted((rep or {}).get("details", {}).get("rejected", {}))) or "?"
        res.add(State.WARNING, f"{lists_rej} image list(s) rejected ({names})")
    if failed:
        res.add(State.WARNING, f"{failed} image(s) failed in the last sync")
    image_dir = Path(cfg.paths.image_dir)
    free_pct = None
    try:
        import shutil

        du = shutil.disk_usage(image_dir)
        free_pct = 100.0 * du.free / du.total if du.total else None
        free_b = du.free
    except OSError as exc:
        res.add(State.WARNING, f"image cache {image_dir}: {exc.strerror or exc}")
        free_b = None
    if free_pct is not None:
        if free_pct < free_critical:
            res.add(State.CRITICAL, f"cache disk {free_pct:.1f}% free")
        elif free_pct < free_warning:
            res.add(State.WARNING, f"cache disk {free_pct:.1f}% free")
        else:
            res.add(State.OK, f"cache disk {free_pct:.0f}% free")
    res.perf += [
        Perf("sync_age", None if hours is None else round(hours, 2), "h", warn, crit, min=0),
        Perf("lists_fetched", int(counts.get("lists_fetched", 0) or 0), min=0),
        Perf("lists_rejected", lists_rej, min=0),
        Perf("images_failed", failed, min=0),
        Perf(
            "cache_free",
            None if free_pct is None else round(free_pct, 1),
            "%",
            Range(free_warning, math.inf, text=f"{free_warning:g}:"),
            Range(free_critical, math.inf, text=f"{free_critical:g}:"),
            0,
            100,
        ),
        Perf("cache_free_bytes", free_b, "B", min=0),
    ]
    return res


# ------------------------------------------------------------------ certificate


@dataclass
class CertFacts:
    not_after: datetime
    subject: str
    key_matches: bool
    chain_error: str | None  # None: verified


def cert_facts(cert: Path, key: Path | None, capath: Path | None, timeout: float) -> CertFacts:
    """Read the certificate (and key); verify the chain with ``openssl verify -CApath``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from fedcloud_core.errors import ToolError
    from fedcloud_core.external import run_tool

    try:
        c = x509.load_pem_x509_certificate(cert.read_bytes())
    except OSError as exc:
        raise ProbeError(f"certificate {cert}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ProbeError(f"certificate {cert}: not a PEM certificate: {exc}") from None
    matches = True
    if key is not None:
        try:
            k = serialization.load_pem_private_key(key.read_bytes(), password=None)
        except OSError as exc:
            raise ProbeError(f"key {key}: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise ProbeError(f"key {key}: not an unencrypted PEM key: {exc}") from None
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        matches = k.public_key().public_bytes(enc, pub) == c.public_key().public_bytes(enc, pub)
    chain_error = None
    if capath is not None:
        try:
            # -no_check_time: the expiry is graded by the thresholds, not here
            proc = run_tool(
                ["openssl", "verify", "-no_check_time", "-CApath", str(capath), str(cert)],
                timeout=timeout,
                check=False,
            )
            if proc.returncode != 0:
                out = (proc.stdout + proc.stderr).decode(errors="replace").strip().splitlines()
                chain_error = next((ln for ln in out if "error" in ln), out[-1] if out else "?")
        except ToolError as exc:
            raise ProbeError(str(exc)) from None
    return CertFacts(c.not_valid_after_utc, c.subject.rfc4514_string(), matches, chain_error)


def probe_certificate(
    cfg: AppConfig,
    *,
    warning: str | None = None,
    critical: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    capath: Path | None = None,
    timeout: float = 10.0,
    now: datetime | None = None,
) -> Result:
    """Days to expiry against -w/-c (default 30 / 7: alert below); a key that does not
    match or a chain that does not verify is CRITICAL."""
    now = now or datetime.now(UTC)
    cert = cert or cfg.ssm.certificate
    key = key or cfg.ssm.key
    capath = capath or cfg.ssm.capath
    warn = _rng(warning, "30:")
    crit = _rng(critical, "7:")
    res = Result("certificate")
    f = cert_facts(cert, key if key and key.exists() else None, capath, timeout)
    if key and not key.exists():
        res.add(State.WARNING, f"key {key} not found (not checked)")
    days = (f.not_after - now).total_seconds() / 86400
    when = f.not_after.strftime("%Y-%m-%d %H:%M UTC")
    res.grade(
        days,
        warn,
        crit,
        (f"{f.subject} expires in {days:.1f} days ({when})")
        if days >= 0
        else f"{f.subject} expired {-days:.1f} days ago ({when})",
        missing=State.UNKNOWN,
    )
    if not f.key_matches:
        res.add(State.CRITICAL, f"key {key} does not match the certificate")
    if f.chain_error:
        res.add(State.CRITICAL, f"chain does not verify against {capath}: {f.chain_error}")
    res.perf.append(Perf("days_left", round(days, 2), "d", warn, crit))
    return res


# ------------------------------------------------------------------ openstack


def probe_openstack(
    cfg: AppConfig,
    *,
    warning: str | None = None,
    critical: str | None = None,
    timeout: float = 10.0,
    session: Any = None,
) -> Result:
    """A token is issued and Keystone, Nova and Glance answer; the slowest answer (seconds)
    against -w/-c (default 5 / 10)."""
    from keystoneauth1 import exceptions as ks_exc

    from fedcloud_core.openstack import make_session, resolve_cloud

    warn = _rng(warning, "5")
    crit = _rng(critical, "10")
    res = Result("openstack")
    settings = resolve_cloud(cfg.openstack)
    sess = session or make_session(cfg.openstack)
    kw: dict[str, Any] = {"interface": settings.interface, "region_name": settings.region_name}
    t0 = time.monotonic()
    try:
        sess.get_token()
    except ks_exc.ClientException as exc:
        res.add(State.CRITICAL, f"no token: {type(exc).__name__}: {exc}")
        return res
    token_s = time.monotonic() - t0
    res.grade(token_s, warn, crit, f"token in {token_s:.2f}s", missing=State.UNKNOWN)
    res.perf.append(Perf("token_time", round(token_s, 3), "s", warn, crit, 0))
    for service, label in (("identity", "keystone"), ("compute", "nova"), ("image", "glance")):
        t0 = time.monotonic()
        try:
            url = sess.get_endpoint(service_type=service, **kw)
            if not url:
                res.add(State.CRITICAL, f"{label}: no {service} endpoint in the catalog")
                res.perf.append(Perf(f"{label}_time", None, "s"))
                continue
            resp = sess.get(url, raise_exc=False, timeout=timeout)
            took = time.monotonic() - t0
            if resp.status_code >= 400 and resp.status_code not in (401, 403, 404):
                res.add(State.CRITICAL, f"{label} answers HTTP {resp.status_code}")
            else:
                res.grade(took, warn, crit, f"{label} {took:.2f}s", missing=State.UNKNOWN)
        except ks_exc.ClientException as exc:
            took = time.monotonic() - t0
            res.add(State.CRITICAL, f"{label}: {type(exc).__name__}: {exc}")
        res.perf.append(Perf(f"{label}_time", round(took, 3), "s", warn, crit, 0))
    return res


# ------------------------------------------------------------------ running


CHECKS = ("bdii", "accounting", "images", "certificate", "openstack")


@contextmanager
def deadline(seconds: float, check: str) -> Iterator[None]:
    """Raise :class:`ProbeTimeout` after ``seconds`` (main thread only; SIGALRM)."""
    if seconds <= 0 or os.name != "posix":
        yield
        return

    def fire(_sig: int, _frame: object) -> None:
        raise ProbeTimeout(f"{check} probe timed out after {seconds:g}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def unknown(check: str, text: str) -> Result:
    r = Result(check)
    r.add(State.UNKNOWN, text)
    return r


def run_probe(check: str, cfg: AppConfig, args: Any) -> Result:
    """Run ``check`` with the CLI options in ``args``."""
    w, c, timeout = args.warning, args.critical, args.timeout
    dirs = list(args.reports_from or [])
    if check == "bdii":
        return probe_bdii(
            cfg,
            warning=w,
            critical=c,
            timeout=timeout,
            target=args.bdii,
            url=args.url,
            base=args.base,
        )
    if check == "accounting":
        return probe_accounting(cfg, warning=w, critical=c, report_dirs=dirs)
    if check == "images":
        return probe_images(
            cfg,
            warning=w,
            critical=c,
            free_warning=args.free_warning,
            free_critical=args.free_critical,
            report_dirs=dirs,
        )
    if check == "certificate":
        return probe_certificate(
            cfg,
            warning=w,
            critical=c,
            cert=args.cert,
            key=args.key,
            capath=args.capath,
            timeout=timeout,
        )
    if check == "openstack":
        return probe_openstack(cfg, warning=w, critical=c, timeout=timeout)
    raise ProbeError(f"unknown check {check!r}")
