"""The ldap3 adapter: connections with timeouts, paged subtree reads, writes that report their result.

Every write goes through :class:`Ldap3Tree`, which counts the operations it sends
(``ops``) so a caller and the tests can prove that a no-change cycle wrote nothing.

Bulk work goes through OpenLDAP's C clients when the tree knows its URL and
credentials (see docs/adr/0005-bdii-publish.md): a whole-tree read is one
``ldapsearch`` (ldap3 decodes 20,000 entries ~10x slower), a large set of adds one
``ldapadd -c`` whose rejects file names every failed entry by DN.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException

from ..ldif import Entry, LdifError, Record, parse, render, split_records
from .errors import LdapUnavailable
from .sync import Changes, OpResult

log = logging.getLogger(__name__)

_MOD = {"add": ldap3.MODIFY_ADD, "delete": ldap3.MODIFY_DELETE, "replace": ldap3.MODIFY_REPLACE}
NO_SUCH_OBJECT = 32


@dataclass(frozen=True)
class LdapUrl:
    """``ldap://host:port[/base]`` split into what ldap3 needs (host and port only are used to connect)."""

    scheme: str
    host: str
    port: int
    base: str | None

    @classmethod
    def parse(cls, url: str, *, default_port: int = 2170) -> LdapUrl:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError(f"not an ldap:// URL: {url!r}")
        base = unquote(parts.path.lstrip("/")) or None
        try:
            port = parts.port or default_port
        except ValueError:
            raise ValueError(f"bad port in LDAP URL {url!r}") from None
        return cls(parts.scheme, parts.hostname, port, base)

    @property
    def server_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.server_url + (f"/{self.base}" if self.base else "")


def connect(
    url: str, *, bind_dn: str | None = None, password: str | None = None, timeout: float = 10.0
) -> ldap3.Connection:
    """A bound ldap3 connection (anonymous without ``bind_dn``); :class:`LdapUnavailable` if it fails."""
    u = LdapUrl.parse(url)
    server = ldap3.Server(u.server_url, connect_timeout=timeout, get_info=ldap3.NONE)
    conn = ldap3.Connection(
        server,
        user=bind_dn,
        password=password,
        receive_timeout=max(1, int(timeout)),
        raise_exceptions=False,
        auto_referrals=False,
        read_only=bind_dn is None,
    )
    try:
        ok = conn.bind()
    except LDAPException as exc:
        _close(conn)
        raise LdapUnavailable(f"{u.server_url}: cannot connect: {exc}") from None
    if not ok:
        desc = conn.result.get("description") if conn.result else "no answer"
        _close(conn)
        raise LdapUnavailable(f"{u.server_url}: bind failed: {desc}")
    return conn


