"""The one way the appliance runs external tools: argument lists, timeout, checked exit, typed error."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence

from .errors import ToolError

log = logging.getLogger(__name__)


def run_tool(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float = 120.0,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` (no shell). Raises :class:`ToolError` on a missing tool, timeout or non-zero exit.

    ``env`` replaces the whole environment (None: inherit), ``cwd`` is the working directory."""
    tool = argv[0]
    log.debug("running %s", tool)
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    except FileNotFoundError:
        raise ToolError(tool, "not installed (command not found)") from None
    except subprocess.TimeoutExpired:
        raise ToolError(tool, f"timed out after {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = "; ".join(err[-3:]) if err else "no error output"
        raise ToolError(tool, f"exit {proc.returncode}: {detail}", returncode=proc.returncode)
    return proc
