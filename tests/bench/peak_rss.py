#!/usr/bin/env python3
"""Run a command and write its peak RSS (KiB, ru_maxrss from wait4) to a file.

usage: peak_rss.py OUT_FILE [--kill-after SECONDS] COMMAND [ARG ...]; exits with the
command's exit code (-9 when it was killed after SECONDS).

Why a launcher: Linux keeps, in the ru_maxrss of an exec'd child, the resident size its
process had before exec - that is, a copy of whoever forked it. Forked from a benchmark
that holds thousands of API objects, every tool would show at least the benchmark's own
size. Forked from this small process, the floor is a bare interpreter (~13 MiB).

Why the launcher kills: a tool stopped at the time limit still has a peak RSS so far (a
lower bound of its real one), and only its parent can read it from wait4.
"""

import os
import signal
import sys


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[2:]
    kill_after = 0.0
    if cmd[:1] == ["--kill-after"]:
        kill_after, cmd = float(cmd[1]), cmd[2:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)  # noqa: S606 (argument list, no shell: the benchmarked tool)
        finally:
            os._exit(127)
    if kill_after > 0:
        signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
        signal.setitimer(signal.ITIMER_REAL, kill_after)
    _, status, usage = os.wait4(pid, 0)  # retried after the alarm's handler (PEP 475)
    signal.setitimer(signal.ITIMER_REAL, 0)
    with open(out, "w", encoding="ascii") as f:
        f.write(f"{usage.ru_maxrss}\n")
    if os.WIFSIGNALED(status):  # die the same way, so the caller sees -SIGNAL
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
