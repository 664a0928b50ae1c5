"""LDAP publish time for 20,000 GLUE2 entries, next to Debian's ``bdii-update`` in the same run.

Cases: first load (until searchable), a cycle with no change, a 1% change (a third each
added, modified, deleted), and the site BDII aggregating the resource BDII's tree.

- ours: the resource BDII's path as the job runs it (fedcloud_core.bdii.publish): the
  snapshot LDIF file is parsed, checked and digested; the first load goes into the new
  database with ``slapadd`` before slapd serves (the slapd start is counted); later
  cycles compare digests with the applied state and the suffix's contextCSN. The site
  BDII reads the resource BDII (ldapsearch), re-homes every entry and publishes the same
  way into its own slapd.
- bdii-update (Debian package ``bdii``, installed by scripts/dev/bench when missing): its
  own slapd config (mdb maxsize raised: 20,000 entries do not fit the default) on a free
  127.0.0.1 port, run as a daemon with the same tree as a static LDIF file; each cycle's
  time is what its log says between "Starting Update" and "Sleeping". Its tools call
  ``ldapadd -h HOST -p PORT``, which OpenLDAP 2.5 rejects: a wrapper on its PATH turns
  that into ``-H ldap://HOST:PORT``.

The machine may be shared: the load average is printed with the figures.
Usage: .venv/bin/python tests/bench/bench_infosys_publish.py [N]
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from fedcloud_core.bdii.ldap import Ldap3Tree, connect
from fedcloud_core.bdii.publish import Item, PublishResult, prepare, publish, state_file
from fedcloud_core.bdii.service import stop_supervised
from fedcloud_core.bdii.slapd import Slapd, SlapdSettings
from fedcloud_core.bdii.snapshot_reader import load_snapshot
from fedcloud_core.ldif import Entry, render
from fedcloud_core.report import RunReport

SVC_ID = "https://keystone.example.org:5000/v3_cloud.compute"
SVC = f"GLUE2ServiceID={SVC_ID},GLUE2GroupID=resource,o=glue"
BDII_UPDATE = Path("/usr/sbin/bdii-update")
BDII_SLAPD_CONF = Path("/usr/share/bdii/bdii-slapd.conf")
WRAPPER = """#!/bin/sh
# OpenLDAP 2.5 dropped -h HOST / -p PORT: bdii-update still passes them. Turn them into -H.
tool=$(basename "$0"); host=""; port=389; prev=""
for a do
  shift
  case "$prev" in -h) host=$a; prev=""; continue ;; -p) port=$a; prev=""; continue ;; esac
  case "$a" in -h|-p) prev=$a; continue ;; esac
  set -- "$@" "$a"
done
if [ -n "$host" ]; then exec /usr/bin/"$tool" -H "ldap://$host:$port" "$@"; fi
exec /usr/bin/"$tool" "$@"
"""
_LOGTIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \[\w+\] (.*)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def image(i: int, *, rev: int = 0) -> Entry:
    iid = f"00000000-0000-4000-8000-{i:012d}"
    e = Entry(f"GLUE2ApplicationEnvironmentID={iid},{SVC}")
    e.add("objectClass", "GLUE2Entity", "GLUE2ApplicationEnvironment")
    e.add("GLUE2ApplicationEnvironmentID", iid).add("GLUE2EntityName", f"Image {i} rev {rev}")
    e.add("GLUE2EntityCreationTime", "2026-11-21T10:00:00Z").add("GLUE2EntityValidity", 3600)
    e.add(
        "GLUE2EntityOtherInfo", "os_distro=ubuntu", f"os_version=22.{i % 10}", "architecture=x86_64"
    )
    e.add("GLUE2ApplicationEnvironmentAppName", f"image-{i}")
    e.add("GLUE2ApplicationEnvironmentRepository", f"https://appdb.example.org/store/vo/image/{i}/")
    e.add("GLUE2ApplicationEnvironmentComputingManagerForeignKey", f"{SVC_ID}_manager")
    return e


def tree_of(n: int) -> list[Entry]:
    base = [
        Entry("o=glue").add("objectClass", "organization").add("o", "glue"),
        Entry("GLUE2GroupID=resource,o=glue")
        .add("objectClass", "GLUE2Group")
        .add("GLUE2GroupID", "resource"),
        Entry(SVC)
        .add("objectClass", "GLUE2Entity", "GLUE2Service", "GLUE2ComputingService")
        .add("GLUE2ServiceID", SVC_ID)
        .add("GLUE2ServiceType", "org.openstack.nova")
        .add("GLUE2ServiceQualityLevel", "production")
        .add("GLUE2ServiceAdminDomainForeignKey", "BENCH-SITE"),
    ]
    return base + [image(i) for i in range(n - len(base))]


def one_percent(wanted: list[Entry], n: int) -> list[Entry]:
    third = max(1, n // 300)
    changed = list(wanted)
    for i in range(3, 3 + third):
        changed[i] = image(i - 3, rev=1)
    del changed[len(changed) - third :]
    return changed + [image(n + i) for i in range(third)]


def write_atomically(path: Path, text: str) -> None:
    """As cloud-info writes its snapshot: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------- ours