def _close(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except LDAPException as exc:
        log.debug("unbind failed: %s", exc)
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def read_tree(conn: ldap3.Connection, base: str, *, page_size: int = 1000) -> list[Entry]:
    """Every entry under ``base`` (user attributes only); [] if the base does not exist."""
    entries: list[Entry] = []
    try:
        gen = conn.extend.standard.paged_search(
            base,
            "(objectClass=*)",
            search_scope=ldap3.SUBTREE,
            attributes=[ldap3.ALL_ATTRIBUTES],
            paged_size=page_size,
            generator=True,
        )
        for item in gen:
            if item.get("type") != "searchResEntry":
                continue
            attrs = {
                name: [v.decode("utf-8", errors="replace") for v in values]
                for name, values in item["raw_attributes"].items()
            }
            entries.append(Entry(dn=item["dn"], attrs=attrs))
    except LDAPException as exc:
        raise LdapUnavailable(f"search of {base} failed: {exc}") from None
    code = (conn.result or {}).get("result", 0)
    if code not in (0, NO_SUCH_OBJECT):
        raise LdapUnavailable(f"search of {base} failed: {code} {conn.result.get('description')}")
    return entries


def context_csn(conn: ldap3.Connection, suffix: str) -> str:
    """The ``contextCSN`` of ``suffix`` (syncprov keeps it: it changes with every write), '' if none."""
    try:
        ok = conn.search(suffix, "(objectClass=*)", ldap3.BASE, attributes=["contextCSN"])
    except LDAPException as exc:
        raise LdapUnavailable(f"read of the contextCSN of {suffix} failed: {exc}") from None
    code = (conn.result or {}).get("result", 0)
    if not ok:
        if code == NO_SUCH_OBJECT:
            return ""
        raise LdapUnavailable(f"read of the contextCSN of {suffix} failed: {code}")
    values: list[str] = []
    for item in conn.response or []:
        for name, vals in (item.get("raw_attributes") or {}).items():
            if name.lower() == "contextcsn":
                values.extend(v.decode("ascii", errors="replace") for v in vals)
    return ",".join(sorted(values))


@contextlib.contextmanager
def _secret_file(secret: str) -> Iterator[Path]:
    """A 0600 file holding ``secret`` (for ``-y``: never on a command line), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="fedcloud-ldap-"))
    try:
        p = d / "pw"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret)
        yield p
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _bind_args(bind_dn: str | None, pw_file: Path | None) -> list[str]:
    return ["-D", bind_dn, "-y", str(pw_file)] if bind_dn and pw_file else []


def search_ldif(
    url: str,
    base: str,
    *,
    bind_dn: str | None = None,
    password: str | None = None,
    timeout: float = 120.0,
) -> list[Entry]:
    """Every entry under ``base`` read by ``ldapsearch`` (user attributes); [] if no base."""
    text = _ldapsearch(url, base, bind_dn=bind_dn, password=password, timeout=timeout)
    try:
        return parse(text)
    except LdifError as exc:
        raise LdapUnavailable(f"{url}: search of {base}: bad LDIF: {exc}") from None


def search_records(url: str, base: str, *, timeout: float = 120.0) -> list[Entry] | list[Record]:
    """:func:`search_ldif` (anonymous) as unparsed records (parsed entries if the output
    cannot be split without parsing)."""
    text = _ldapsearch(url, base, timeout=timeout)
    recs = split_records(text)
    if recs is not None:
        return recs
    try:
        return parse(text)
    except LdifError as exc:
        raise LdapUnavailable(f"{url}: search of {base}: bad LDIF: {exc}") from None


def _ldapsearch(
    url: str,
    base: str,
    *,
    bind_dn: str | None = None,
    password: str | None = None,
    timeout: float = 120.0,
) -> str:
    u = LdapUrl.parse(url)
    with contextlib.ExitStack() as stack:
        pw = stack.enter_context(_secret_file(password)) if bind_dn and password else None
        argv = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", u.server_url]
        argv += [*_bind_args(bind_dn, pw), "-b", base, "-l", str(max(1, int(timeout)))]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False)
        except FileNotFoundError:
            raise LdapUnavailable("ldapsearch is not installed (ldap-utils)") from None
        except subprocess.TimeoutExpired:
            raise LdapUnavailable(f"{u.server_url}: search of {base} timed out") from None
    if proc.returncode == NO_SUCH_OBJECT:
        return ""
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip().replace("\n", " | ")
        raise LdapUnavailable(f"{u.server_url}: search of {base} failed: {err[:300]}")
    try:
        return proc.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LdapUnavailable(f"{u.server_url}: search of {base}: not UTF-8: {exc}") from None


def _rejects(text: str) -> list[tuple[str, str]]:
    """(DN, error) of each entry in an ``ldapadd -S`` rejects file."""
    out: list[tuple[str, str]] = []
    for block in text.split("\n\n"):
        errors = [ln[2:].strip() for ln in block.splitlines() if ln.startswith("# ")]
        body = "\n".join(ln for ln in block.splitlines() if not ln.startswith("#"))
        if not body.strip():
            continue
        try:
            entries = parse(body + "\n")
        except LdifError:
            continue
        for e in entries:
            out.append((e.dn, "; ".join(errors) or "rejected"))
    return out


class Ldap3Tree:
    """:class:`fedcloud_core.bdii.sync.LdapTree` on an ldap3 connection; counts what it sends.

    With ``url`` (and the bind DN/password of ``conn``) whole-tree reads and bulk adds
    use OpenLDAP's C clients; ``ops`` counts them too (``search``, ``bulk_add``).
    """

    def __init__(
        self,
        conn: ldap3.Connection,
        *,
        url: str | None = None,
        bind_dn: str | None = None,
        password: str | None = None,
        timeout: float = 120.0,
    ):
        self.conn = conn
        self.ops: Counter[str] = Counter()
        self.url = url
        self._bind_dn = bind_dn
        self._password = password
        self.timeout = timeout
        self.c_clients = url is not None and shutil.which("ldapsearch") is not None

    def __repr__(self) -> str:
        return f"Ldap3Tree(url={self.url!r})"

    def read(self, base: str) -> list[Entry]:
        self.ops["search"] += 1
        if self.c_clients and self.url:
            return search_ldif(
                self.url,
                base,
                bind_dn=self._bind_dn,
                password=self._password,
                timeout=max(self.timeout, 120.0),
            )
        return read_tree(self.conn, base)

    def read_entry(self, dn: str) -> Entry | None:
        """One entry (base scope, user attributes); None if it does not exist."""
        self.ops["read_entry"] += 1
        try:
            ok = self.conn.search(
                dn, "(objectClass=*)", ldap3.BASE, attributes=[ldap3.ALL_ATTRIBUTES]
            )
        except LDAPException as exc:
            raise LdapUnavailable(f"read of {dn} failed: {exc}") from None
        if not ok:
            code = (self.conn.result or {}).get("result", 0)
            if code == NO_SUCH_OBJECT:
                return None
            raise LdapUnavailable(f"read of {dn} failed: {code}")
        for item in self.conn.response or []:
            if item.get("type") == "searchResEntry":
                attrs = {
                    name: [v.decode("utf-8", errors="replace") for v in values]
                    for name, values in item["raw_attributes"].items()
                }
                return Entry(dn=item["dn"], attrs=attrs)
        return None

    def context_csn(self, suffix: str) -> str:
        self.ops["csn"] += 1
        return context_csn(self.conn, suffix)

    def bulk_add(self, entries: Sequence[Entry]) -> list[tuple[str, str]] | None:
        """Add ``entries`` (parents first) with one ``ldapadd -c``; the (DN, error) of each
        rejected entry. None when the C client cannot be used (the caller adds one by one)."""
        if not (self.c_clients and self.url and self._bind_dn and self._password):
            return None
        if shutil.which("ldapadd") is None:
            return None
        self.ops["bulk_add"] += 1
        self.ops["add"] += len(entries)
        u = LdapUrl.parse(self.url)
        with _secret_file(self._password) as pw:
            rej = pw.with_name("rejects.ldif")
            argv = ["ldapadd", "-x", "-c", "-H", u.server_url, *_bind_args(self._bind_dn, pw)]
            argv += ["-S", str(rej)]
            try:
                proc = subprocess.run(
                    argv,
                    input=render(entries, fold=False).encode("utf-8"),
                    capture_output=True,
                    timeout=max(self.timeout, 60.0) + len(entries) / 100,
                    check=False,
                )
            except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
                raise LdapUnavailable(f"{u.server_url}: ldapadd failed: {exc}") from None
            rejected = _rejects(rej.read_text(encoding="utf-8")) if rej.exists() else []
        # -c: the exit code is the last LDAP error (a refused entry: listed in the rejects
        # file); no rejects, or 255 (the server went away): what was added is unknown, so
        # fail the cycle (the next one starts with a full resync)
        if proc.returncode != 0 and (not rejected or proc.returncode == 255):
            err = proc.stderr.decode("utf-8", errors="replace").strip().replace("\n", " | ")
            raise LdapUnavailable(f"{u.server_url}: ldapadd failed: {err[-300:]}")
        return rejected

    def _result(self, ok: bool) -> OpResult:
        r = self.conn.result or {}
        return OpResult(
            ok=bool(ok),
            code=int(r.get("result", 0 if ok else -1)),
            description=str(r.get("description", "success" if ok else "no answer")),
            message=str(r.get("message") or ""),
        )

    def _call(self, kind: str, fn: object, *args: object, **kw: object) -> OpResult:
        self.ops[kind] += 1
        try:
            ok = fn(*args, **kw)  # type: ignore[operator]
        except LDAPException as exc:
            return OpResult(ok=False, code=-1, description="exception", message=str(exc))
        return self._result(ok)

    def add(self, dn: str, attrs: Mapping[str, list[str]]) -> OpResult:
        return self._call(
            "add", self.conn.add, dn, attributes={k: list(v) for k, v in attrs.items()}
        )

    def modify(self, dn: str, changes: Changes) -> OpResult:
        mods = {name: [(_MOD[op], values)] for name, (op, values) in changes.items()}
        return self._call("modify", self.conn.modify, dn, mods)

    def delete(self, dn: str) -> OpResult:
        return self._call("delete", self.conn.delete, dn)

    @property
    def writes(self) -> int:
        return self.ops["add"] + self.ops["modify"] + self.ops["delete"]

    def close(self) -> None:
        _close(self.conn)
