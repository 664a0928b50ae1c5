"""Resource BDIIs as sources: query over LDAP (anonymous, timeouts), keep the last good answer.

The last good answer of each resource BDII is cached as LDIF in
``<data_dir>/cache/<host>_<port>.ldif``; the file's mtime is the time of that
answer, so the bounded keep time survives a restart of the site BDII.

Before reading a resource BDII's tree, its suffix's ``contextCSN`` is read (one
base-scope search): when it equals the one read before the last answer, nothing was
written there since, and the last answer (kept in memory) is used again.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from fedcloud_core.bdii import dn as dnlib
from fedcloud_core.bdii.errors import BdiiError
from fedcloud_core.bdii.ldap import LdapUrl, connect, context_csn, read_tree, search_records
from fedcloud_core.files import atomic_write
from fedcloud_core.ldif import Entry, LdifError, Record, parse, render

from .tree import RESOURCE_BASE

log = logging.getLogger(__name__)

Fetcher = Callable[[LdapUrl, str, int], Sequence[Entry | Record]]


class SourceState(StrEnum):
    OK = "ok"
    KEPT = "kept"  # silent, last data kept (endpoints: unknown)
    DROPPED = "dropped"  # silent for longer than allowed, or never answered


@dataclass
class SourceResult:
    url: str
    state: SourceState
    base: str = RESOURCE_BASE
    entries: Sequence[Entry | Record] = field(default_factory=list)  # records: not parsed
    problem: str | None = None
    silent_for: float | None = None
    unchanged: bool = False  # the same contextCSN as at the last answer: not read again
    mark: str = ""  # the source's contextCSN read before this answer ('' unknown)


def ldap_fetch(url: LdapUrl, base: str, timeout: int) -> Sequence[Entry | Record]:
    """The resource BDII's tree: one ``ldapsearch`` (C client, ~10x faster than decoding
    20,000 entries with ldap3) kept as unparsed records; ldap3 without ldap-utils."""
    if shutil.which("ldapsearch"):
        return search_records(url.server_url, base, timeout=timeout)
    conn = connect(url.server_url, timeout=timeout)
    try:
        return read_tree(conn, base)
    finally:
        conn.unbind()


CsnReader = Callable[[LdapUrl, str, int], str]


def ldap_csn(url: LdapUrl, base: str, timeout: int) -> str:
    """The ``contextCSN`` of the suffix holding ``base`` (anonymous); '' when it has none."""
    conn = connect(url.server_url, timeout=timeout)
    try:
        return context_csn(conn, dnlib.split_dn(base)[-1])
    finally:
        conn.unbind()


# cache file -> (contextCSN read before the answer, the answer): the job's loop only
_answers: dict[Path, tuple[str, Sequence[Entry | Record]]] = {}


def _ldif(items: Sequence[Entry | Record]) -> str:
    return "\n".join(i.text if isinstance(i, Record) else render([i]) for i in items)


def source_base(url: LdapUrl) -> str:
    """The base to read: the URL's if it names a subtree of o=glue, else the resource group."""
    try:
        if url.base and dnlib.is_under(url.base, "o=glue") and dnlib.depth(url.base) > 1:
            return url.base
    except dnlib.DnError:
        pass
    return RESOURCE_BASE


def cache_path(cache_dir: Path, url: LdapUrl) -> Path:
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{url.host}_{url.port}_{url.base or ''}").strip("_")
    return cache_dir / f"{slug}.ldif"


def query(
    url_text: str,
    *,
    cache_dir: Path,
    keep_for: float,
    timeout: int,
    fetch: Fetcher = ldap_fetch,
    now: float | None = None,
    csn: CsnReader | None = None,
) -> SourceResult:
    """Ask one resource BDII; on silence fall back to its cached answer while it is young enough.

    ``csn`` reads the source's ``contextCSN`` (default with the default ``fetch``:
    :func:`ldap_csn`); unchanged since the last answer: that answer is used again."""
    url = LdapUrl.parse(url_text)
    base = source_base(url)
    cache = cache_path(cache_dir, url)
    t = time.time() if now is None else now
    csn_of = csn if csn is not None else (ldap_csn if fetch is ldap_fetch else None)
    problem: str
    try:
        mark = ""
        if csn_of is not None:
            try:
                mark = csn_of(url, base, timeout)
            except BdiiError as exc:
                log.debug("%s: no contextCSN (%s): read in full", url, exc)
        last = _answers.get(cache)
        if mark and last is not None and last[0] == mark and cache.exists():
            os.utime(cache, (t, t))  # it answered now
            return SourceResult(url_text, SourceState.OK, base, last[1], unchanged=True, mark=mark)
        entries = fetch(url, base, timeout)
        base_key = dnlib.normalize(base)
        if any(dnlib.normalize(e.dn) != base_key for e in entries):  # something below
            atomic_write(cache, _ldif(entries))
            if mark:
                _answers[cache] = (mark, entries)
            return SourceResult(url_text, SourceState.OK, base, entries, mark=mark)
        problem = f"{url}: answered with no entries below {base}"
    except (BdiiError, OSError) as exc:
        problem = f"{url}: {exc}"
    try:
        age = max(0.0, t - cache.stat().st_mtime)
        cached = parse(cache.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SourceResult(
            url_text, SourceState.DROPPED, base, problem=f"{problem}; no earlier data"
        )
    except (OSError, LdifError, UnicodeDecodeError) as exc:
        return SourceResult(
            url_text, SourceState.DROPPED, base, problem=f"{problem}; cache unreadable: {exc}"
        )
    if age <= keep_for:
        return SourceResult(url_text, SourceState.KEPT, base, cached, problem, age)
    return SourceResult(
        url_text,
        SourceState.DROPPED,
        base,
        problem=f"{problem}; last answer {age:.0f}s ago (kept at most {keep_for:.0f}s): its data is dropped",
        silent_for=age,
    )
