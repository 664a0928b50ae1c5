"""What both BDII jobs share: the supervised slapd of ``--with-slapd``, the writer connection.

With ``--with-slapd`` the job process owns one slapd per settings: started on the
first run, restarted (fresh database, new password) if it died, stopped at exit.
Without it, the job writes to a slapd started elsewhere, reading the root password
from the 0600 file that slapd's starter wrote.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..ldif import Entry, Record
from .errors import BdiiError
from .ldap import Ldap3Tree, connect
from .slapd import Slapd, SlapdSettings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_supervised: dict[tuple[str, int], Slapd] = {}


def supervised_slapd(
    settings: SlapdSettings,
    preload: Callable[[], Mapping[str, Sequence[Entry | Record]]] | None = None,
) -> tuple[Slapd, bool]:
    """The process's slapd for ``settings`` (started if needed); True if it was (re)started now.

    ``preload`` gives the entries per suffix to bulk-load when it is (re)started
    (:attr:`Slapd.loaded` then says what failed)."""
    key = (settings.host, settings.port)
    with _lock:
        slapd = _supervised.get(key)
        if slapd is None:
            slapd = Slapd(settings)
            _supervised[key] = slapd
        started = slapd.ensure_running(preload)
        return slapd, started


@atexit.register
def stop_supervised() -> None:
    """Stop every slapd this process started (also called at exit)."""
    with _lock:
        for slapd in _supervised.values():
            slapd.stop()
        _supervised.clear()


def read_password(path: Path) -> str:
    try:
        pw = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BdiiError(f"{path}: cannot read the slapd root password: {exc.strerror}") from None
    if not pw:
        raise BdiiError(f"{path}: the slapd root password file is empty")
    return pw


@dataclass(frozen=True)
class Target:
    """Where a job writes: URL, root DN per suffix and the password (never printed)."""

    url: str
    password: str
    rootdn_template: str = "cn=updater,{suffix}"

    def __repr__(self) -> str:
        return f"Target(url={self.url!r})"

    def tree(self, suffix: str, *, timeout: int) -> Ldap3Tree:
        dn = self.rootdn_template.format(suffix=suffix)
        conn = connect(self.url, bind_dn=dn, password=self.password, timeout=timeout)
        return Ldap3Tree(conn, url=self.url, bind_dn=dn, password=self.password, timeout=timeout)
