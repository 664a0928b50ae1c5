"""Bulk Nova servers by cloning database rows (``testbed scale --clone-servers N``).

Booting through nova-compute runs at ~0.05 servers/s on the fake driver, so the
accounting benchmark's 10,000 servers are made here instead: the rows of real,
ACTIVE ``scale-server-*`` servers (templates) are copied in the cell database
(instances, instance_extra, instance_info_caches, instance_system_metadata,
instance_metadata, block_device_mapping, instance_id_mappings, tags) with a new
uuid per clone, plus generated instance_actions/_events, and in the nova_api
database (instance_mappings, request_specs). The real Nova API then serves them like
any server. Clones are named ``scale-clone-NNNNN`` and sit on ``scale-clone-host``,
a host no nova-compute runs, so no periodic task (power-state sync, resource
tracker, pending deletes) ever sees them; they have no placement allocations.

Spread (deterministic per clone number): round robin over the ``scale-project-*``
projects and, within a project, over the users holding a role on it; created in the
last 60 days; ~10% deleted in the last 30 days (soft-deleted rows and mapping
queued_for_delete, as Nova's instance.destroy() leaves them), ~5% stopped, ~5%
suspended, the rest active; every update is older than 2 hours. Each clone has a
'create' action (+ event) and a 'stop'/'suspend'/'delete' action matching its state.

``remove_clones`` hard-deletes exactly those rows (host ``scale-clone-host`` and name
``scale-clone-*``), never another server's.
"""

# ruff: noqa: S608  (table/column names are module constants; values are always bound parameters)

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .clients import Clients, session
from .layout import DB_PASSWORD, DB_USER, HOST, PORTS

CLONE_HOST = "scale-clone-host"
CLONE_NAME = "scale-clone-{:05d}"
CLONE_LIKE = "scale-clone-%"
TEMPLATE_LIKE = "scale-server-%"
BATCH = 500  # clones per transaction
TEMPLATES = 20  # real servers used as templates (rows are rewritten, so a few suffice)

SPAN = timedelta(days=60)  # created_at spread
DELETED_SPAN = timedelta(days=30)  # deleted_at spread
QUIET = timedelta(hours=2)  # every updated_at is older than this
# share of clones per final state; the rest stay active
DELETED, STOPPED, SUSPENDED = 0.10, 0.05, 0.05
# vm_state -> (power_state, action, compute event)
STATES = {
    "active": (1, None, None),
    "stopped": (4, "stop", "compute_stop_instance"),
    "suspended": (7, "suspend", "compute_suspend_instance"),
    "deleted": (0, "delete", "compute_terminate_instance"),
}
# cell tables keyed by the instance uuid that a server's rows live in (column holding it)
CELL_CHILDREN = {
    "instance_extra": "instance_uuid",
    "instance_info_caches": "instance_uuid",
    "instance_system_metadata": "instance_uuid",
    "instance_metadata": "instance_uuid",
    "block_device_mapping": "instance_uuid",
    "instance_id_mappings": "uuid",
}
# soft-deleted by instance.destroy() (tags are hard-deleted; none are cloned for deleted ones)
SOFT_DELETED = tuple(CELL_CHILDREN)
# every cell table that may hold a clone's rows, children first (for removal)
CELL_CLEANUP = (
    ("instance_actions_events", None),
    ("instance_actions", "instance_uuid"),
    ("instance_faults", "instance_uuid"),
    ("security_group_instance_association", "instance_uuid"),
    ("virtual_interfaces", "instance_uuid"),
    ("tags", "resource_id"),
    *CELL_CHILDREN.items(),
    ("instances", "uuid"),
)
API_CLEANUP = ("instance_mappings", "request_specs", "build_requests")


class CloneError(RuntimeError):
    """The clone servers cannot be made or removed."""


