"""The one adapter for the build's external tools.

Every tool runs from an argument list (no shell), with a timeout and a checked exit
code; failures raise :class:`fedcloud_core.errors.ToolError` naming the tool and the
tail of its output. Long-running tools write their output to a log file under the
work directory so a failure can be read in full.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedcloud_core.errors import ToolError

log = logging.getLogger(__name__)


def _tail(text: str, lines: int = 8) -> str:
    rows = [r for r in text.strip().splitlines() if r.strip()]
    return "\n  ".join(rows[-lines:]) if rows else "no output"


@dataclass(frozen=True)
class Tool:
    """One external program and its default timeout (seconds)."""

    name: str
    timeout: float = 120.0

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
        """Run the tool; stdout+stderr go to ``log_file`` when given, else are captured."""
        argv = [self.name, *(str(a) for a in args)]
        limit = timeout if timeout is not None else self.timeout
        full_env = None if env is None else {**os.environ, **env}
        log.debug("run: %s", " ".join(argv))
        try:
            if log_file is not None:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                with log_file.open("w", encoding="utf-8") as fh:
                    proc = subprocess.run(
                        argv,
                        input=input,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        timeout=limit,
                        env=full_env,
                        cwd=cwd,
                        check=False,
                    )
                out = log_file.read_text(encoding="utf-8", errors="replace")
                result = subprocess.CompletedProcess(argv, proc.returncode, out, "")
            else:
                raw = subprocess.run(
                    argv,
                    input=input,
                    capture_output=True,
                    timeout=limit,
                    env=full_env,
                    cwd=cwd,
                    check=False,
                )
                result = subprocess.CompletedProcess(
                    argv,
                    raw.returncode,
                    raw.stdout.decode("utf-8", "replace"),
                    raw.stderr.decode("utf-8", "replace"),
                )
        except FileNotFoundError:
            raise ToolError(self.name, "not installed (run scripts/dev/ova deps)") from None
        except subprocess.TimeoutExpired:
            raise ToolError(self.name, f"timed out after {limit:.0f}s") from None
        if check and result.returncode != 0:
            where = f" (full log: {log_file})" if log_file else ""
            detail = _tail(result.stdout + "\n" + result.stderr)
            raise ToolError(
                self.name,
                f"exit {result.returncode}{where}:\n  {detail}",
                returncode=result.returncode,
            )
        return result


MMDEBSTRAP = Tool("mmdebstrap", timeout=1200)
SFDISK = Tool("sfdisk", timeout=30)
MKFS_EXT4 = Tool("mkfs.ext4", timeout=600)
E2FSCK = Tool("e2fsck", timeout=300)
GRUB_MKIMAGE = Tool("grub-mkimage", timeout=60)
QEMU_IMG = Tool("qemu-img", timeout=900)
DOCKER = Tool("docker", timeout=600)
IP = Tool("ip", timeout=30)
CHROOT = Tool("chroot", timeout=120)
DPKG_QUERY = Tool("dpkg-query", timeout=30)
XMLLINT = Tool("xmllint", timeout=60)
SHA256SUM = Tool("sha256sum", timeout=300)
VIRT_V2V = Tool("virt-v2v", timeout=300)
CLOUD_LOCALDS = Tool("cloud-localds", timeout=60)
SSH_KEYGEN = Tool("ssh-keygen", timeout=30)
SSH = Tool("ssh", timeout=120)
LDAPSEARCH = Tool("ldapsearch", timeout=30)
