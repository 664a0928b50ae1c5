"""The snapshot hand-off between cloud-info and the resource BDII.

CONTRACT (with bdii-update): the LDIF the resource BDII serves is always
``<state_dir>/cloud-info/snapshot.ldif`` (GLUE 2.0, or GLUE 2.1 with format
``glue21-ldif``), replaced atomically and only after a complete collection. A failed
or timed-out collection leaves the previous file untouched.

Entries whose content did not change keep the ``GLUE2EntityCreationTime`` of the
previous snapshot, so a cycle with no change in OpenStack writes a byte-identical
snapshot (and the updater performs zero LDAP writes).
"""

from __future__ import annotations

from pathlib import Path

from fedcloud_core import ldif
from fedcloud_core.config import AppConfig
from fedcloud_core.files import atomic_write
from fedcloud_core.ldif import Entry

CREATION = "GLUE2EntityCreationTime"


def snapshot_dir(cfg: AppConfig) -> Path:
    return cfg.paths.state_dir / "cloud-info"


def ldif_path(cfg: AppConfig) -> Path:
    return snapshot_dir(cfg) / "snapshot.ldif"


def json_path(cfg: AppConfig) -> Path:
    return snapshot_dir(cfg) / "snapshot.json"


def read_previous(path: Path) -> list[Entry]:
    """The last good snapshot's entries ([] when missing or unreadable)."""
    try:
        return ldif.parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def _without_time(attrs: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k.lower(): v for k, v in attrs.items() if k.lower() != CREATION.lower()}


def stabilise(entries: list[Entry], previous: list[Entry]) -> list[Entry]:
    """Keep the previous creation time of every entry whose content is unchanged."""
    old = {e.dn.lower(): e for e in previous}
    out = []
    for e in entries:
        prev = old.get(e.dn.lower())
        if prev is not None and CREATION in e.attrs and prev.first(CREATION):
            if _without_time(prev.attrs) == _without_time(e.attrs):
                attrs = dict(e.attrs)
                attrs[CREATION] = [prev.first(CREATION) or ""]
                e = Entry(e.dn, attrs)
        out.append(e)
    return out


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text)