@contextmanager
def connect() -> Iterator[Any]:
    import pymysql

    where = f"database {HOST}:{PORTS['mariadb']}"
    try:
        conn = pymysql.connect(host=HOST, port=PORTS["mariadb"], user=DB_USER, password=DB_PASSWORD,
                               charset="utf8", autocommit=False, connect_timeout=10,
                               read_timeout=600, write_timeout=600)  # fmt: skip
    except pymysql.err.MySQLError as exc:
        raise CloneError(f"{where}: {exc}") from exc
    try:
        yield conn
    except pymysql.err.MySQLError as exc:
        raise CloneError(f"{where}: {exc}") from exc
    finally:
        conn.close()


def cell_db(cur: Any) -> tuple[int, str]:
    """(cell_mappings.id, database name) of the cell holding the templates (cell1)."""
    cur.execute(
        "SELECT id, database_connection FROM nova_api.cell_mappings"
        " WHERE uuid <> '00000000-0000-0000-0000-000000000000' ORDER BY id"
    )
    rows = cur.fetchall()
    if len(rows) != 1:
        raise CloneError(
            f"expected one non-cell0 cell in nova_api.cell_mappings, found {len(rows)}"
        )
    cell_id, url = rows[0]
    return int(cell_id), str(url).rsplit("/", 1)[1].split("?", 1)[0]


