"""The snapshot hand-off between cloud-info and the resource BDII.

CONTRACT (with bdii-update): the LDIF the resource BDII serves is always
``<state_dir>/cloud-info/snapshot.ldif`` (GLUE 2.0, or GLUE 2.1 with format
``glue21-ldif``), replaced atomically and only after a complete collection. A failed
or timed-out collection leaves the previous file untouched.

Entries whose content did not change keep the ``GLUE2EntityCreationTime`` of the
previous snapshot, so a cycle with no change in OpenStack writes a byte-identical
snapshot (and the updater performs zero LDAP writes).

Next to the snapshot, ``items.json`` keeps the answers of the per-item calls behind it
(access lists of private flavors, members of shared images, quotas and server states of
projects), each with the time it was collected. When one of those calls fails for a
passing reason, the next collection reuses that answer instead of leaving the item out,
so a transient error never makes bdii-update delete published entries for a cycle
(:class:`ItemMemory`; the run is PARTIAL and names the item).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcloud_core import ldif
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import StateVersionError
from fedcloud_core.files import atomic_write
from fedcloud_core.ldif import Entry
from fedcloud_core.statefile import dump_versioned, load_versioned

CREATION = "GLUE2EntityCreationTime"
ITEMS_VERSION = 1  # the format of items.json


def snapshot_dir(cfg: AppConfig) -> Path:
    return cfg.paths.state_dir / "cloud-info"


def ldif_path(cfg: AppConfig) -> Path:
    return snapshot_dir(cfg) / "snapshot.ldif"


def json_path(cfg: AppConfig) -> Path:
    return snapshot_dir(cfg) / "snapshot.json"


def items_path(cfg: AppConfig) -> Path:
    return snapshot_dir(cfg) / "items.json"


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


# ----------------------------------------------------------------------------- per-item answers


@dataclass(frozen=True)
class Remembered:
    value: Any  # what the call returned (JSON: a list of project ids, a dict of counts)
    collected: str  # when, UTC ``YYYY-MM-DDThh:mm:ssZ``


class ItemMemory:
    """The per-item answers behind a snapshot, keyed by ``(call, item id)``, e.g.
    ``("flavor_access", "<flavor id>")`` or ``("members", "<image id>")``."""

    def __init__(self, items: dict[tuple[str, str], Remembered] | None = None):
        self.items: dict[tuple[str, str], Remembered] = dict(items or {})

    def get(self, key: tuple[str, str]) -> Remembered | None:
        return self.items.get(key)

    def replace(self, other: ItemMemory) -> None:
        self.items = dict(other.items)

    def to_doc(self) -> dict[str, Any]:
        calls: dict[str, dict[str, dict[str, Any]]] = {}
        for (call, item), r in sorted(self.items.items()):
            calls.setdefault(call, {})[item] = {"value": r.value, "collected": r.collected}
        return {"calls": calls}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ItemMemory:
        """Raises ValueError when ``doc`` (items.json, current version) is malformed."""
        if not isinstance(doc.get("calls"), dict):
            raise ValueError("no 'calls' object")
        items: dict[tuple[str, str], Remembered] = {}
        for call, per_item in doc["calls"].items():
            if not isinstance(per_item, dict):
                raise ValueError(f"calls.{call} is not an object")
            for item, r in per_item.items():
                if (
                    not isinstance(r, dict)
                    or "value" not in r
                    or not isinstance(r.get("collected"), str)
                ):
                    raise ValueError(f"calls.{call}.{item} has no value or collected time")
                items[(str(call), str(item))] = Remembered(r["value"], r["collected"])
        return cls(items)


def read_items(path: Path) -> tuple[ItemMemory, str | None]:
    """The answers behind the last written snapshot, and a warning when the file is unusable
    (then nothing is reused; the next written snapshot replaces it). No file: empty, no warning."""
    try:
        doc = load_versioned(path, "cloud-info per-item answers", ITEMS_VERSION)
        return (ItemMemory.from_doc(doc) if doc is not None else ItemMemory()), None
    except StateVersionError as exc:
        # only a cache of answers: not worth stopping publication for (unlike real state)
        why = f"state version {exc.found}, this release reads up to {exc.current}"
    except (OSError, ValueError) as exc:  # unreadable, not JSON, malformed
        why = str(exc)
    return ItemMemory(), f"{path}: previous per-item answers not usable ({why}); none reused"


def write_items(path: Path, memory: ItemMemory) -> None:
    dump_versioned(path, memory.to_doc(), ITEMS_VERSION, indent=1, sort_keys=True)
