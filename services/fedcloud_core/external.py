"""The one adapter for external tools (openssl, slapd, qemu-img, mmdebstrap, ...), for the
runtime and the OVA builder alike.

Every tool runs from an argument list (no shell), with a timeout and a checked exit code;
a missing tool, a timeout or a non-zero exit raise :class:`~fedcloud_core.errors.ToolError`
naming the tool and the tail of its error output. A long-running tool may write its
output to a log file (``log_file``) so that a failure can be read in full.

- :func:`run_tool`: one call, bytes in and out (``env`` replaces the environment);
- :class:`Tool`: a named tool with its default timeout, text out (``env`` adds to the
  environment), as the builder declares its tools (``ova/builder/build_tools.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError

log = logging.getLogger(__name__)


def _tail(text: str, lines: int, sep: str) -> str:
    rows = [r for r in text.strip().splitlines() if r.strip()]
    return sep.join(rows[-lines:]) if rows else "no error output"


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | None = None,
    timeout: float = 120.0,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log_file: Path | None = None,
    missing: str = "not installed (command not found)",
    tail_lines: int = 3,
    quote_stdout: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` (no shell). Raises :class:`ToolError` on a missing tool, timeout or non-zero exit.

    ``env`` replaces the whole environment (None: inherit), ``cwd`` is the working directory.
    With ``log_file``, stdout and stderr go to that file (its content is the result's stdout
    and a failure names it); else both are captured. ``missing`` is the message for a tool
    that is not installed; a failure quotes the last ``tail_lines`` lines of its stderr (and of
    its stdout with ``quote_stdout``: never for a tool whose stdout may carry a secret)."""
    args = [str(a) for a in argv]
    tool = args[0]
    log.debug("running %s", " ".join(args) if log.isEnabledFor(logging.DEBUG - 1) else tool)
    run_env = None if env is None else dict(env)
    try:
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with log_file.open("wb") as fh:
                done = subprocess.run(
                    args, input=input, stdout=fh, stderr=subprocess.STDOUT,
                    timeout=timeout, check=False, env=run_env, cwd=cwd,
                )  # fmt: skip
            proc = subprocess.CompletedProcess(args, done.returncode, log_file.read_bytes(), b"")
        else:
            proc = subprocess.run(
                args, input=input, capture_output=True,
                timeout=timeout, check=False, env=run_env, cwd=cwd,
            )  # fmt: skip
    except FileNotFoundError:
        raise ToolError(tool, missing) from None
    except subprocess.TimeoutExpired:
        raise ToolError(tool, f"timed out after {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        if log_file is not None:  # the log holds both streams
            errors = proc.stdout
        else:
            errors = (proc.stdout + b"\n" if quote_stdout else b"") + proc.stderr
        if log_file is not None:
            detail = f" (full log: {log_file}):\n  " + _tail(
                errors.decode("utf-8", "replace"), tail_lines, "\n  "
            )
        else:
            detail = ": " + _tail(errors.decode("utf-8", "replace"), tail_lines, "; ")
        raise ToolError(tool, f"exit {proc.returncode}{detail}", returncode=proc.returncode)
    return proc


@dataclass(frozen=True)
class Tool:
    """One external tool, its default timeout (seconds) and what to do when it is missing."""

    name: str
    timeout: float = 120.0
    missing: str = "not installed (command not found)"

    def available(self) -> bool:
        return shutil.which(self.name) is not None

    def run(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        timeout: float | None = None,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the tool with ``args``; text out. ``env`` is added to the inherited environment."""
        proc = run_tool(
            [self.name, *args],
            input=input,
            timeout=self.timeout if timeout is None else timeout,
            check=check,
            env=None if env is None else {**os.environ, **env},
            cwd=cwd,
            log_file=log_file,
            missing=self.missing,
            tail_lines=8,
            quote_stdout=True,
        )
        return subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