class Ours:
    """One BDII of ours: a slapd from the project template + the publish path."""

    def __init__(self, tmp: Path, name: str):
        self.tmp = tmp / name
        self.slapd = Slapd(
            SlapdSettings(
                role=f"bench {name}",
                host="127.0.0.1",
                port=free_port(),
                data_dir=self.tmp / "slapd",
                maxsize_mb=2048,
            )
        )
        self.state = state_file(self.tmp / "state", "o=glue")
        self.tree: Ldap3Tree | None = None

    def _connect(self) -> Ldap3Tree:
        s = self.slapd
        conn = connect(s.url, bind_dn=s.rootdn(), password=s.password, timeout=120)
        return Ldap3Tree(conn, url=s.url, bind_dn=s.rootdn(), password=s.password, timeout=120)

    def first(self, entries: Sequence[Item], source: str = "") -> PublishResult:
        prep = prepare(entries, base="o=glue")
        self.slapd.start({"o=glue": prep.loadable()})
        self.tree = self._connect()
        return publish(
            self.tree,
            "o=glue",
            entries,
            state_path=self.state,
            prepared=prep,
            loaded=self.slapd.loaded["o=glue"],
            source=source,
        )

    def cycle(self, entries: Sequence[Item], source: str = "") -> PublishResult:
        assert self.tree is not None
        return publish(self.tree, "o=glue", entries, state_path=self.state, source=source)

    def stop(self) -> None:
        if self.tree is not None:
            self.tree.close()
        self.slapd.stop()


def snapshot_cycle(ours: Ours, path: Path, *, first: bool = False) -> tuple[float, PublishResult]:
    """What the resource BDII job does per cycle: the snapshot file is the input (split
    into records, parsed only where they changed)."""
    t = time.perf_counter()
    snap = load_snapshot(path, max_age=3600, base="GLUE2GroupID=resource,o=glue", records=True)
    items = snap.items
    if first:
        res = ours.first(items, snap.digest)
    else:
        res = ours.cycle(items, snap.digest)
    return time.perf_counter() - t, res


def site_cycle(tmp: Path, port: int, resource_url: str) -> tuple[float, RunReport]:
    """One cycle of the site BDII job itself (``site-bdii --with-slapd``): it asks the
    resource BDII (its contextCSN, then one ldapsearch kept as records when it moved),
    re-homes the entries under the site's domain and publishes them into its own slapd
    (started and bulk-loaded by the first cycle)."""
    import argparse
    import json

    from fedcloud_core.config import parse_config
    from fedcloud_core.jobs import JobContext
    from fedcloud_sitebdii import jobs as site_jobs

    doc = {
        "site": {"name": "BENCH-SITE", "contacts": {"general": "grid-admin@example.org"}},
        "paths": {"state_dir": str(tmp / "site-state")},
        "site_bdii": {
            "resource_bdiis": [resource_url],
            "port": port,
            "public_hostname": "bdii.example.org",
            "maxsize_mb": 2048,
            "timeout": 120,
        },
    }
    cfg = parse_config(json.dumps(doc), source="bench", environ={})
    t = time.perf_counter()
    report = site_jobs.run(JobContext(config=cfg, options=argparse.Namespace(with_slapd=True)))
    return time.perf_counter() - t, report


# ---------------------------------------------------------------- bdii-update


