"""The ldap3 adapter: connections with timeouts, paged subtree reads, writes that report their result.

Every write goes through :class:`Ldap3Tree`, which counts the operations it sends
(``ops``) so a caller and the tests can prove that a no-change cycle wrote nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException

from ..ldif import Entry
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


class Ldap3Tree:
    """:class:`fedcloud_core.bdii.sync.LdapTree` on an ldap3 connection; counts what it sends."""

    def __init__(self, conn: ldap3.Connection):
        self.conn = conn
        self.ops: Counter[str] = Counter()

    def read(self, base: str) -> list[Entry]:
        self.ops["search"] += 1
        return read_tree(self.conn, base)

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
