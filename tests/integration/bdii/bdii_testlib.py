"""Helpers for the BDII tests: free ports, real ldapsearch, slapd's operation log and contextCSN."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from fedcloud_core.bdii.slapd import Slapd, SlapdSettings
from fedcloud_core.external import run_tool
from fedcloud_core.ldif import Entry, parse

# the spec's example resource tree, kept in the project (a user's clone has no ../shared)
EXAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "glue" / "resource-glue20-cloud.ldif"
_OP = re.compile(r" (ADD|MOD|DEL|MODRDN) dn=")


def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_slapd(data_dir: Path, *, role: str = "test") -> Slapd:
    """A project slapd (template, real Debian schema) on a free port, logging every operation."""
    return Slapd(
        SlapdSettings(
            role=role,
            host="127.0.0.1",
            port=free_port(),
            data_dir=data_dir,
            maxsize_mb=256,
            loglevel="stats",
            threads=2,
        )
    )


def ldapsearch(url: str, base: str, *extra: str) -> list[Entry]:
    """The real client, as an operator would run it (anonymous, -x)."""
    proc = run_tool(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-b", base, *extra],
        timeout=30,
    )
    return parse(proc.stdout.decode("utf-8"))


def context_csn(url: str, suffix: str = "o=glue") -> str:
    found = ldapsearch(url, suffix, "-s", "base", "contextCSN")
    return ",".join(sorted(found[0].get("contextCSN"))) if found else ""


def logged_writes(slapd: Slapd) -> int:
    """ADD/MOD/DEL operations slapd logged so far (loglevel stats)."""
    text = slapd.log_path.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if _OP.search(line))


def by_dn(entries: list[Entry]) -> dict[str, dict[str, set[str]]]:
    from fedcloud_core.bdii.dn import normalize

    return {normalize(e.dn): {k.lower(): set(v) for k, v in e.attrs.items()} for e in entries}