class BdiiUpdate:
    """Debian's bdii-update as a daemon against its own slapd (config from the package)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp / "bdii-update"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def setup(self, ldif: str) -> None:
        t = self.tmp
        for d in ("db/glue", "db/grid", "db/stats", "run", "var/archive", "ldif", "provider"):
            (t / d).mkdir(parents=True, exist_ok=True)
        (t / "plugin").mkdir(exist_ok=True)
        conf = BDII_SLAPD_CONF.read_text(encoding="utf-8")
        conf = conf.replace("/var/lib/bdii/db", str(t / "db")).replace(
            "/run/bdii/db", str(t / "run")
        )
        # 20,000 entries do not fit the default 10 MiB map
        conf = re.sub(r"(?m)^(directory\s+.*)$", r"\1\nmaxsize 4294967296", conf)
        (t / "slapd.conf").write_text(conf, encoding="utf-8")
        (t / "bin").mkdir(exist_ok=True)
        for tool in ("ldapadd", "ldapmodify", "ldapdelete", "ldapsearch"):
            w = t / "bin" / tool
            w.write_text(WRAPPER, encoding="utf-8")
            w.chmod(0o755)
        (t / "bdii.conf").write_text(
            "\n".join(
                [
                    f"BDII_LOG_FILE={t}/bdii-update.log",
                    f"BDII_PID_FILE={t}/run/bdii-update.pid",
                    "BDII_LOG_LEVEL=INFO",
                    f"BDII_LDIF_DIR={t}/ldif",
                    f"BDII_PROVIDER_DIR={t}/provider",
                    f"BDII_PLUGIN_DIR={t}/plugin",
                    f"BDII_PORT={self.port}",
                    "BDII_BREATHE_TIME=3",
                    "BDII_READ_TIMEOUT=300",
                    "BDII_ARCHIVE_SIZE=0",
                    "BDII_DELETE_DELAY=0",
                    f"BDII_VAR_DIR={t}/var",
                    f"BDII_RUN_DIR={t}/run",
                    "BDII_HOSTNAME=127.0.0.1",
                    f"SLAPD_CONF={t}/slapd.conf",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self.write_ldif(ldif)

    def write_ldif(self, ldif: str) -> None:
        p = self.tmp / "ldif" / "tree.ldif"
        tmp = p.with_name(".tree.tmp")
        tmp.write_text(ldif, encoding="utf-8")
        tmp.replace(p)

    def start_slapd(self) -> None:
        argv = ["/usr/sbin/slapd", "-f", str(self.tmp / "slapd.conf")]
        argv += ["-h", f"ldap://127.0.0.1:{self.port}/", "-d", "0"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            r = subprocess.run(
                ["ldapsearch", "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-b", "", "-s", "base"],
                capture_output=True,
                check=False,
            )
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("bdii slapd did not answer")

    def start_updater(self) -> None:
        env = dict(os.environ, PATH=f"{self.tmp / 'bin'}:{os.environ.get('PATH', '')}")
        subprocess.run(
            [sys.executable, str(BDII_UPDATE), "-c", str(self.tmp / "bdii.conf"), "-d"],
            env=env,
            check=True,
        )  # daemonizes: the parent returns at once
        pid_file = self.tmp / "run" / "bdii-update.pid"
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                self.pid = int(pid_file.read_text().strip())
                return
            time.sleep(0.05)
        raise RuntimeError("bdii-update did not write its pid file")

    def cycles(self) -> list[tuple[float, dict[str, str]]]:
        """(seconds, stats) of each finished cycle, from the log."""
        log = self.tmp / "bdii-update.log"
        if not log.exists():
            return []
        out: list[tuple[float, dict[str, str]]] = []
        start: datetime | None = None
        stats: dict[str, str] = {}
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _LOGTIME.match(line)
            if not m:
                continue
            ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            msg = m.group(2)
            if msg == "Starting Update":
                start, stats = ts, {}
            elif msg.startswith("Sleeping for") and start is not None:
                out.append(((ts - start).total_seconds(), stats))
                start = None
            elif ": " in msg:
                k, _, v = msg.partition(": ")
                stats[k] = v
        return out

    def wait_cycles(self, n: int, timeout: float = 600) -> list[tuple[float, dict[str, str]]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.cycles()
            if len(c) >= n:
                return c
            time.sleep(0.02)
        raise RuntimeError(f"bdii-update did not finish cycle {n} in {timeout:.0f}s")

    def count(self) -> int:
        r = subprocess.run(
            [
                "ldapsearch",
                "-x",
                "-LLL",
                "-H",
                f"ldap://127.0.0.1:{self.port}",
                "-b",
                "o=glue",
                "dn",
            ],
            capture_output=True,
            check=False,
        )
        return r.stdout.count(b"\ndn:") + r.stdout.startswith(b"dn:")

    def stop(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.pid = None
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def run_bdii_update(tmp: Path, wanted: list[Entry], changed: list[Entry]) -> dict[str, object]:
    b = BdiiUpdate(tmp)
    b.setup(render(wanted))
    try:
        b.start_slapd()
        b.start_updater()
        c = b.wait_cycles(2)  # first load, then a cycle with no change
        b.write_ldif(render(changed))  # during the sleep after cycle 2
        c = b.wait_cycles(3)
        loaded = b.count()
    finally:
        b.stop()
    return {"first": c[0], "nochange": c[1], "change": c[2], "entries": loaded}


# ---------------------------------------------------------------- main


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    wanted = tree_of(n)
    changed = one_percent(wanted, n)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-bdii-") as tmpname:
        tmp = Path(tmpname)
        snap = tmp / "snapshot.ldif"
        write_atomically(snap, render(wanted))
        print(f"infosys publish: {n} entries, load average {load()}")
        ours = Ours(tmp, "resource")
        rows: list[tuple[str, float, PublishResult, int, int]] = []
        try:
            for name, first in (
                ("first load", True),
                ("no change", False),
                ("no change, rewrite", False),
            ):
                if name == "no change, rewrite":  # cloud-info wrote the same content again
                    write_atomically(snap, render(wanted))
                before = dict(ours.tree.ops) if ours.tree else {}
                dt, res = snapshot_cycle(ours, snap, first=first)
                assert ours.tree is not None
                ops = {k: v - before.get(k, 0) for k, v in ours.tree.ops.items()}
                rows.append((name, dt, res, ops.get("search", 0), _writes(ops)))
            write_atomically(snap, render(changed))
            before = dict(ours.tree.ops)
            dt, res = snapshot_cycle(ours, snap)
            ops = {k: v - before.get(k, 0) for k, v in ours.tree.ops.items()}
            rows.append(("1% change", dt, res, ops.get("search", 0), _writes(ops)))
            site_rows = []
            site_port = free_port()
            for name in ("site first load", "site no change"):
                dt, rep = site_cycle(tmp, site_port, ours.slapd.url)
                site_rows.append((name, dt, rep))
        finally:
            ours.stop()
            stop_supervised()  # the site BDII job's slapd
        load_ours = load()
        if BDII_UPDATE.exists():
            theirs: dict[str, object] | None = run_bdii_update(tmp, wanted, changed)
        else:
            theirs = None
            print("bdii-update: not installed (scripts/dev/bench installs Debian's bdii as root)")
    print(
        f"{'case':<18} {'ours s':>7} {'mode':>11} {'reads':>5} {'writes':>6} {'failed':>6} "
        f"{'bdii-update s':>13} {'ratio':>6}"
    )
    keys = {
        "first load": "first",
        "no change": "nochange",
        "no change, rewrite": "nochange",
        "1% change": "change",
    }
    for name, dt, res, reads, writes in rows:
        other = ""
        ratio = ""
        if theirs:
            t_other = theirs[keys[name]][0]  # type: ignore[index]
            other = f"{t_other:13.2f}"
            ratio = f"{dt / t_other:6.2f}" if t_other else "     -"
        print(
            f"{name:<18} {dt:7.2f} {res.mode:>11} {reads:5d} {writes:6d} {res.failed:6d} {other:>13} {ratio:>6}"
        )
        ok = ok and res.failed == 0
    for name, dt, rep in site_rows:
        c = rep.counts
        writes = c.get("added", 0) + c.get("modified", 0) + c.get("deleted", 0)
        mode = str(rep.details.get("publish", "?"))
        print(f"{name:<18} {dt:7.2f} {mode:>11} {'':>5} {writes:6d} {c.get('failed', 0):6d}")
        ok = ok and not rep.errors
    first_ours, nochange, rewrite, change = rows[0], rows[1], rows[2], rows[3]
    print(f"load average after ours: {load_ours}; now: {load()}")
    checks = [
        (
            "no-change cycle <= 0.5 s (also with the snapshot rewritten)",
            max(nochange[1], rewrite[1]) <= 0.5,
        ),
        (
            "no-change cycle: zero writes, no tree read",
            nochange[3] == nochange[4] == rewrite[3] == rewrite[4] == 0,
        ),
        ("site first load <= 2x resource first load", site_rows[0][1] <= 2 * first_ours[1]),
    ]
    if theirs:
        f = theirs["first"][0]  # type: ignore[index]
        c = theirs["change"][0]  # type: ignore[index]
        checks += [
            ("first load <= half of bdii-update", first_ours[1] <= f / 2),
            ("1% change <= half of bdii-update", change[1] <= c / 2),
            (f"bdii-update loaded all entries ({theirs['entries']})", theirs["entries"] >= n),
        ]
    for text, good in checks:
        print(f"  [{'ok' if good else 'MISSED'}] {text}")
    return 0 if ok else 1


def _writes(ops: dict[str, int]) -> int:
    return ops.get("add", 0) + ops.get("modify", 0) + ops.get("delete", 0)


if __name__ == "__main__":
    sys.exit(main())