def _dicts(cur: Any, sql: str, args: Any = None) -> list[dict[str, Any]]:
    cur.execute(sql, args)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _insert(cur: Any, table: str, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    sql = (
        f"INSERT INTO {table} ({', '.join(f'`{c}`' for c in cols)})"
        f" VALUES ({', '.join(['%s'] * len(cols))})"
    )
    cur.executemany(sql, [tuple(r[c] for c in cols) for r in rows])


def _in(values: Sequence[str]) -> str:
    return ", ".join(["%s"] * len(values))


@dataclass(frozen=True)
class Owner:
    project_id: str
    project_name: str
    user_id: str
    user_name: str


@dataclass(frozen=True)
class Plan:
    """One clone: who owns it, its final state and its timeline (naive UTC)."""

    n: int
    uuid: str
    owner: Owner
    state: str
    created: datetime
    launched: datetime
    changed: datetime | None  # stop/suspend/delete time

    @property
    def updated(self) -> datetime:
        return self.changed or self.launched


def plan(n: int, owner: Owner, now: datetime) -> Plan:
    """Deterministic state and times of clone ``n`` relative to ``now``."""
    rng = random.Random(f"scale-clone-{n}")
    created = now - SPAN + (SPAN - QUIET - timedelta(hours=1)) * rng.random()
    launched = created + timedelta(seconds=rng.randint(5, 90))
    r = rng.random()
    if r < DELETED:
        state = "deleted"
        lo = max(launched + timedelta(minutes=1), now - DELETED_SPAN)
    elif r < DELETED + STOPPED:
        state, lo = "stopped", launched + timedelta(minutes=1)
    elif r < DELETED + STOPPED + SUSPENDED:
        state, lo = "suspended", launched + timedelta(minutes=1)
    else:
        state, lo = "active", launched
    changed = None if state == "active" else lo + (now - QUIET - lo) * rng.random()
    return Plan(n, str(uuid.uuid4()), owner, state, _s(created), _s(launched),
                _s(changed) if changed else None)  # fmt: skip


def _s(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def owners(admin: Clients) -> list[Owner]:
    """Per ``scale-project-*`` (by name) each user holding a role on it, users interleaved."""
    ks = admin.keystone
    projects = sorted(
        (p for p in ks.projects.list(domain="default") if p.name.startswith("scale-project-")),
        key=lambda p: p.name,
    )
    if not projects:
        raise CloneError("no scale-project-* projects: run 'testbed scale --projects N' first")
    users = {u.id: u.name for u in ks.users.list()}
    per_project: dict[str, list[str]] = {p.id: [] for p in projects}
    for a in ks.role_assignments.list():
        pid = (getattr(a, "scope", None) or {}).get("project", {}).get("id")
        uid = str((getattr(a, "user", None) or {}).get("id"))
        if pid in per_project and uid in users and uid not in per_project[pid]:
            per_project[pid].append(uid)
    out: list[Owner] = []
    depth = max(len(v) for v in per_project.values())
    # round robin over projects first, then over each project's users
    for k in range(depth):
        for p in projects:
            uids = sorted(per_project[p.id], key=lambda u: users[u])
            if uids:
                uid = uids[k % len(uids)]
                out.append(Owner(p.id, p.name, uid, users[uid]))
    return out


def _templates(cur: Any, cell: str, cell_id: int) -> list[dict[str, Any]]:
    rows = _dicts(
        cur,
        f"SELECT i.* FROM {cell}.instances i JOIN nova_api.instance_mappings m"
        " ON m.instance_uuid = i.uuid AND m.cell_id = %s"
        " JOIN nova_api.request_specs r ON r.instance_uuid = i.uuid"
        " WHERE i.display_name LIKE %s AND i.deleted = 0 AND i.vm_state = 'active'"
        " AND i.task_state IS NULL AND i.host IS NOT NULL AND i.host <> %s"
        " ORDER BY i.id LIMIT %s",
        (cell_id, TEMPLATE_LIKE, CLONE_HOST, TEMPLATES),
    )
    if not rows:
        raise CloneError(
            "no ACTIVE scale-server-* server to use as a template:"
            " run 'testbed scale --projects 50 --servers 50' first"
        )
    return rows


def _children(cur: Any, cell: str, uuids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """table -> template uuid -> its rows, for the cell children, tags and request_specs."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    tables = {**{f"{cell}.{t}": c for t, c in CELL_CHILDREN.items()},
              f"{cell}.tags": "resource_id", "nova_api.request_specs": "instance_uuid"}  # fmt: skip
    for table, col in tables.items():
        by: dict[str, list[dict[str, Any]]] = {u: [] for u in uuids}
        for row in _dicts(cur, f"SELECT * FROM {table} WHERE {col} IN ({_in(uuids)})", uuids):
            row.pop("id", None)
            by[row[col]].append(row)
        out[table] = by
    return out


def existing(cur: Any, cell: str) -> list[int]:
    """Numbers of the clones present (deleted ones included)."""
    cur.execute(
        f"SELECT display_name FROM {cell}.instances WHERE host = %s AND display_name LIKE %s",
        (CLONE_HOST, CLONE_LIKE),
    )
    return sorted(int(r[0].rsplit("-", 1)[1]) for r in cur.fetchall())


def clone_servers(total: int, batch: int = BATCH) -> int:
    """Top the clone servers up to ``total``; returns how many were made."""
    admin = Clients(session())
    with connect() as conn, conn.cursor() as cur:
        cell_id, cell = cell_db(cur)
        have = existing(cur, cell)
        need = total - len(have)
        if need <= 0:
            print(f"clone servers: {len(have)} scale-clone-* exist, nothing to create", flush=True)
            return 0
        templates = _templates(cur, cell, cell_id)
        children = _children(cur, cell, [t["uuid"] for t in templates])
        conn.commit()
        own = owners(admin)
        now = datetime.now(UTC).replace(tzinfo=None)
        first = (have[-1] if have else 0) + 1
        plans = [plan(n, own[(n - 1) % len(own)], now) for n in range(first, first + need)]
        print(f"clone servers: {len(have)} exist, cloning {need} from {len(templates)} templates"
              f" into {len({o.project_id for o in own})} projects (cell db {cell})", flush=True)  # fmt: skip
        t0 = time.monotonic()
        done = 0
        for k in range(0, need, batch):
            chunk = plans[k : k + batch]
            try:
                _write_batch(cur, cell, cell_id, templates, children, chunk)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            done += len(chunk)
            dt = time.monotonic() - t0
            print(f"  clone servers: {done}/{need} ({done / dt:.0f}/s)", flush=True)
        dt = time.monotonic() - t0
        states = {s: sum(1 for p in plans if p.state == s) for s in STATES}
        print(f"clone servers: created {need} in {dt:.1f}s ({need / dt:.0f}/s);"
              f" total {len(have) + need}; new by state: "
              + ", ".join(f"{s} {c}" for s, c in states.items()), flush=True)  # fmt: skip
        return need


def _write_batch(
    cur: Any,
    cell: str,
    cell_id: int,
    templates: list[dict[str, Any]],
    children: dict[str, dict[str, list[dict[str, Any]]]],
    chunk: list[Plan],
) -> None:
    inst_rows: list[dict[str, Any]] = []
    child_rows: dict[str, list[dict[str, Any]]] = {t: [] for t in children}
    mappings: list[dict[str, Any]] = []
    for p in chunk:
        tpl = templates[p.n % len(templates)]
        name = CLONE_NAME.format(p.n)
        gone = p.state == "deleted"
        row = dict(tpl)
        row.pop("id")
        row.update(
            uuid=p.uuid, display_name=name, hostname=name, host=CLONE_HOST, node=CLONE_HOST,
            launched_on=CLONE_HOST, compute_id=None, project_id=p.owner.project_id,
            user_id=p.owner.user_id, reservation_id=f"r-{uuid.uuid4().hex[:8]}", launch_index=0,
            created_at=p.created, updated_at=p.updated, launched_at=p.launched,
            terminated_at=p.changed - timedelta(seconds=1) if gone and p.changed else None,
            deleted_at=p.changed if gone else None, deleted=0, vm_state=p.state,
            power_state=STATES[p.state][0], task_state=None, cleaned=1 if gone else 0,
        )  # fmt: skip
        inst_rows.append(row)
        made = p.created + timedelta(seconds=1)
        for table, by in children.items():
            col = "uuid" if table.endswith(".instance_id_mappings") else (
                "resource_id" if table.endswith(".tags") else "instance_uuid")  # fmt: skip
            if gone and table.endswith(".tags"):
                continue  # instance.destroy() deletes tags outright
            for src in by[tpl["uuid"]]:
                r = dict(src)
                r[col] = p.uuid
                if "created_at" in r:
                    r["created_at"] = p.created if table.startswith("nova_api.") else made
                if r.get("updated_at") is not None:
                    r["updated_at"] = p.launched
                if "deleted" in r:
                    r["deleted"], r["deleted_at"] = 0, None
                if table.endswith(".block_device_mapping"):
                    r["uuid"] = str(uuid.uuid4())
                elif table.endswith(".instance_system_metadata"):
                    if r["key"] == "owner_project_name":
                        r["value"] = p.owner.project_name
                    elif r["key"] == "owner_user_name":
                        r["value"] = p.owner.user_name
                elif table == "nova_api.request_specs":
                    r["spec"] = (
                        r["spec"]
                        .replace(tpl["uuid"], p.uuid)
                        .replace(tpl["project_id"], p.owner.project_id)
                        .replace(tpl["user_id"], p.owner.user_id)
                    )
                child_rows[table].append(r)
        mappings.append({
            "created_at": p.created, "updated_at": p.changed if gone else p.launched,
            "instance_uuid": p.uuid, "cell_id": cell_id, "project_id": p.owner.project_id,
            "queued_for_delete": 1 if gone else 0, "user_id": p.owner.user_id,
        })  # fmt: skip

    uuids = [p.uuid for p in chunk]
    gone_uuids = [p.uuid for p in chunk if p.state == "deleted"]
    _insert(cur, f"{cell}.instances", inst_rows)
    for table, rows in child_rows.items():
        _insert(cur, table, rows)
    _insert(cur, "nova_api.instance_mappings", mappings)
    if gone_uuids:
        # soft delete as instance.destroy(): deleted = own id, deleted_at = the instance's
        cur.execute(f"UPDATE {cell}.instances SET deleted = id WHERE uuid IN ({_in(gone_uuids)})",
                    gone_uuids)  # fmt: skip
        for t in SOFT_DELETED:
            col = CELL_CHILDREN[t]
            cur.execute(
                f"UPDATE {cell}.{t} c JOIN {cell}.instances i ON i.uuid = c.{col}"
                f" SET c.deleted = c.id, c.deleted_at = i.deleted_at"
                f" WHERE i.uuid IN ({_in(gone_uuids)})",
                gone_uuids,
            )
    _actions(cur, cell, chunk, uuids)


def _actions(cur: Any, cell: str, chunk: list[Plan], uuids: list[str]) -> None:
    actions: list[dict[str, Any]] = []
    events: dict[tuple[str, str], dict[str, Any]] = {}
    sec = timedelta(seconds=1)

    def add(p: Plan, action: str, event: str, start: datetime, end: datetime) -> None:
        actions.append({
            "created_at": start + sec, "updated_at": end, "action": action,
            "instance_uuid": p.uuid, "request_id": f"req-{uuid.uuid4()}",
            "user_id": p.owner.user_id, "project_id": p.owner.project_id, "start_time": start,
            "finish_time": None, "message": None, "deleted": 0,
        })  # fmt: skip
        events[(p.uuid, action)] = {
            "created_at": start + sec, "updated_at": end, "event": event,
            "start_time": start + sec, "finish_time": end, "result": "Success",
            "traceback": None, "deleted": 0, "host": CLONE_HOST, "details": None,
        }  # fmt: skip

    for p in chunk:
        add(p, "create", "compute__do_build_and_run_instance", p.created, p.launched)
        _, action, event = STATES[p.state]
        if action and event and p.changed:
            add(p, action, event, p.changed - 2 * sec, p.changed)
    _insert(cur, f"{cell}.instance_actions", actions)
    cur.execute(
        f"SELECT id, instance_uuid, action FROM {cell}.instance_actions"
        f" WHERE instance_uuid IN ({_in(uuids)})",
        uuids,
    )
    rows = []
    for action_id, iuuid, action in cur.fetchall():
        ev = events.get((iuuid, action))
        if ev is not None:
            rows.append({**ev, "action_id": action_id})
    if len(rows) != len(events):
        raise CloneError(f"instance actions: inserted {len(events)}, read back {len(rows)}")
    _insert(cur, f"{cell}.instance_actions_events", rows)


def remove_clones(batch: int = 1000) -> int:
    """Hard-delete every clone server's rows (cell and nova_api); returns how many."""
    with connect() as conn, conn.cursor() as cur:
        _, cell = cell_db(cur)
        cur.execute(
            f"SELECT uuid FROM {cell}.instances WHERE host = %s AND display_name LIKE %s",
            (CLONE_HOST, CLONE_LIKE),
        )
        uuids = [r[0] for r in cur.fetchall()]
        conn.commit()
        if not uuids:
            print("clone servers deleted: none", flush=True)
            return 0
        t0 = time.monotonic()
        for k in range(0, len(uuids), batch):
            part = uuids[k : k + batch]
            marks = _in(part)
            try:
                for table in API_CLEANUP:
                    cur.execute(
                        f"DELETE FROM nova_api.{table} WHERE instance_uuid IN ({marks})", part
                    )
                for table, col in CELL_CLEANUP:
                    if col is None:  # events, through their action
                        cur.execute(
                            f"DELETE FROM {cell}.instance_actions_events WHERE action_id IN"
                            f" (SELECT id FROM {cell}.instance_actions"
                            f" WHERE instance_uuid IN ({marks}))",
                            part,
                        )
                    else:
                        cur.execute(f"DELETE FROM {cell}.{table} WHERE {col} IN ({marks})", part)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        dt = time.monotonic() - t0
        print(f"clone servers deleted: {len(uuids)} in {dt:.1f}s ({len(uuids) / dt:.0f}/s)",
              flush=True)  # fmt: skip
        return len(uuids)
