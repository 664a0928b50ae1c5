"""The BDII publish path: no work when nothing changed, little work when little changed.

Both BDIIs publish through :func:`publish`. It keeps, per suffix, what it last applied
(the *applied state*: per-DN digests of the entries written, and the suffix's
``contextCSN`` read right after writing) in a versioned JSON file written atomically.

- **No change**: the suffix's ``contextCSN`` (one base-scope read; syncprov changes it
  with every write) equals the stored one, and the wanted entries' digests equal the
  stored digests: nothing is written and the tree is not read.
- **Little change**: same check, then only the entries whose digest changed are
  parsed and written: added (parents first), read back one by one (base scope) and
  modified attribute by attribute, deleted (leaves first). The tree is not read.
- **Outside change, restarted slapd, missing or unreadable state**: the ``contextCSN``
  differs (or there is no usable state), so the live tree is read and diffed entry by
  entry (:func:`fedcloud_core.bdii.sync.plan_sync`): a full resync that ends with the
  tree equal to the wanted entries. Many adds (an empty database) go through one
  ``ldapadd -c`` (:meth:`fedcloud_core.bdii.ldap.Ldap3Tree.bulk_add`).
- **First load of a slapd this process starts**: the prepared entries are loaded with
  ``slapadd -q`` before slapd serves (:meth:`fedcloud_core.bdii.slapd.Slapd.start`) and
  :func:`publish` is told so (``loaded=``): it records the state without a read.

Every failed entry is reported by DN; an entry that failed is not recorded as applied,
so the next cycle tries it again. Deletes can be suppressed (stale or empty snapshot):
nothing is deleted then, whatever the state says.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import statefile
from ..errors import StateVersionError
from ..ldif import Entry, LdifError, Record
from . import dn as dnlib
from .sync import Failure, LdapTree, Plan, SyncResult, apply_plan, diff_attrs, plan_sync

log = logging.getLogger(__name__)

STATE_KIND = "BDII applied state"
STATE_VERSION = 1
BULK_MIN = 200  # adds at or above this go through one ldapadd -c when the tree can


def state_file(state_dir: Path, suffix: str) -> Path:
    """Where the applied state of ``suffix`` is kept under ``state_dir``."""
    slug = "".join(c if c.isalnum() else "_" for c in dnlib.normalize(suffix))
    return state_dir / f"applied-{slug}.json"


def entry_digest(entry: Entry) -> str:
    """A digest of the entry's attributes (names case-insensitive, values as sets)."""
    items: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for name, values in entry.attrs.items():
        lk = name.lower()
        if lk in seen:  # the same attribute spelt twice: fold (rare)
            folded: dict[str, set[str]] = {}
            for n, vs in entry.attrs.items():
                folded.setdefault(n.lower(), set()).update(vs)
            items = [(k, sorted(v)) for k, v in folded.items() if v]
            break
        seen.add(lk)
        if values:
            items.append((lk, sorted(set(values))))
    items.sort()
    return hashlib.blake2b(repr(items).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def record_digest(record: Record) -> str:
    """A digest of a record's LDIF text (same text: same entry; it is parsed only if it changed)."""
    return hashlib.blake2b(record.text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


Item = Entry | Record
Wanted = Sequence[Item] | Callable[[], Sequence[Item]]


@dataclass
class Prepared:
    """Wanted entries checked against ``base`` (inside it, parents present, no duplicate),
    with their keys (normalised DNs) and digests. ``entries`` is parents first; a
    :class:`Record` is parsed only when it is written (:meth:`entry`)."""

    base: str
    entries: dict[str, Item] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    rejected: list[Failure] = field(default_factory=list)
    wanted: int = 0
    # entry digests of records that were parsed (a record whose text changed but whose
    # entry did not is not written again)
    sems: dict[str, str] = field(default_factory=dict)

    def entry(self, key: str) -> Entry:
        """The entry to write for ``key`` (RDN values present, no repeated values);
        LdifError/DnError if a record cannot be parsed."""
        item = self.entries[key]
        e = item.entry() if isinstance(item, Record) else item
        return writable(_with_rdn(e, _rdn_pairs(e.dn, key)))

    def ordered(self, *, sems: bool = False) -> list[Entry]:
        """Every entry to write, parents first; one that cannot be parsed is moved to
        :attr:`rejected` (with the entries below it). ``sems``: keep the entry digests of
        the records parsed (a later reformatted record is then not read back)."""
        out: list[Entry] = []
        bad: list[str] = []
        for key in list(self.entries):
            if bad and any(key.endswith("," + b) for b in bad):
                self.rejected.append(
                    Failure("check", self.entries.pop(key).dn, "parent entry cannot be parsed")
                )
                continue
            try:
                e = self.entry(key)
            except (LdifError, dnlib.DnError) as exc:
                self.rejected.append(Failure("check", self.entries.pop(key).dn, str(exc)))
                bad.append(key)
                continue
            if sems and isinstance(self.entries[key], Record):
                self.sems[key] = entry_digest(e)
            out.append(e)
        return out

    def loadable(self) -> list[Entry | Record]:
        """:meth:`ordered` for a bulk load: a record that already holds its RDN value is
        passed on as its text, unparsed (the loader parses and cleans it if it is refused)."""
        out: list[Entry | Record] = []
        bad: list[str] = []
        for key in list(self.entries):
            item = self.entries[key]
            if bad and any(key.endswith("," + b) for b in bad):
                self.rejected.append(
                    Failure("check", self.entries.pop(key).dn, "parent entry cannot be parsed")
                )
                continue
            if isinstance(item, Record):
                try:
                    pairs = _rdn_pairs(item.dn, key)
                except dnlib.DnError:
                    pairs = [("", "\n")]
                if all(f"\n{n}: {v}\n" in item.text for n, v in pairs):
                    out.append(item)
                    continue
            try:
                out.append(self.entry(key))
            except (LdifError, dnlib.DnError) as exc:
                self.rejected.append(Failure("check", self.entries.pop(key).dn, str(exc)))
                bad.append(key)
        return out


def as_entry(record: Record) -> Entry:
    """A record parsed and made writable (RDN values present, no repeated values)."""
    e = record.entry()
    return writable(_with_rdn(e, _rdn_pairs(e.dn, dnlib.normalize(e.dn))))


def writable(e: Entry) -> Entry:
    """``e`` without repeated values or empty attributes (LDAP refuses both in an add)."""
    if all(v and len(v) == len(set(v)) for v in e.attrs.values()):
        return e
    return Entry(dn=e.dn, attrs={k: list(dict.fromkeys(v)) for k, v in e.attrs.items() if v})


def _with_rdn(entry: Entry, rdn_pairs: list[tuple[str, str]]) -> Entry:
    """The entry with its RDN value(s) present (LDAP adds them anyway; without this: churn)."""
    attrs = entry.attrs
    missing = []
    for name, value in rdn_pairs:
        if value in attrs.get(name, ()):
            continue
        key = next((k for k in attrs if k.lower() == name.lower()), None)
        if key is None or value not in attrs[key]:
            missing.append((key or name, value))
    if not missing:
        return entry
    fixed = {k: list(v) for k, v in attrs.items() if v}
    for key, value in missing:
        fixed.setdefault(key, []).append(value)
    return Entry(dn=entry.dn, attrs=fixed)


def _rdn_pairs(dn: str, key: str) -> list[tuple[str, str]]:
    if "\\" not in key and "+" not in key and dn.count(",") == key.count(","):
        name, _, value = dn.partition(",")[0].partition("=")
        return [(name, value)]
    return dnlib.split_rdn(dnlib.split_dn(dn)[0])


def prepare(
    wanted: Sequence[Item], *, base: str, keep: Mapping[str, Any] | None = None
) -> Prepared:
    """Check ``wanted`` below ``base`` and digest it. ``keep``: keys of entries that stay
    although not wanted (deletes suppressed): entries below them are accepted."""
    p = Prepared(base=base, wanted=len(wanted))
    base_key = dnlib.normalize(base)
    tail = "," + base_key
    want: dict[str, Item] = {}
    for e in wanted:
        try:
            key = dnlib.normalize(e.dn)
        except dnlib.DnError as exc:
            p.rejected.append(Failure("check", e.dn, str(exc)))
            continue
        if key != base_key and not key.endswith(tail):
            p.rejected.append(Failure("check", e.dn, f"not below the base {base}"))
            continue
        if key in want:
            p.rejected.append(
                Failure("check", e.dn, "duplicate DN in the wanted entries (first kept)")
            )
            continue
        want[key] = e
    base_parent = dnlib.parent_key(base_key)
    kept = keep or {}
    for key in sorted(want, key=dnlib.key_depth):
        par = dnlib.parent_key(key)
        if key == base_key or par in p.entries or par == base_parent or par in kept:
            e = want[key]
            p.entries[key] = e
            if isinstance(e, Record):
                p.digests[key] = record_digest(e)
            else:
                try:
                    p.digests[key] = entry_digest(_with_rdn(e, _rdn_pairs(e.dn, key)))
                except dnlib.DnError as exc:
                    del p.entries[key]
                    p.rejected.append(Failure("check", e.dn, str(exc)))
        else:
            p.rejected.append(
                Failure("check", want[key].dn, "parent entry is missing from the wanted entries")
            )
    return p


@dataclass
class AppliedState:
    """What was last applied to one suffix: normalised DN -> [DN, digest, entry digest]
    (digest: of the record's text or of the entry; entry digest: '' if never parsed)."""

    suffix: str
    csn: str = ""
    source: str = ""  # the caller's digest of its input (same input + same CSN: nothing to do)
    entries: dict[str, list[str]] = field(default_factory=dict)
    complete: bool = True  # False: something failed last time (the input is re-checked)
    wanted: int = 0  # entries wanted last time (reported again when nothing changed)

    def to_json(self) -> dict[str, Any]:
        # three parallel lists of strings: decoded ~4x faster than a list per entry
        keys = list(self.entries)
        return {
            "suffix": self.suffix,
            "csn": self.csn,
            "source": self.source,
            "complete": self.complete,
            "wanted": self.wanted,
            "keys": keys,
            "dns": [self.entries[k][0] for k in keys],
            "digests": [self.entries[k][1] for k in keys],
            "sems": [self.entries[k][2] for k in keys],
        }


_cache: dict[Path, tuple[tuple[int, int], AppliedState]] = {}


def load_state(path: Path, suffix: str) -> tuple[AppliedState | None, str | None]:
    """The applied state in ``path`` and, when it cannot be used, why (a full resync follows)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None, f"{path}: no applied state yet"
    except OSError as exc:
        return None, f"{path}: unreadable applied state ({exc})"
    stamp = (stat.st_mtime_ns, stat.st_size)
    hit = _cache.get(path)
    if hit and hit[0] == stamp:
        st: AppliedState | None = hit[1]
    else:
        st, why = _read_state(path)
        if st is None:
            return None, why
        _cache[path] = (stamp, st)
    assert st is not None
    if dnlib.normalize(st.suffix) != dnlib.normalize(suffix):
        return None, f"{path}: applied state of {st.suffix}, not {suffix}"
    return st, None


def _read_state(path: Path) -> tuple[AppliedState | None, str | None]:
    try:
        doc = statefile.load_versioned(path, STATE_KIND, STATE_VERSION)
    except StateVersionError as exc:
        return None, str(exc)
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable applied state ({exc})"
    if doc is None:
        return None, f"{path}: no applied state yet"
    try:
        keys, dns, digests, sems = doc["keys"], doc["dns"], doc["digests"], doc["sems"]
        lists = (keys, dns, digests, sems)
        if not all(isinstance(x, list) and len(x) == len(keys) for x in lists):
            raise ValueError("keys, dns, digests and sems are not lists of one length")
        st = AppliedState(
            suffix=str(doc["suffix"]),
            csn=str(doc["csn"]),
            source=str(doc.get("source") or ""),
            complete=doc.get("complete") is True,
            wanted=int(doc.get("wanted") or 0),
            entries={
                str(k): [str(d), str(g), str(m)]
                for k, d, g, m in zip(keys, dns, digests, sems, strict=True)
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"{path}: unreadable applied state ({exc})"
    return st, None


def save_state(path: Path, st: AppliedState) -> None:
    """Write ``st`` atomically (versioned: :mod:`fedcloud_core.statefile`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    statefile.dump_versioned(path, st.to_json(), STATE_VERSION, mode=0o600, separators=(",", ":"))
    try:
        stat = path.stat()
        _cache[path] = ((stat.st_mtime_ns, stat.st_size), st)
    except OSError:
        _cache.pop(path, None)


def drop_state(path: Path) -> None:
    _cache.pop(path, None)
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@dataclass
class PublishResult(SyncResult):
    mode: str = "full"  # unchanged | incremental | full | loaded | no-state
    reason: str = ""  # why a full resync was needed
    seconds: float = 0.0


def _incremental_plan(
    tree: LdapTree, prep: Prepared, st: AppliedState, *, allow_delete: bool
) -> Plan:
    """Adds, modifies and deletes from the digests alone. A changed entry is read (that
    entry only, base scope) so that only its changed attributes are sent."""
    plan = Plan()
    plan.rejected.extend(prep.rejected)
    read_entry = getattr(tree, "read_entry", None)
    for key in prep.entries:
        old = st.entries.get(key)
        if old is not None and old[1] == prep.digests[key]:
            plan.unchanged += 1
            continue
        try:
            e = prep.entry(key)
        except (LdifError, dnlib.DnError) as exc:
            op = "check" if old is None else "modify"  # modify: the old entry stays
            plan.rejected.append(Failure(op, prep.entries[key].dn, f"cannot be parsed: {exc}"))
            continue
        if old is None:
            plan.adds.append(e)
            continue
        sem = prep.sems[key] = entry_digest(e)
        if sem == old[2]:
            plan.unchanged += 1  # the same entry written differently
            plan.restamped += 1
            continue
        current = read_entry(old[0]) if read_entry else None
        if current is None and read_entry is not None:
            plan.adds.append(e)  # gone meanwhile (the contextCSN would have said so)
            continue
        if current is not None:
            changes = diff_attrs(current.attrs, e.attrs)
        else:
            changes = {name: ("replace", sorted(set(v))) for name, v in e.attrs.items()}
        if changes:
            plan.modifies.append((old[0], changes))
        else:
            plan.unchanged += 1
    stale = [k for k in st.entries if k not in prep.entries]
    if allow_delete:
        stale.sort(key=lambda k: (-dnlib.key_depth(k), k))
        plan.deletes = [st.entries[k][0] for k in stale]
    else:
        plan.suppressed_deletes = len(stale)
    plan.adds.sort(key=lambda x: dnlib.depth(x.dn))
    return plan


def _apply(tree: LdapTree, plan: Plan) -> SyncResult:
    bulk = getattr(tree, "bulk_add", None)
    if bulk is None or len(plan.adds) < BULK_MIN:
        return apply_plan(tree, plan)
    rejected = bulk(plan.adds)
    if rejected is None:
        return apply_plan(tree, plan)
    failed = {dnlib.normalize(dn): (dn, why) for dn, why in rejected}
    rest = Plan(
        modifies=plan.modifies,
        deletes=plan.deletes,
        suppressed_deletes=plan.suppressed_deletes,
        rejected=plan.rejected,
        unchanged=plan.unchanged,
    )
    res = apply_plan(tree, rest)
    res.added = len(plan.adds) - len(failed)
    for dn, why in failed.values():
        res.failures.append(Failure("add", dn, why))
    return res


def _failed_keys(res: SyncResult) -> dict[str, str]:
    """Normalised DN -> the failed operation (checks of rejected input are not writes)."""
    out: dict[str, str] = {}
    for f in res.failures:
        if f.op == "check":
            continue
        try:
            out[dnlib.normalize(f.dn)] = f.op
        except dnlib.DnError:
            continue
    return out


def _csn(tree: LdapTree, base: str) -> str:
    fn = getattr(tree, "context_csn", None)
    return str(fn(base)) if fn else ""


def _record(
    tree: LdapTree,
    path: Path,
    base: str,
    prep: Prepared,
    res: SyncResult,
    *,
    allow_delete: bool,
    before: Mapping[str, list[str]],
    source: str,
) -> None:
    """Store what the tree now holds: the wanted entries written or unchanged, failed
    modifies as they were (digest "!", never equal: retried), and entries not wanted that
    are still there (deletes suppressed or failed). ``before``: what the tree held
    (the previous state, or the live tree on a full resync)."""
    failed = _failed_keys(res)
    entries: dict[str, list[str]] = {}
    for key, item in prep.entries.items():
        op = failed.get(key)
        if op is None:
            digest = prep.digests[key]
            sem = prep.sems.get(key)
            if sem is None:
                was = before.get(key)
                if isinstance(item, Entry):
                    sem = digest
                elif was is not None and was[1] == digest:
                    sem = was[2]
                else:
                    sem = ""  # not parsed: compared by text only
            entries[key] = [item.dn, digest, sem]
        elif op == "modify":
            was = before.get(key)
            entries[key] = [was[0] if was else item.dn, "!", "!"]
    for key, was in before.items():
        if key in prep.entries:
            continue
        if not allow_delete or failed.get(key) == "delete":
            entries[key] = was
    st = AppliedState(
        suffix=base,
        csn=_csn(tree, base),
        source=source if not res.failures else "",
        entries=entries,
        complete=not res.failures,
        wanted=prep.wanted,
    )
    save_state(path, st)


def _summary(entries: Sequence[Entry]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in entries:
        try:
            out[dnlib.normalize(e.dn)] = [e.dn, "-", "-"]
        except dnlib.DnError:
            continue
    return out


def publish(
    tree: LdapTree,
    base: str,
    wanted: Wanted,
    *,
    allow_delete: bool = True,
    state_path: Path | None = None,
    source: str = "",
    loaded: list[Failure] | None = None,
    prepared: Prepared | None = None,
) -> PublishResult:
    """Bring the tree under ``base`` to ``wanted`` (a list, or a function giving it: not
    called when ``source`` and the ``contextCSN`` show nothing changed).

    ``state_path``: the applied-state file (None: always read and diff, no state).
    ``source``: a digest of the caller's input; equal to the stored one with the same
    ``contextCSN``: nothing to do, ``wanted`` is not even built. ``loaded``: the entries
    of ``prepared`` were just bulk-loaded into a new database, these failed.
    """
    t0 = time.perf_counter()
    if state_path is None or not hasattr(tree, "context_csn"):
        current = tree.read(base)
        prep = prepared or _prepare_over(_entries(wanted), base, current, allow_delete)
        res = _full(tree, base, prep, current, allow_delete)
        res.mode = "no-state"
        res.seconds = time.perf_counter() - t0
        return res

    if loaded is not None and prepared is not None:
        res = PublishResult(entries=prepared.wanted, mode="loaded")
        res.failures = [*prepared.rejected, *loaded]
        res.added = len(prepared.entries) - len(loaded)
        _record(tree, state_path, base, prepared, res, allow_delete=True, before={}, source=source)
        res.seconds = time.perf_counter() - t0
        return res

    st, why = load_state(state_path, base)
    csn = _csn(tree, base)
    if st is not None and (not csn or st.csn != csn):
        why = (
            f"the contextCSN of {base} changed ({st.csn or 'none'} -> {csn or 'none'}): "
            "written by someone else, or slapd restarted"
        )
        st = None
    if st is not None and st.complete and source and st.source == source:
        res = PublishResult(mode="unchanged", unchanged=len(st.entries), entries=st.wanted)
        res.seconds = time.perf_counter() - t0
        return res
    entries = _entries(wanted)
    if st is not None:
        prep = prepared or prepare(entries, base=base, keep=None if allow_delete else st.entries)
        plan = _incremental_plan(tree, prep, st, allow_delete=allow_delete)
        res = _as_publish(_apply(tree, plan), "incremental" if plan.writes else "unchanged")
        res.entries = prep.wanted
        if plan.writes or plan.rejected or plan.restamped or not st.complete or st.source != source:
            _record(
                tree,
                state_path,
                base,
                prep,
                res,
                allow_delete=allow_delete,
                before=st.entries,
                source=source,
            )
        res.seconds = time.perf_counter() - t0
        return res
    log.info("%s: full resync: %s", base, why)
    current = tree.read(base)
    prep = prepared or _prepare_over(entries, base, current, allow_delete)
    res = _full(tree, base, prep, current, allow_delete)
    res.reason = why or ""
    _record(
        tree,
        state_path,
        base,
        prep,
        res,
        allow_delete=allow_delete,
        before=_summary(current),
        source=source,
    )
    res.seconds = time.perf_counter() - t0
    return res


def _prepare_over(
    entries: Sequence[Item], base: str, current: Sequence[Entry], allow_delete: bool
) -> Prepared:
    keep = None
    if not allow_delete:
        keep = {}
        for e in current:
            try:
                keep[dnlib.normalize(e.dn)] = True
            except dnlib.DnError:
                continue
    return prepare(entries, base=base, keep=keep)


def _entries(wanted: Wanted) -> Sequence[Item]:
    return wanted() if callable(wanted) else wanted


def _as_publish(r: SyncResult, mode: str) -> PublishResult:
    return PublishResult(
        entries=r.entries,
        added=r.added,
        modified=r.modified,
        deleted=r.deleted,
        unchanged=r.unchanged,
        suppressed_deletes=r.suppressed_deletes,
        failures=r.failures,
        mode=mode,
    )


def _full(
    tree: LdapTree, base: str, prep: Prepared, current: Sequence[Entry], allow_delete: bool
) -> PublishResult:
    plan = plan_sync(current, prep.ordered(sems=True), base=base, allow_delete=allow_delete)
    plan.rejected[:0] = prep.rejected
    out = _as_publish(_apply(tree, plan), "full")
    out.entries = prep.wanted
    return out
