"""Detached daemons tracked by PID file; stopped by PID, never by name.

Each daemon is started in its own session, so its PID is also its process group:
stopping it signals the group (uWSGI workers, Erlang helpers) and then checks
every PID that belonged to it. A PID file is trusted only while the process
still runs the command it was started with (PID reuse guard).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ProcError(RuntimeError):
    """A daemon could not be started or stopped."""


@dataclass(frozen=True)
class Tracked:
    name: str
    pid: int
    marker: str  # a substring of the command line recorded at start


def _read_proc(pid: int, what: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes().decode(errors="replace")
    except OSError:
        return None


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (PID 1 here may never reap)."""
    stat = _read_proc(pid, "stat")
    if stat is None:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    return (_read_proc(pid, "cmdline") or "").replace("\0", " ").strip()


def group_members(pgid: int) -> list[int]:
    """Live PIDs whose process group is ``pgid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read_proc(int(entry.name), "stat")
        if not stat:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(entry.name))
    return sorted(out)


def rss_kib(pid: int) -> int:
    status = _read_proc(pid, "status") or ""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(
    name: str, argv: list[str], pidfile: Path, log: Path, env: dict[str, str] | None = None
) -> int:
    """Start ``argv`` detached (new session, stdin closed), record its PID, return it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
    pidfile.write_text(f"{proc.pid} {Path(argv[0]).name}\n")
    return proc.pid


def read(name: str, pidfile: Path) -> Tracked | None:
    """The tracked daemon if its PID file points at a live process running the same program."""
    try:
        pid_s, marker = pidfile.read_text().split(maxsplit=1)
    except (OSError, ValueError):
        return None
    pid, marker = int(pid_s), marker.strip()
    if not is_alive(pid) or marker not in cmdline(pid):
        return None
    return Tracked(name, pid, marker)


def stop(tracked: list[Tracked], timeout: float = 20.0) -> list[str]:
    """TERM each daemon's process group, wait, then KILL what is left. Returns notes."""
    notes: list[str] = []
    victims: set[int] = set()
    for t in tracked:
        members = set(group_members(t.pid)) | {t.pid}
        victims |= members
        try:
            os.killpg(t.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError as exc:  # pid no longer a group leader of ours
            raise ProcError(f"cannot signal {t.name} ({t.pid}): {exc}") from exc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(is_alive(p) for p in victims):
            return notes
        time.sleep(0.2)
    for pid in sorted(victims):
        if is_alive(pid):
            notes.append(f"SIGKILL {pid} ({cmdline(pid)[:60]})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.3)
    return notes
