"""One accounting run: for each project, extract -> record -> validate -> queue -> checkpoint.

A project's checkpoint moves to the window end only after all its messages are in
the queue. Whatever goes wrong with one project (API error, queue write error) or
one server (unknown flavor, record APEL would refuse) is reported in the RunReport
and the rest goes on; the run then ends PARTIAL.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from fedcloud_core import __version__
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import FedcloudError, OpenStackError, is_transient
from fedcloud_core.files import atomic_write
from fedcloud_core.report import RunReport, utcnow

from . import projects as project_map
from .action_cache import ActionCache
from .checkpoint import CheckpointStore, iso
from .errors import AccountingError
from .extract.facts import Action, FloatingIP, Server
from .extract.source import UsageSource
from .extract.timeline import history_matters, usage
from .finals import FinalsStore
from .messenger.batching import Message, RecordTooLarge, split
from .messenger.queue import QueueWriter
from .messenger.render import (
    ACCELERATOR,
    CLOUD,
    IP,
    STORAGE,
    MessageFormat,
    cloud_chunk,
    json_chunk,
)
from .record import build
from .record.validate import (
    check_cloud_message,
    check_cloud_record,
    check_json_message,
    check_json_record,
    check_storage_message,
    rule_known_fields,
    rule_mandatory,
)
from .server_cache import FULL_EVERY, ServerCache

log = logging.getLogger(__name__)
JOB = "accounting-extract"
ACTION_WORKERS = 4  # parallel os-instance-actions calls (one per server)
ALL_PROJECTS_MIN = 10  # from this many projects on, deleted servers and floating IPs of all at once


def _check_rendered_cloud_message(text: str) -> list[str]:
    """A cloud message parsed back the way APEL splits it. Each record passed every rule
    before it was rendered: here a record cut or merged by the rendering or the split
    would lose its mandatory fields or gain unknown ones."""
    return check_cloud_message(text, rules=(rule_mandatory, rule_known_fields))


_MESSAGE_CHECKS: dict[str, Callable[[str], list[str]]] = {
    "cloud": _check_rendered_cloud_message,
    "storage": check_storage_message,
    "ip": check_json_message,
    "accelerator": check_json_message,
}


@dataclass
class Window:
    extract_from: datetime | None = None  # overrides every project's checkpoint
    extract_to: datetime | None = None  # default: now


@dataclass
class _Batch:
    """What one project produced: rendered record chunks per message kind, rejects."""

    chunks: dict[str, list[str]] = field(
        default_factory=lambda: {k: [] for k in ("cloud", "storage", "ip", "accelerator")}
    )
    rejected: list[dict[str, Any]] = field(default_factory=list)
    finals: dict[str, datetime] = field(default_factory=dict)  # deleted servers handled


def cloud_type() -> str:
    return f"fedcloud-appliance/{__version__} (OpenStack)"


class Extractor:
    """Wired with its dependencies; :meth:`run` does the I/O."""

    def __init__(
        self,
        config: AppConfig,
        source: UsageSource,
        writer: QueueWriter | None,
        checkpoints: CheckpointStore,
        *,
        dry_run: bool = False,
        advance_checkpoints: bool = True,
        out: TextIO | None = None,
        now: Callable[[], datetime] = utcnow,
        action_cache: ActionCache | None = None,
        finals: FinalsStore | None = None,
        server_cache: ServerCache | None = None,
        window: Window | None = None,
    ):
        self.config = config
        self.acct = config.accounting
        self.source = source
        self.writer = writer
        self.checkpoints = checkpoints
        self.dry_run = dry_run
        self.advance_checkpoints = advance_checkpoints and not dry_run
        self.out = out
        self.now = now
        self.action_cache = action_cache
        self.server_cache = server_cache
        self.window = window or Window()  # default: from the checkpoints to now
        self._deleted_since: datetime | None = None  # see run()
        self._deleted: dict[str, list[Server]] | None = None
        self._all_fips = False
        self._fips: dict[str, list[FloatingIP]] | None = None
        self.finals = finals or FinalsStore(checkpoints.path.parent / "finals.json")
        self.site = build.SiteInfo(config.site.name, config.site.compute_service_name, cloud_type())
        self.rejected_dir = config.paths.state_dir / "accounting" / "rejected"

    # ------------------------------------------------------------------ the run

    def run(self, report: RunReport | None = None) -> RunReport:
        """Extract :attr:`window` for every mapped project; fills ``report`` (else a new one)."""
        window = self.window
        if report is None:
            report = RunReport(job=JOB, dry_run=self.dry_run)
        end = window.extract_to or self.now()
        report.details["window_end"] = iso(end)
        targets = project_map.resolve(self.config, self.source, report)
        report.count("projects", len(targets))
        if not targets:
            report.warn("no project is mapped to a VO: nothing to account")
            return report
        checkpoints = self.checkpoints.load()
        finals = self._load_finals(report)
        margin = timedelta(minutes=self.acct.changes_since_margin_minutes)
        lookups = self._lookups(report)
        failed: list[str] = []
        # why each failed project failed; the run's verdict if every project fails
        causes: list[FedcloudError] = []
        advanced: list[str] = []

        def start_of(target: project_map.Target) -> datetime:
            return (
                window.extract_from
                or checkpoints.get(target.id)
                or (end - timedelta(days=self.acct.first_run_window_days))
            )

        def since_of(target: project_map.Target) -> datetime:
            # the overlap only where the start is a checkpoint (clock skew with Nova): a
            # first run or an explicit --extract-from window keeps its exact start
            start = start_of(target)
            if window.extract_from is None and target.id in checkpoints:
                return start - margin
            return start

        self._deleted_since, self._deleted = None, None
        # the floating IPs too: one listing for all projects, not two per project
        self._all_fips, self._fips = len(targets) >= ALL_PROJECTS_MIN, None
        if len(targets) >= ALL_PROJECTS_MIN and (
            self.server_cache is None or not any(self.server_cache.has(t.id) for t in targets)
        ):
            # every project is listed whole: the deleted servers of all of them in one
            # listing, not two listings per project (each costs Nova a round of lookups)
            self._deleted_since = min(since_of(t) for t in targets)
        for target in targets:
            start = start_of(target)
            if target.id in checkpoints and end < checkpoints[target.id]:
                report.warn(
                    f"project {target.id}: window end {iso(end)} is before its checkpoint "
                    f"{iso(checkpoints[target.id])}; skipped so that no older snapshot is "
                    "sent after a newer one"
                )
                continue
            if start > end:
                problem = (
                    f"project {target.id}: window start {iso(start)} is after its end {iso(end)}"
                )
                report.error(problem)
                failed.append(target.id)
                causes.append(AccountingError(problem))
                continue
            since = since_of(target)
            try:
                batch = self._extract(
                    target, start, end, lookups, report, since=since, sent=finals.get(target.id, {})
                )
                messages = self._messages(target, batch, report)
                self._deliver(target, messages, report)
            except OpenStackError as exc:
                retry = "the next run retries" if is_transient(exc) else "a human must fix it"
                report.error(
                    f"project {target.id} ({target.vo}): OpenStack failed: {exc}; "
                    f"checkpoint kept, {retry}"
                )
                failed.append(target.id)
                causes.append(exc)
                continue
            except (OSError, RecordTooLarge, _MessageRejected) as exc:
                report.error(f"project {target.id} ({target.vo}): {exc}; checkpoint kept")
                failed.append(target.id)
                causes.append(exc if isinstance(exc, FedcloudError) else AccountingError(str(exc)))
                continue
            if batch.rejected:
                self._set_aside(target, end, batch.rejected, report)
            if self.advance_checkpoints:
                self._save_finals(target.id, batch.finals, end - margin, finals, report)
            if self.advance_checkpoints and self.checkpoints.advance(target.id, end):
                advanced.append(target.id)
            report.details.setdefault("windows", {})[target.id] = [iso(start), iso(end)]
        report.count("projects_failed", len(failed))
        if self.action_cache is not None and not self.dry_run:
            self.action_cache.prune(t.id for t in targets)
        if self.server_cache is not None and not self.dry_run:
            self.server_cache.prune(t.id for t in targets)
        report.details["checkpoints_advanced"] = advanced
        if failed and len(failed) == len(targets):
            # transient (exit 75, retried) only if every project failed transient
            cause = next((c for c in causes if not is_transient(c)), causes[0])
            report.fail(cause, f"every project failed ({len(failed)})")
        return report

    def _load_finals(self, report: RunReport) -> dict[str, dict[str, datetime]]:
        try:
            return self.finals.load()
        except ValueError as exc:
            report.warn(
                f"{exc}: final records of servers deleted within the changes-since margin "
                "may be queued a second time"
            )
            return {}

    def _save_finals(
        self,
        project_id: str,
        sent: Mapping[str, datetime],
        keep_after: datetime,
        known: dict[str, dict[str, datetime]],
        report: RunReport,
    ) -> None:
        try:
            self.finals.save(project_id, sent, keep_after, known)
        except OSError as exc:
            report.warn(f"project {project_id}: {self.finals.path} not written: {exc}")
            return
        merged = {**known.get(project_id, {}), **sent}
        known[project_id] = {sid: t for sid, t in merged.items() if t >= keep_after}

    def _lookups(self, report: RunReport) -> build.Lookups:
        """Flavors, images and user names, read once; each is optional for the run."""
        flavors, images, users = [], {}, {}
        try:
            flavors = list(self.source.flavors())
        except OpenStackError as exc:
            report.warn(
                f"flavors not readable ({exc}); only the flavors embedded in servers are used"
            )
        try:
            images = {i.id: i for i in self.source.images()}
        except OpenStackError as exc:
            report.warn(
                f"images not readable ({exc}); ImageId is the image id, not the marketplace URI"
            )
        try:
            users = self.source.user_names()
        except OpenStackError as exc:
            report.warn(f"users not readable ({exc}); GlobalUserName is left out")
        return build.Lookups(flavors=flavors, images=images, users=users)

    # ------------------------------------------------------------------ extract + record

    def _extract(
        self,
        target: project_map.Target,
        start: datetime,
        end: datetime,
        lookups: build.Lookups,
        report: RunReport,
        *,
        since: datetime | None = None,
        sent: Mapping[str, datetime] | None = None,
    ) -> _Batch:
        """Records of the servers alive in [start, end]; also of those deleted in [since, start)
        whose final record is not in ``sent`` (queued by an earlier run)."""
        batch = _Batch()
        since = start if since is None else min(since, start)
        sent = sent or {}
        listed = self._list_servers(target.id, since, report)
        servers = []
        for s in listed:
            if s.created > end or (s.terminated is not None and s.terminated < since):
                continue  # not alive in the window
            if s.terminated is not None and s.terminated < start and s.id in sent:
                report.count("final_records_already_queued")
                continue
            servers.append(s)
        ips = self._floating_ips(target.id)
        ip_count = build.public_ips_by_server(ips)
        actions = self._actions(target.id, servers, report)
        for server in sorted(servers, key=lambda s: s.id):
            report.count("servers")
            if server.terminated is not None:
                batch.finals[server.id] = server.terminated
            where = f"project {target.id} server {server.id}"
            flavor = lookups.flavor(server)
            if flavor is None:
                self._reject(
                    batch,
                    report,
                    where,
                    [f"flavor {server.flavor_ref!r} is unknown and not embedded in the server"],
                    {"VMUUID": server.id},
                )
                continue
            use = usage(
                server.created,
                server.terminated,
                actions.get(server.id, ()),
                end,
                shutoff_is_suspended=self.acct.shutoff_is_suspended,
                launched=server.launched is not None or server.status != "ERROR",
            )
            if use is None:
                continue
            try:
                rec = build.cloud_record(
                    server, use, flavor, target.vo, self.site, lookups, ip_count.get(server.id, 0)
                )
                wire = rec.to_wire()
            except (ValueError, ValidationError) as exc:
                self._reject(batch, report, where, [str(exc)], {"VMUUID": server.id})
                continue
            if server.name and wire.get("MachineName") != server.name:
                report.count("values_sanitised")
                report.warn(f"{where}: name {server.name!r} sent as {wire.get('MachineName')!r}")
            problems = check_cloud_record(wire)
            if problems:
                self._reject(batch, report, where, problems, wire)
                continue
            batch.chunks["cloud"].append(cloud_chunk(wire))
            if self.acct.accelerator_records:
                try:
                    acc = build.accelerator_record(rec, flavor, end)
                except (ValueError, ValidationError) as exc:
                    # the cloud record stands; only this server's accelerator record is set aside
                    self._reject(
                        batch, report, f"{where} accelerator", [str(exc)], {"VMUUID": server.id}
                    )
                    continue
                if acc is not None:
                    self._add_json(batch, report, "accelerator", acc.to_wire(), where)
        if self.acct.storage_records:
            for vol in self.source.volumes(target.id):
                if vol.created > end:
                    continue
                srec = build.storage_record(vol, target.vo, self.site, lookups.users, end)
                batch.chunks["storage"].append(srec.to_xml())
        if self.acct.ip_records:
            for iprec in build.ip_records(target.id, target.vo, ips, self.site, end):
                self._add_json(batch, report, "ip", iprec.to_wire(), f"project {target.id} IPs")
        for kind, chunks in batch.chunks.items():
            report.count(f"records_{kind}", len(chunks))
        return batch

    def _list_servers(self, project_id: str, since: datetime, report: RunReport) -> list[Server]:
        """The project's servers not deleted plus those deleted since ``since``: the changes
        since the last listing on top of it when it is usable (:mod:`.server_cache`), else
        a complete listing."""
        if self.server_cache is None:
            return self._full_list(project_id, since)
        listed_at = self.now()
        margin = timedelta(minutes=self.acct.changes_since_margin_minutes)
        last = self.server_cache.load(project_id)
        if (
            last is not None
            and since <= last.listed_at - margin
            and listed_at - last.full_at < FULL_EVERY
        ):
            merged = dict(last.servers)
            for s in self.source.changed_servers(project_id, since):
                merged[s.id] = s
            servers = [merged[k] for k in sorted(merged)]
            full_at = last.full_at
            report.count("server_lists_changes_only")
        else:
            servers = self._full_list(project_id, since)
            full_at = listed_at
            report.count("server_lists_full")
        if not self.dry_run:
            try:
                self.server_cache.save(project_id, servers, listed_at, full_at)
            except OSError as exc:
                report.warn(f"project {project_id}: server list not kept: {exc}")
        return servers

    def _floating_ips(self, project_id: str) -> Sequence[FloatingIP]:
        if not self._all_fips:
            return self.source.floating_ips(project_id)
        if self._fips is None:
            self._fips = self.source.all_floating_ips()
        return self._fips.get(project_id, [])

    def _full_list(self, project_id: str, since: datetime) -> list[Server]:
        """Every server of the project not deleted, plus those deleted since ``since``:
        these from the listing of all projects' deleted servers when there is one."""
        if self._deleted_since is None or since < self._deleted_since:
            return list(self.source.servers(project_id, since))
        if self._deleted is None:
            self._deleted = {}
            for s in self.source.deleted_servers(self._deleted_since):
                self._deleted.setdefault(s.project_id, []).append(s)
        merged = {s.id: s for s in self.source.servers(project_id, None)}
        for s in self._deleted.get(project_id, ()):
            merged[s.id] = s
        return [merged[k] for k in sorted(merged)]

    def _actions(
        self, project_id: str, servers: list[Server], report: RunReport
    ) -> dict[str, Sequence[Action]]:
        """The instance actions of the ``servers`` whose history can change their record
        (:func:`history_matters`; the others get none): from the cache when still valid,
        else the API."""
        max_build = timedelta(seconds=self.acct.max_build_seconds)
        needed = [s for s in servers if history_matters(s, max_build)]
        report.count("action_lists_skipped", len(servers) - len(needed))
        if self.action_cache is None:
            fresh = self._all_actions([s.id for s in needed])
            report.count("action_lists_read", len(fresh))
            return fresh
        read_at = self.now()
        cached = self.action_cache.load(project_id)
        known: dict[str, Sequence[Action]] = dict(self.action_cache.hits(cached, needed))
        fresh = self._all_actions([s.id for s in needed if s.id not in known])
        report.count("action_lists_read", len(fresh))
        report.count("action_lists_cached", len(known))
        actions = {**known, **fresh}
        if not fresh and set(known) == set(cached):
            return actions  # the file would be written again byte for byte
        if not self.dry_run:
            try:
                self.action_cache.save(project_id, needed, actions, read_at)
            except OSError as exc:
                report.warn(f"project {project_id}: instance-action cache not written: {exc}")
        return actions

    def _all_actions(self, server_ids: list[str]) -> dict[str, Sequence[Action]]:
        """Instance actions of many servers, fetched by a small bounded pool of threads."""
        if len(server_ids) < 2 or ACTION_WORKERS < 2:
            return {sid: self.source.actions(sid) for sid in server_ids}
        with ThreadPoolExecutor(max_workers=ACTION_WORKERS) as pool:
            return dict(zip(server_ids, pool.map(self.source.actions, server_ids), strict=True))

    def _add_json(
        self, batch: _Batch, report: RunReport, kind: str, wire: dict[str, Any], where: str
    ) -> None:
        from .record.extra import ACC_TYPE, IP_TYPE

        problems = check_json_record(IP_TYPE if kind == "ip" else ACC_TYPE, wire)
        if problems:
            self._reject(batch, report, where, problems, wire)
        else:
            batch.chunks[kind].append(json_chunk(wire))

    def _reject(
        self,
        batch: _Batch,
        report: RunReport,
        where: str,
        problems: list[str],
        record: dict[str, Any],
    ) -> None:
        report.count("records_rejected")
        report.error(f"{where}: record set aside: {'; '.join(problems)}")
        batch.rejected.append({"where": where, "problems": problems, "record": record})

    def _set_aside(
        self,
        target: project_map.Target,
        end: datetime,
        rejected: list[dict[str, Any]],
        report: RunReport,
    ) -> None:
        if self.dry_run:
            return
        path = self.rejected_dir / f"{iso(end)}-{target.id}.json"
        try:
            atomic_write(path, json.dumps(rejected, indent=2, sort_keys=True, default=str) + "\n")
            report.details.setdefault("rejected_files", []).append(str(path))
        except OSError as exc:
            report.warn(f"could not keep the rejected records in {path}: {exc}")

    # ------------------------------------------------------------------ messenger

    def _messages(
        self, target: project_map.Target, batch: _Batch, report: RunReport
    ) -> list[Message]:
        formats: dict[str, MessageFormat] = {
            "cloud": CLOUD,
            "storage": STORAGE,
            "ip": IP,
            "accelerator": ACCELERATOR,
        }
        out: list[Message] = []
        for kind, chunks in batch.chunks.items():
            if not chunks:
                continue
            msgs = split(
                formats[kind],
                chunks,
                max_records=self.acct.records_per_message,
                max_bytes=self.acct.max_message_bytes,
            )
            for m in msgs:
                problems = _MESSAGE_CHECKS[kind](m.body.decode("ascii", errors="replace"))
                if problems:
                    raise _MessageRejected(
                        f"a {kind} message fails APEL's rules: {'; '.join(problems[:5])}"
                    )
            out += msgs
        return out

    def _deliver(
        self, target: project_map.Target, messages: list[Message], report: RunReport
    ) -> None:
        names = self.acct.queues
        for i, m in enumerate(messages, 1):
            queue = getattr(names, m.kind)
            if self.dry_run:
                out = self.out or sys.stdout
                out.write(
                    f"### {queue} message {i}/{len(messages)} of project {target.id} "
                    f"({m.records} records, {len(m.body)} bytes)\n"
                )
                out.write(m.body.decode("ascii"))
            else:
                if self.writer is None:
                    raise OSError("no queue writer configured")
                self.writer.add(queue, m.body)
            report.count("messages")
            report.count(f"messages_{m.kind}")


class _MessageRejected(Exception):
    pass


def checkpoint_path(config: AppConfig) -> Path:
    return config.paths.state_dir / "accounting" / "checkpoints.json"


def action_cache_dir(config: AppConfig) -> Path:
    return config.paths.state_dir / "accounting" / "actions"


def server_cache_dir(config: AppConfig) -> Path:
    return config.paths.state_dir / "accounting" / "servers"
