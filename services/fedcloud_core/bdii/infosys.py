"""Statistics under ``o=infosys``, like the classic BDII: one entry per updater.

``ou=<name>,o=infosys`` (organizationalUnit) carries ``description: key=value``
lines (entries, failures, health, last change). It is written through the same
updater, so it is rewritten only when a figure changes: a cycle that changed
nothing writes nothing here either.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..ldif import Entry
from .publish import publish as publish_tree
from .sync import LdapTree, SyncResult

BASE = "o=infosys"


def stats_entries(name: str, figures: Mapping[str, object]) -> list[Entry]:
    root = Entry(BASE).add("objectClass", "organization").add("o", "infosys")
    e = Entry(f"ou={name},{BASE}").add("objectClass", "organizationalUnit").add("ou", name)
    e.add("description", *(f"{k}={v}" for k, v in sorted(figures.items())))
    return [root, e]


def previous_value(tree: LdapTree, name: str, key: str) -> str | None:
    """A figure as last published (e.g. the last change time, kept when nothing changed)."""
    for entry in tree.read(f"ou={name},{BASE}"):
        for d in entry.get("description"):
            k, _, v = d.partition("=")
            if k == key:
                return v
    return None


def publish(
    tree: LdapTree, name: str, figures: Mapping[str, object], *, state_path: Path | None = None
) -> SyncResult:
    """Through the publish path (``state_path``: its applied state; None: read and diff)."""
    return publish_tree(tree, BASE, stats_entries(name, figures), state_path=state_path)
