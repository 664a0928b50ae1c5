"""slapd as a supervised child: config from ``templates/slapd/slapd.conf.j2``, random root password.

Layout under ``data_dir``::

    run/slapd.conf   the rendered config (0600: it holds the password hash)
    run/rootpw       the clear root password (0600) for an updater in the same container
    run/slapd.log    slapd's debug output (truncated at each start)
    db/<name>/       one mdb database per suffix (o=glue, o=grid, o=infosys)

The databases are wiped at each start: the durable data is the snapshot the
updater loads, slapd is a cache of it. The password is generated per start, kept
in memory and in ``run/rootpw``; it is never logged.

Since every start begins with empty databases, :meth:`Slapd.start` can fill them
with ``slapadd -q`` before slapd serves (``preload``): 20,000 entries in well under a
second instead of one LDAP add each. slapadd names a failed entry by its LDIF line;
it is mapped back to the DN, and the entries below a failed one are left out (and
reported) so the database never holds an entry without its parent.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import jinja2
import ldap3
from ldap3.core.exceptions import LDAPException

from ..errors import ToolError
from ..external import run_tool
from ..files import atomic_write
from ..ldif import Entry, LdifError, Record, render_entry
from . import dn as dnlib
from .errors import SlapdError
from .sync import Failure

log = logging.getLogger(__name__)

TEMPLATE = "slapd/slapd.conf.j2"
TEMPLATES_ENV = "FEDCLOUD_APPLIANCE_TEMPLATES"
GLUE21_SCHEMA = "ldap/GLUE21-cloud.schema"

# the GLUE2*ID attributes of Debian's GLUE20.schema (all have an EQUALITY rule)
GLUE2_ID_ATTRIBUTES = (
    "GLUE2GroupID",
    "GLUE2ExtensionLocalID",
    "GLUE2LocationID",
    "GLUE2ContactID",
    "GLUE2DomainID",
    "GLUE2ServiceID",
    "GLUE2EndpointID",
    "GLUE2ShareID",
    "GLUE2ManagerID",
    "GLUE2ResourceID",
    "GLUE2ActivityID",
    "GLUE2PolicyID",
    "GLUE2BenchmarkID",
    "GLUE2ApplicationEnvironmentID",
    "GLUE2ApplicationHandleID",
    "GLUE2ToStorageServiceID",
    "GLUE2StorageServiceCapacityID",
    "GLUE2StorageAccessProtocolID",
    "GLUE2StorageShareSharingID",
    "GLUE2StorageShareCapacityID",
    "GLUE2ToComputingServiceID",
)
GLUE_INDEXES = (
    "objectClass eq,pres",
    ",".join(GLUE2_ID_ATTRIBUTES) + " eq",
    "GLUE2EndpointInterfaceName,GLUE2PolicyRule,GLUE2ServiceType eq",
    "GLUE2ServiceAdminDomainForeignKey,GLUE2EndpointServiceForeignKey eq",
    "entryCSN,entryUUID eq",
)
OTHER_INDEXES = ("objectClass eq,pres", "entryCSN,entryUUID eq")
SCHEMAS = ("core.schema", "cosine.schema", "Glue-MDS.schema", "GLUE20.schema")


def template_dirs() -> list[Path]:
    """Where ``templates/`` is looked for: $FEDCLOUD_APPLIANCE_TEMPLATES, the source tree, share/."""
    out = []
    if os.environ.get(TEMPLATES_ENV):
        out.append(Path(os.environ[TEMPLATES_ENV]))
    out.append(Path(__file__).resolve().parents[3] / "templates")
    out.append(Path(sys.prefix) / "share" / "fedcloud-appliance" / "templates")
    out.append(Path("/usr/share/fedcloud-appliance/templates"))
    return out


def find_template_dir(name: str = TEMPLATE) -> Path:
    for d in template_dirs():
        if (d / name).is_file():
            return d
    raise SlapdError(f"template {name} not found in: " + ", ".join(str(d) for d in template_dirs()))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """RFC 2307 ``{SSHA}`` hash (salted SHA-1, what slapd checks natively)."""
    salt = salt if salt is not None else secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()  # noqa: S324 - the SSHA scheme
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


@dataclass(frozen=True)
class Database:
    name: str  # directory name under db/
    suffix: str
    indexes: tuple[str, ...]

    @property
    def rootdn(self) -> str:
        return f"cn=updater,{self.suffix}"


DEFAULT_DATABASES = (
    Database("glue", "o=glue", GLUE_INDEXES),
    Database("grid", "o=grid", OTHER_INDEXES),
    Database("infosys", "o=infosys", OTHER_INDEXES),
)


@dataclass(frozen=True)
class SlapdSettings:
    """Everything the template and the process need (built from the config by the caller)."""

    role: str  # "resource BDII" / "site BDII": a comment in the config
    host: str
    port: int
    data_dir: Path
    maxsize_mb: int = 1024
    loglevel: str = "0"  # slapd -d level: 0 = errors only; "stats" logs every operation
    threads: int = 4
    timelimit: int = 120
    idletimeout: int = 300
    databases: tuple[Database, ...] = DEFAULT_DATABASES
    schema_dir: Path = Path("/etc/ldap/schema")
    extra_schemas: tuple[Path, ...] = ()
    module_dir: Path = Path("/usr/lib/ldap")
    slapd_bin: str = "/usr/sbin/slapd"
    slaptest_bin: str = "/usr/sbin/slaptest"
    slapadd_bin: str = "/usr/sbin/slapadd"
    start_timeout: float = 20.0
    template_dir: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ldap://{host}:{self.port}"

    def schemas(self) -> list[Path]:
        out = [self.schema_dir / s for s in SCHEMAS]
        out.extend(self.extra_schemas)
        return out


def glue21_schema_file() -> Path | None:
    """The project's GLUE 2.1 schema (``templates/ldap/GLUE21-cloud.schema``) if it exists."""
    for d in template_dirs():
        p = d / GLUE21_SCHEMA
        if p.is_file():
            return p
    return None


