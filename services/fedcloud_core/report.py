"""The ``RunReport`` every job returns; the CLI prints it and stores it for ``status``.

The stored report is versioned state (:mod:`.statefile`, ``"version"``); one of a newer
version is shown by ``status`` as unknown, with the reason, and replaced by the next run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import ConfigError, ExitCode, StateVersionError, is_transient
from .files import atomic_write
from .statefile import dump_versioned, load_versioned


class RunStatus(StrEnum):
    OK = "ok"
    PARTIAL = "partial"  # the run went through but some items failed
    FAILED = "failed"
    DRY_RUN = "dry-run"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class RunReport:
    """What one run of a job did: counts (figures), problems, and its outcome."""

    job: str
    started: datetime = field(default_factory=utcnow)
    finished: datetime | None = None
    dry_run: bool = False
    counts: dict[str, int | float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    fatal: str | None = None
    # the run went through but accepted nothing it exists for (e.g. every image list was
    # rejected): the heartbeat is not touched and ``status --check`` reports it
    nothing_accepted: str | None = None
    partial_runs: int = 0  # PARTIAL runs in a row up to this one (set when the report is stored)

    def count(self, key: str, n: int | float = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def error(self, message: str) -> None:
        """Record a failed item; the run goes on and ends PARTIAL."""
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def fail(self, error: BaseException, message: str | None = None) -> None:
        """End the run failed because of ``error`` (``message``: the text, default its own).

        The one place where the error's type becomes the report's ``details``: whether a
        later run may succeed (``transient``, exit 75, retried by the scheduler) and
        whether the configuration is wrong (``config_error``, exit 2).
        """
        self.fatal = message or str(error) or type(error).__name__
        self.details["transient"] = is_transient(error)
        if isinstance(error, ConfigError):
            self.details["config_error"] = True

    def finish(self) -> RunReport:
        self.finished = utcnow()
        return self

    @property
    def status(self) -> RunStatus:
        if self.fatal:
            return RunStatus.FAILED
        if self.errors:
            return RunStatus.PARTIAL
        return RunStatus.DRY_RUN if self.dry_run else RunStatus.OK

    @property
    def transient(self) -> bool:
        """The run failed in a way a later run may not see (:meth:`fail`)."""
        return bool(self.fatal and self.details.get("transient"))

    @property
    def exit_code(self) -> ExitCode:
        if self.fatal and self.details.get("config_error"):
            return ExitCode.CONFIG
        if self.transient:
            return ExitCode.TRANSIENT
        return {
            RunStatus.OK: ExitCode.OK,
            RunStatus.DRY_RUN: ExitCode.OK,
            RunStatus.PARTIAL: ExitCode.PARTIAL,
            RunStatus.FAILED: ExitCode.FAILED,
        }[self.status]

    @property
    def duration(self) -> float:
        end = self.finished or utcnow()
        return (end - self.started).total_seconds()

    def summary(self) -> str:
        figures = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        line = f"{self.job}: {self.status.value} in {self.duration:.1f}s"
        if figures:
            line += f" ({figures})"
        if self.errors:
            line += f"; {len(self.errors)} error(s)"
        if self.fatal:
            line += f"; fatal: {self.fatal}"
        elif self.nothing_accepted:
            line += f"; nothing accepted: {self.nothing_accepted}"
        return line

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["started"] = self.started.isoformat()
        d["finished"] = self.finished.isoformat() if self.finished else None
        d["status"] = self.status.value
        d["duration"] = round(self.duration, 3)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    def render_text(self) -> str:
        lines = [self.summary()]
        lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


REPORT_VERSION = 1  # format of the stored run report (status/<job>.json)


def status_path(state_dir: str | Path, job: str) -> Path:
    return Path(state_dir) / "status" / f"{job.replace(' ', '-')}.json"


def heartbeat_path(state_dir: str | Path, job: str) -> Path:
    return Path(state_dir) / "status" / f"{job.replace(' ', '-')}.heartbeat"


def store_report(state_dir: str | Path, report: RunReport) -> None:
    """Keep the last report of the job; touch its heartbeat when the run succeeded.

    A run that accepted nothing (``nothing_accepted``) does not count as a success. The
    stored report carries how many PARTIAL runs came in a row (``partial_runs``).
    """
    if report.status is RunStatus.PARTIAL:
        prev = load_report(state_dir, report.job) or {}
        streak = prev.get("partial_runs", 0) if prev.get("status") == RunStatus.PARTIAL.value else 0
        report.partial_runs = (streak if isinstance(streak, int) else 0) + 1
    else:
        report.partial_runs = 0
    path = status_path(state_dir, report.job)
    dump_versioned(path, report.to_dict(), REPORT_VERSION, sort_keys=True, default=str)
    if (
        report.status in (RunStatus.OK, RunStatus.PARTIAL)
        and not report.dry_run
        and not report.nothing_accepted
    ):
        hb = heartbeat_path(state_dir, report.job)
        atomic_write(hb, (report.finished or utcnow()).isoformat() + "\n")


def load_report(state_dir: str | Path, job: str) -> dict[str, Any] | None:
    p = status_path(state_dir, job)
    try:
        data = load_versioned(p, "run report", REPORT_VERSION)
    except StateVersionError as exc:
        return {"job": job, "status": "unknown", "fatal": str(exc)}
    except (OSError, ValueError):
        return None
    return data
