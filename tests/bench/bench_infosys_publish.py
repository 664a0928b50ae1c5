"""LDAP publish time for 20,000 GLUE2 entries: initial load, no-change resync, 1% change.

Starts the project's templated slapd (real Debian schema) on a free 127.0.0.1 port,
publishes through the updater (fedcloud_core.bdii.sync over ldap3) and prints a table.
Usage: .venv/bin/python tests/bench/bench_infosys_publish.py [N]
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path

from fedcloud_core.bdii.ldap import Ldap3Tree, connect
from fedcloud_core.bdii.slapd import Slapd, SlapdSettings
from fedcloud_core.bdii.sync import SyncResult, sync
from fedcloud_core.ldif import Entry

SVC_ID = "https://keystone.example.org:5000/v3_cloud.compute"
SVC = f"GLUE2ServiceID={SVC_ID},GLUE2GroupID=resource,o=glue"


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


def timed(tree: Ldap3Tree, wanted: list[Entry]) -> tuple[float, SyncResult, int]:
    before = tree.writes
    t = time.perf_counter()
    res = sync(tree, "o=glue", wanted)
    return time.perf_counter() - t, res, tree.writes - before


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory(prefix="bench-bdii-") as tmp:
        slapd = Slapd(
            SlapdSettings(role="bench", host="127.0.0.1", port=free_port(), data_dir=Path(tmp))
        )
        with slapd:
            tree = Ldap3Tree(
                connect(slapd.url, bind_dn=slapd.rootdn(), password=slapd.password, timeout=120)
            )
            wanted = tree_of(n)
            rows = []
            dt, res, w = timed(tree, wanted)
            rows.append(("initial load", dt, res, w))
            dt, res, w = timed(tree, wanted)
            rows.append(("no-change resync", dt, res, w))
            k = max(1, n // 100)  # 1%: a third modified, a third added, a third deleted
            third = max(1, k // 3)
            changed = list(wanted)
            for i in range(3, 3 + third):
                changed[i] = image(i - 3, rev=1)
            del changed[len(changed) - third :]
            changed += [image(n + i) for i in range(third)]
            dt, res, w = timed(tree, changed)
            rows.append(("1% change", dt, res, w))
            tree.close()
    print(f"infosys publish: {n} entries into slapd (mdb, Debian GLUE20 schema) via ldap3")
    print(
        f"{'case':<18} {'seconds':>8} {'writes':>7} {'added':>6} {'modified':>8} {'deleted':>7} "
        f"{'failed':>6} {'entries/s':>9}"
    )
    for name, dt, res, w in rows:
        print(
            f"{name:<18} {dt:8.2f} {w:7d} {res.added:6d} {res.modified:8d} {res.deleted:7d} "
            f"{res.failed:6d} {n / dt:9.0f}"
        )
    return 0 if all(r[2].failed == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
