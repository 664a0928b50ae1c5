#!/usr/bin/env python3
"""Run a command and write its peak RSS (KiB, ru_maxrss from wait4) to a file.

usage: peak_rss.py OUT_FILE COMMAND [ARG ...]; exits with the command's exit code.

Why a launcher: Linux keeps, in the ru_maxrss of an exec'd child, the resident size its
process had before exec - that is, a copy of whoever forked it. Forked from a benchmark
that holds thousands of API objects, every tool would show at least the benchmark's own
size. Forked from this small process, the floor is a bare interpreter (~13 MiB).
"""

import os
import sys


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)  # noqa: S606 (argument list, no shell: the benchmarked tool)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w", encoding="ascii") as f:
        f.write(f"{usage.ru_maxrss}\n")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
