"""The updater: bring an LDAP subtree to a wanted set of entries with the fewest writes.

1. read the current tree under ``base`` (:meth:`LdapTree.read`),
2. :func:`plan_sync` diffs it with the wanted entries per DN (normalised) and per
   attribute (names compared case-insensitively, values as sets),
3. :func:`apply_plan` adds parents first, modifies, then deletes leaves first;
   every failed operation is recorded with its DN and the LDAP result, and the
   children of an entry that could not be added are not attempted (reported too).

Nothing is written when nothing changed. Deletes can be suppressed (stale or
suspicious input): the plan then only adds and modifies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..ldif import Entry
from . import dn as dnlib

log = logging.getLogger(__name__)

ModOp = Literal["add", "delete", "replace"]
Changes = dict[str, tuple[ModOp, list[str]]]


@dataclass(frozen=True)
class OpResult:
    ok: bool
    code: int = 0
    description: str = "success"
    message: str = ""

    def __str__(self) -> str:
        text = f"{self.code} {self.description}"
        return f"{text}: {self.message}" if self.message else text


class LdapTree(Protocol):
    """What the updater needs from an LDAP server (see :class:`fedcloud_core.bdii.ldap.Ldap3Tree`)."""

    def read(self, base: str) -> list[Entry]: ...
    def add(self, dn: str, attrs: Mapping[str, list[str]]) -> OpResult: ...
    def modify(self, dn: str, changes: Changes) -> OpResult: ...
    def delete(self, dn: str) -> OpResult: ...


@dataclass(frozen=True)
class Failure:
    op: str  # add | modify | delete | check
    dn: str
    result: str

    def __str__(self) -> str:
        return f"{self.op} {self.dn}: {self.result}"


@dataclass
class Plan:
    adds: list[Entry] = field(default_factory=list)  # parents first
    modifies: list[tuple[str, Changes]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # leaves first
    suppressed_deletes: int = 0
    rejected: list[Failure] = field(default_factory=list)  # wanted entries that cannot be written
    unchanged: int = 0
    restamped: int = 0  # unchanged entries written differently (the applied state is updated)

    @property
    def writes(self) -> int:
        return len(self.adds) + len(self.modifies) + len(self.deletes)


@dataclass
class SyncResult:
    entries: int = 0  # wanted entries
    added: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    suppressed_deletes: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return self.added + self.modified + self.deleted

    @property
    def failed(self) -> int:
        return len(self.failures)

    def counts(self, prefix: str = "") -> dict[str, int]:
        return {
            f"{prefix}entries": self.entries,
            f"{prefix}added": self.added,
            f"{prefix}modified": self.modified,
            f"{prefix}deleted": self.deleted,
            f"{prefix}unchanged": self.unchanged,
            f"{prefix}failed": self.failed,
            f"{prefix}deletes_suppressed": self.suppressed_deletes,
        }


def _with_rdn(entry: Entry) -> Entry:
    """The entry with its RDN value(s) present (LDAP adds them anyway; without this: churn)."""
    attrs = {k: list(dict.fromkeys(v)) for k, v in entry.attrs.items() if v}
    for name, value in dnlib.split_rdn(dnlib.split_dn(entry.dn)[0]):
        key = next((k for k in attrs if k.lower() == name.lower()), None)
        if key is None:
            attrs[name] = [value]
        elif value not in attrs[key]:
            attrs[key].append(value)
    return Entry(dn=entry.dn, attrs=attrs)


def _folded(attrs: Mapping[str, list[str]]) -> dict[str, tuple[str, set[str]]]:
    out: dict[str, tuple[str, set[str]]] = {}
    for name, values in attrs.items():
        key = name.lower()
        if key in out:
            out[key][1].update(values)
        else:
            out[key] = (name, set(values))
    return out


def diff_attrs(current: Mapping[str, list[str]], wanted: Mapping[str, list[str]]) -> Changes:
    """Attribute-level changes turning ``current`` into ``wanted`` (names case-insensitive)."""
    cur, new = _folded(current), _folded(wanted)
    changes: Changes = {}
    for key, (name, values) in new.items():
        if key not in cur:
            changes[name] = ("add", sorted(values))
        elif cur[key][1] != values:
            changes[name] = ("replace", sorted(values))
    for key, (name, _values) in cur.items():
        if key not in new:
            changes[name] = ("delete", [])
    return changes


def plan_sync(
    current: Iterable[Entry], wanted: Iterable[Entry], *, base: str, allow_delete: bool = True
) -> Plan:
    """The operations that turn ``current`` (the tree under ``base``) into ``wanted``."""
    plan = Plan()
    cur: dict[str, Entry] = {}
    for e in current:
        cur[dnlib.normalize(e.dn)] = e
    want: dict[str, Entry] = {}
    for e in wanted:
        try:
            key = dnlib.normalize(e.dn)
            if not dnlib.is_under(e.dn, base):
                plan.rejected.append(Failure("check", e.dn, f"not below the base {base}"))
                continue
            fixed = _with_rdn(e)
        except dnlib.DnError as exc:
            plan.rejected.append(Failure("check", e.dn, str(exc)))
            continue
        if key in want:
            plan.rejected.append(
                Failure("check", e.dn, "duplicate DN in the wanted entries (first kept)")
            )
            continue
        want[key] = fixed
    base_parent = dnlib.normalize(dnlib.parent(base)) if dnlib.depth(base) > 1 else ""
    # wanted entries whose parent will not exist cannot be added: reject them (and their subtrees)
    ok: dict[str, Entry] = {}
    for key in sorted(want, key=lambda k: dnlib.depth(k)):
        e = want[key]
        par = dnlib.normalize(dnlib.parent(e.dn)) if dnlib.depth(e.dn) > 1 else ""
        if (
            key == dnlib.normalize(base)
            or par in ok
            or par == base_parent
            or (par in cur and par not in want and not allow_delete)
        ):
            ok[key] = e
        else:
            plan.rejected.append(
                Failure("check", e.dn, "parent entry is missing from the wanted entries")
            )
    for key, e in ok.items():
        old = cur.get(key)
        if old is None:
            plan.adds.append(e)
            continue
        changes = diff_attrs(old.attrs, e.attrs)
        if changes:
            plan.modifies.append((old.dn, changes))
        else:
            plan.unchanged += 1
    stale = [k for k in cur if k not in ok]
    if allow_delete:
        plan.deletes = [cur[k].dn for k in sorted(stale, key=lambda k: (-dnlib.depth(k), k))]
    else:
        plan.suppressed_deletes = len(stale)
    plan.adds.sort(key=lambda e: dnlib.depth(e.dn))
    return plan


def apply_plan(tree: LdapTree, plan: Plan) -> SyncResult:
    """Run ``plan`` against ``tree``; never raises for a failed operation (it is recorded)."""
    res = SyncResult(unchanged=plan.unchanged, suppressed_deletes=plan.suppressed_deletes)
    res.failures.extend(plan.rejected)
    failed_adds: set[str] = set()
    for e in plan.adds:
        key = dnlib.normalize(e.dn)
        par = dnlib.normalize(dnlib.parent(e.dn)) if dnlib.depth(e.dn) > 1 else ""
        if par in failed_adds:
            failed_adds.add(key)
            res.failures.append(
                Failure("add", e.dn, "not attempted: the parent entry could not be added")
            )
            continue
        r = tree.add(e.dn, e.attrs)
        if r.ok:
            res.added += 1
        else:
            failed_adds.add(key)
            res.failures.append(Failure("add", e.dn, str(r)))
    for dn, changes in plan.modifies:
        r = tree.modify(dn, changes)
        if r.ok:
            res.modified += 1
        else:
            res.failures.append(Failure("modify", dn, str(r)))
    for dn in plan.deletes:
        r = tree.delete(dn)
        if r.ok:
            res.deleted += 1
        else:
            res.failures.append(Failure("delete", dn, str(r)))
    return res


def sync(
    tree: LdapTree, base: str, wanted: Sequence[Entry], *, allow_delete: bool = True
) -> SyncResult:
    """Read, diff and apply. ``allow_delete=False`` keeps entries that are no longer wanted."""
    current = tree.read(base)
    plan = plan_sync(current, wanted, base=base, allow_delete=allow_delete)
    res = apply_plan(tree, plan)
    res.entries = len(wanted)
    log.debug(
        "sync %s: %d wanted, %d added, %d modified, %d deleted, %d failed",
        base,
        res.entries,
        res.added,
        res.modified,
        res.deleted,
        res.failed,
    )
    return res