def render_config(settings: SlapdSettings, rootpw_hash: str) -> str:
    """slapd.conf text for ``settings`` (pure: no file is touched)."""
    tdir = settings.template_dir or find_template_dir()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(tdir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - slapd.conf, not HTML
        keep_trailing_newline=True,
    )
    dbs = [
        {
            "suffix": db.suffix,
            "rootdn": db.rootdn,
            "directory": str(settings.data_dir / "db" / db.name),
            "maxsize": settings.maxsize_mb * 1024 * 1024,
            "indexes": list(db.indexes),
        }
        for db in settings.databases
    ]
    return env.get_template(TEMPLATE).render(
        role=settings.role,
        schemas=[str(p) for p in settings.schemas()],
        run_dir=str(settings.run_dir),
        module_dir=str(settings.module_dir),
        modules=["back_mdb", "syncprov"],
        loglevel=settings.loglevel,
        timelimit=settings.timelimit,
        threads=settings.threads,
        databases=dbs,
        rootpw_hash=rootpw_hash,
        idletimeout=settings.idletimeout,
        checkpoint="1024 5",
    )


_SLAPADD_LINE = re.compile(r"\(line=(\d+)\)")
_SLAPADD_WHY = re.compile(r"^slapadd: |\s*\(line=\d+\):?")


@dataclass
class Slapd:
    """One slapd child process. ``start()``/``stop()``; also a context manager."""

    settings: SlapdSettings
    password: str | None = field(default=None, repr=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0
    loaded: dict[str, list[Failure]] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def log_path(self) -> Path:
        return self.settings.run_dir / "slapd.log"

    @property
    def password_file(self) -> Path:
        return self.settings.run_dir / "rootpw"

    def rootdn(self, suffix: str = "o=glue") -> str:
        for db in self.settings.databases:
            if db.suffix.lower() == suffix.lower():
                return db.rootdn
        raise KeyError(suffix)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _prepare(self) -> Path:
        s = self.settings
        s.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(s.run_dir, 0o700)
        for db in s.databases:
            d = s.data_dir / "db" / db.name
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
        self.password = secrets.token_urlsafe(32)
        conf = s.run_dir / "slapd.conf"
        atomic_write(conf, render_config(s, hash_password(self.password)), mode=0o600)
        atomic_write(self.password_file, self.password + "\n", mode=0o600)
        run_tool([s.slaptest_bin, "-u", "-f", str(conf)], timeout=30)
        return conf

    def start(self, preload: Mapping[str, Sequence[Entry | Record]] | None = None) -> None:
        """Write a fresh config, start slapd in the foreground, wait until it answers.

        ``preload``: entries per suffix (parents first) put into the new databases with
        ``slapadd`` before slapd serves; :attr:`loaded` then holds, per suffix loaded, the
        entries that failed (by DN). A suffix whose slapadd failed as a whole is left
        empty and not in :attr:`loaded` (the updater fills it over LDAP).
        """
        if self.running():
            return
        s = self.settings
        conf = self._prepare()
        self.loaded = {}
        for suffix, entries in (preload or {}).items():
            db = next(d for d in s.databases if d.suffix.lower() == suffix.lower())
            try:
                self.loaded[suffix] = self._slapadd(conf, db, entries)
            except ToolError as exc:  # slapadd missing, timed out or failed as a whole
                log.warning("%s: bulk load failed, filled over LDAP instead: %s", suffix, exc)
                self._wipe(db)
        argv = [s.slapd_bin, "-f", str(conf), "-h", s.url + "/", "-d", s.loglevel]
        with open(self.log_path, "wb") as logf:
            try:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf
                )
            except OSError as exc:
                raise SlapdError(f"cannot start {s.slapd_bin}: {exc.strerror}") from None
        self.starts += 1
        try:
            self._wait_ready()
        except SlapdError:
            self.stop()
            raise
        log.info("slapd (%s) answering on %s, data in %s", s.role, s.url, s.data_dir)

    def _wipe(self, db: Database) -> None:
        d = self.settings.data_dir / "db" / db.name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)

    def _slapadd(
        self, conf: Path, db: Database, entries: Sequence[Entry | Record]
    ) -> list[Failure]:
        """Load ``entries`` into the (empty) database of ``db``; the failed ones by DN.

        A :class:`Record` goes in as its text; if slapadd refuses it, it is parsed, made
        writable and tried again before it counts as failed."""
        from .publish import as_entry  # publish uses this module's callers, not the reverse

        failures: list[Failure] = []
        todo = list(entries)
        for _round in range(6):
            chunks, starts, line = [], [], 1
            for e in todo:
                text = e.text if isinstance(e, Record) else render_entry(e, fold=False)
                starts.append(line)
                chunks.append(text)
                line += text.count("\n") + 1
            proc = run_tool(
                [self.settings.slapadd_bin, "-q", "-c", "-f", str(conf), "-b", db.suffix],
                input="\n".join(chunks).encode("utf-8"),
                timeout=600,
                check=False,
            )
            # slapadd -c may exit 0 although it refused entries: its messages decide
            bad: dict[int, str] = {}
            err_lines = proc.stderr.decode("utf-8", errors="replace").splitlines()
            for i, ln in enumerate(err_lines):
                m = _SLAPADD_LINE.search(ln)
                if not m:
                    continue
                k = bisect.bisect_right(starts, int(m.group(1))) - 1
                if k < 0:
                    continue
                why = _SLAPADD_WHY.sub("", ln).strip()
                if i > 0 and not _SLAPADD_LINE.search(err_lines[i - 1]):
                    why = f"{err_lines[i - 1].strip().lstrip('<= ').strip()}; {why}"
                bad.setdefault(k, why)
            if not bad:
                if proc.returncode == 0:
                    return failures
                tail = " | ".join(err_lines[-3:])
                raise SlapdError(f"slapadd {db.suffix} failed (code {proc.returncode}): {tail}")
            failed_keys = set()
            retry: dict[int, Entry] = {}
            for k, why in bad.items():
                item = todo[k]
                if isinstance(item, Record):
                    try:
                        retry[k] = as_entry(item)
                        continue
                    except (LdifError, dnlib.DnError) as exc:
                        why = f"cannot be parsed: {exc}"
                failures.append(Failure("add", item.dn, why))
                failed_keys.add(dnlib.normalize(item.dn))
            keep: list[Entry | Record] = []
            dropped = bool(retry)
            for k, e in enumerate(todo):
                if k in retry:
                    keep.append(retry[k])
                    continue
                if k in bad:
                    continue
                key = dnlib.normalize(e.dn)
                if any(key.endswith("," + f) for f in failed_keys):
                    failures.append(
                        Failure("add", e.dn, "not attempted: the parent entry could not be added")
                    )
                    failed_keys.add(key)
                    dropped = True
                    continue
                keep.append(e)
            if not dropped:
                return failures  # nothing below a failed entry: what slapadd loaded is right
            self._wipe(db)
            todo = keep
        raise SlapdError(f"slapadd {db.suffix}: still failing after 6 rounds")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise SlapdError(
                    f"exited during start-up (code {code}): {self.log_tail()}", returncode=code
                )
            try:
                with socket.create_connection((self.settings.host, self.settings.port), timeout=1):
                    pass
            except OSError as exc:
                last = str(exc)
                time.sleep(0.1)
                continue
            server = ldap3.Server(self.url, connect_timeout=1, get_info=ldap3.NONE)
            conn = ldap3.Connection(server, receive_timeout=2, raise_exceptions=False)
            try:
                if conn.bind() and conn.search("", "(objectClass=*)", search_scope=ldap3.BASE):
                    return
                last = str((conn.result or {}).get("description", "no answer"))
            except LDAPException as exc:
                last = str(exc)
            finally:
                with contextlib.suppress(LDAPException):
                    conn.unbind()
            time.sleep(0.1)
        raise SlapdError(
            f"not answering on {self.url} after {self.settings.start_timeout:.0f}s: {last}"
        )

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
        return " | ".join(tail) or "(empty log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, SIGKILL if needed. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("slapd did not stop in %.0fs; killing it", timeout)
                proc.kill()
                proc.wait(5)
        log.info("slapd (%s) stopped (exit %s)", self.settings.role, proc.returncode)

    def ensure_running(
        self, preload: Callable[[], Mapping[str, Sequence[Entry | Record]]] | None = None
    ) -> bool:
        """Start slapd if it is not running; True if it was (re)started now.

        ``preload``: called only when starting, gives the entries to bulk-load."""
        if self.running():
            return False
        if self.proc is not None:
            log.warning(
                "slapd exited with code %s; restarting it: %s",
                self.proc.returncode,
                self.log_tail(),
            )
            self.proc = None
        self.start(preload() if preload else None)
        return True

    def __enter__(self) -> Slapd:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
