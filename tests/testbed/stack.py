"""Bring the testbed up (install, configure, sync, start, wait) and take it down again."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import configs, health, install, procs, qcow2
from .layout import (
    ADMIN_PASSWORD,
    AUTH_URL,
    CATALOG,
    DATABASES,
    DB_PASSWORD,
    DB_USER,
    HOST,
    PORTS,
    RABBIT_DIST_PORT,
    RABBIT_NODE,
    READER_PASSWORD,
    READER_USER,
    REGION,
    SERVICE_BY_NAME,
    SERVICE_PASSWORD,
    SERVICES,
    Layout,
)  # fmt: skip


class StackError(RuntimeError):
    """The testbed could not be brought up; the message names the log to read."""


@dataclass
class Clock:
    """Prints each step with the time elapsed since the command started."""

    t0: float = field(default_factory=time.monotonic)

    def say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)


# ------------------------------------------------------------------ commands per daemon


def rabbit_env(lay: Layout) -> dict[str, str]:
    rmq, etc = lay.root / "rabbitmq", lay.etc / "rabbitmq"
    erl_args = "-kernel inet_dist_use_interface {127,0,0,1}"
    return {
        "HOME": str(rmq / "home"),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": RABBIT_NODE,
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(PORTS["rabbitmq"]),
        "RABBITMQ_DIST_PORT": str(RABBIT_DIST_PORT),
        "ERL_EPMD_ADDRESS": HOST,
        "RABBITMQ_MNESIA_BASE": str(rmq / "mnesia"),
        "RABBITMQ_LOG_BASE": str(rmq / "log"),
        "RABBITMQ_PID_FILE": str(lay.run / "rabbitmq-beam.internal.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(etc / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(etc / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(etc / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(etc / "rabbitmq-env.conf"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": erl_args,
        "RABBITMQ_CTL_ERL_ARGS": erl_args,
    }


def daemon_argv(lay: Layout, name: str) -> list[str]:
    etc = lay.etc
    nova = ["--config-file", str(etc / "nova" / "nova.conf")]
    nova_db = [*nova, "--config-file", str(etc / "nova" / "nova-db.conf")]
    cinder = ["--config-file", str(etc / "cinder" / "cinder.conf")]
    uwsgi = {"keystone": "keystone", "glance": "glance", "placement": "placement", "neutron": "neutron",
             "nova-api": "nova", "cinder-api": "cinder"}  # fmt: skip
    if name in uwsgi:
        return [str(lay.bin("uwsgi")), "--ini", str(etc / uwsgi[name] / "uwsgi.ini")]
    return {
        "mariadb": ["/usr/sbin/mariadbd", f"--defaults-file={lay.mysql_cnf}"],
        "rabbitmq": ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
        "nova-conductor": [str(lay.bin("nova-conductor")), *nova_db],
        "nova-scheduler": [str(lay.bin("nova-scheduler")), *nova_db],
        "nova-compute": [str(lay.bin("nova-compute")), *nova],
        "cinder-scheduler": [str(lay.bin("cinder-scheduler")), *cinder],
        "cinder-volume": [str(lay.bin("cinder-volume")), *cinder],
    }[name]


def tracked(lay: Layout) -> dict[str, procs.Tracked]:
    out = {}
    for name in [s.name for s in SERVICES] + ["epmd"]:
        t = procs.read(name, lay.pidfile(name))
        if t:
            out[name] = t
    return out


def _port_owner(port: int) -> str:
    res = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    return res.stdout.strip()


def start_daemon(lay: Layout, name: str, running: dict[str, procs.Tracked]) -> bool:
    """Start ``name`` unless it already runs. Returns True when it was started."""
    if name in running:
        return False
    port = SERVICE_BY_NAME[name].port
    if port and health.port_open(port):
        raise StackError(f"port {port} ({name}) is taken by a process the testbed does not track: "
                         f"{_port_owner(port)}")  # fmt: skip
    env = rabbit_env(lay) if name == "rabbitmq" else None
    procs.start(name, daemon_argv(lay, name), lay.pidfile(name), lay.logs / f"{name}.stdout", env)
    return True


def _run(
    argv: list[str], log: Path, timeout: float = 600, env: dict | None = None, check: bool = True
) -> int:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        res = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env, check=False
        )
    if check and res.returncode != 0:
        raise StackError(
            f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed ({res.returncode}); see {log}"
        )
    return res.returncode


# ------------------------------------------------------------------ infrastructure


def _mysql(lay: Layout, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mariadb", f"--defaults-file={lay.mysql_cnf}", "-uroot", "-e", sql],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


def start_infra(lay: Layout, clock: Clock) -> dict[str, bool]:
    """Start MariaDB and RabbitMQ; wait for MariaDB only (RabbitMQ boots during the DB sync)."""
    running = tracked(lay)
    if not (lay.root / "mysql" / "mysql").is_dir():
        _run(["mariadb-install-db", f"--defaults-file={lay.mysql_cnf}", "--auth-root-authentication-method=socket",
              "--skip-test-db"], lay.logs / "mariadb-install.log")  # fmt: skip
    epmd_before = (
        subprocess.run(["epmd", "-names"], capture_output=True, check=False).returncode == 0
    )
    db_started = start_daemon(lay, "mariadb", running)
    mq_started = start_daemon(lay, "rabbitmq", running)
    health.wait_for("mariadb", lambda: _mysql(lay, "SELECT 1").returncode == 0, 60)
    grants = [f"CREATE DATABASE IF NOT EXISTS {db}" for db in DATABASES]
    for host in (HOST, "localhost"):
        grants += [f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{host}' IDENTIFIED BY '{DB_PASSWORD}'",
                   f"GRANT ALL ON *.* TO '{DB_USER}'@'{host}'"]  # fmt: skip
    res = _mysql(lay, "; ".join(grants))
    if res.returncode:
        raise StackError(f"mariadb setup failed: {res.stderr.strip()}")
    state = "started" if db_started else "already running"
    clock.say(f"mariadb {state} on {HOST}:{PORTS['mariadb']}")
    return {"rabbitmq_started": mq_started, "epmd_before": epmd_before}


def wait_rabbitmq(lay: Layout, clock: Clock, started: bool, epmd_before: bool) -> None:
    ctl = ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", RABBIT_NODE, "wait", "--timeout", "120",
           str(lay.run / "rabbitmq-beam.internal.pid")]  # fmt: skip
    if _run(ctl, lay.logs / "rabbitmq-wait.log", 150, env=_env(rabbit_env(lay)), check=False):
        raise StackError(f"rabbitmq did not start; see {lay.root / 'rabbitmq' / 'log'}")
    health.wait_for("rabbitmq listener", lambda: health.port_open(PORTS["rabbitmq"]), 30)
    if started and not epmd_before:  # we started epmd: remember its PID so stop can end it
        owner = _port_owner(4369)
        if "pid=" in owner:
            pid = int(owner.split("pid=")[1].split(",")[0])
            lay.pidfile("epmd").write_text(f"{pid} epmd\n")
    state = "started" if started else "already running"
    clock.say(f"rabbitmq {state} as {RABBIT_NODE} on {HOST}:{PORTS['rabbitmq']}")


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


# ------------------------------------------------------------------ schemas


def sync_databases(lay: Layout, clock: Clock) -> None:
    if lay.mark("db-synced").exists():
        clock.say("databases already synced")
        return
    etc, b = lay.etc, lay.bin
    ks = [str(b("keystone-manage")), "--config-file", str(etc / "keystone" / "keystone.conf")]
    nm = [str(b("nova-manage")), "--config-file", str(etc / "nova" / "nova.conf"),
          "--config-file", str(etc / "nova" / "nova-db.conf")]  # fmt: skip
    url = f"{AUTH_URL}/"
    owner = ["--keystone-user", "root", "--keystone-group", "root"]
    jobs: dict[str, list[list[str]]] = {
        "keystone": [
            [*ks, "db_sync"], [*ks, "fernet_setup", *owner], [*ks, "credential_setup", *owner],
            [*ks, "bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", REGION,
             "--bootstrap-admin-url", url, "--bootstrap-public-url", url, "--bootstrap-internal-url", url],
        ],
        "glance-placement-cinder": [
            [str(b("glance-manage")), "--config-file", str(etc / "glance" / "glance-api.conf"), "db_sync"],
            [str(b("placement-manage")), "--config-file", str(etc / "placement" / "placement.conf"), "db", "sync"],
            [str(b("cinder-manage")), "--config-file", str(etc / "cinder" / "cinder.conf"), "db", "sync"],
        ],
        "nova": [
            [*nm, "api_db", "sync"],
            [*nm, "cell_v2", "map_cell0", "--database_connection",
             f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{HOST}:{PORTS['mariadb']}/nova_cell0?charset=utf8"],
            [*nm, "cell_v2", "create_cell", "--name", "cell1"],  # exit 2 = exists (a retried sync)
            [*nm, "db", "sync"],
        ],
        "neutron": [
            [str(b("neutron-db-manage")), "--config-file", str(etc / "neutron" / "neutron.conf"),
             "--config-file", str(etc / "neutron" / "ml2_conf.ini"), "upgrade", "heads"],
        ],
    }  # fmt: skip
    errors: list[str] = []

    def runner(name: str, cmds: list[list[str]]) -> None:
        try:
            for argv in cmds:
                rc = _run(argv, lay.logs / f"sync-{name}.log", check=False)
                if rc and not (rc == 2 and "create_cell" in argv):
                    raise StackError(
                        f"{' '.join(argv[:1] + argv[-2:])} failed; see {lay.logs}/sync-{name}.log"
                    )
        except Exception as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=runner, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise StackError("; ".join(errors))
    lay.mark("db-synced").touch()
    clock.say(
        "databases synced (keystone, glance, placement, cinder, nova api/cell0/cell1, neutron)"
    )


# ------------------------------------------------------------------ keystone catalog


def register_catalog(lay: Layout, clock: Clock) -> None:
    """Service project/users, catalog endpoints and the read-only appliance user (idempotent)."""
    if lay.mark("catalog").exists():
        return
    from keystoneclient.v3 import client as ksc

    from .clients import session

    ks = ksc.Client(session=session(), interface="public")
    proj = {p.name: p for p in ks.projects.list(domain="default")}
    service = proj.get("service") or ks.projects.create(
        "service", domain="default", description="service users"
    )
    roles = {r.name: r for r in ks.roles.list()}
    for role in ("service", "reader", "member"):
        if role not in roles:
            roles[role] = ks.roles.create(role)
    users = {u.name: u for u in ks.users.list(domain="default")}
    for name, (stype, url, uname) in CATALOG.items():
        user = users.get(uname) or ks.users.create(
            uname, domain="default", password=SERVICE_PASSWORD
        )
        users[uname] = user
        for role in ("admin", "service"):
            ks.roles.grant(roles[role], user=user, project=service)
        svc = next(iter(ks.services.list(name=name)), None) or ks.services.create(name, type=stype)
        have = {e.interface for e in ks.endpoints.list(service=svc)}
        for iface in ("public", "internal", "admin"):
            if iface not in have:
                ks.endpoints.create(svc, url, interface=iface, region=REGION)
    reader = users.get(READER_USER) or ks.users.create(
        READER_USER, domain="default", password=READER_PASSWORD, description="appliance: read-only"
    )
    ks.roles.grant(roles["reader"], user=reader, system="all")  # system reader: list projects/users
    lay.mark("catalog").touch()
    clock.say("keystone: service users, catalog and the system-reader user registered")


# ------------------------------------------------------------------ services


API_TIER = [s.name for s in SERVICES if s.tier == 2]
WORKERS = [s.name for s in SERVICES if s.tier == 3]


def start_openstack(lay: Layout, clock: Clock, infra: dict[str, bool]) -> None:
    running = tracked(lay)
    if start_daemon(lay, "keystone", running):
        wait_service(lay, "keystone", 120)
        clock.say(f"keystone started on :{PORTS['keystone']}")
    register_catalog(lay, clock)
    wait_rabbitmq(lay, clock, infra["rabbitmq_started"], infra["epmd_before"])
    since = health.utc_now().replace(microsecond=0)
    started = [n for n in API_TIER + WORKERS if start_daemon(lay, n, running)]
    if started:
        clock.say(f"started {', '.join(started)}")
    for name in API_TIER:
        wait_service(lay, name, 240)
    clock.say("APIs answer: " + ", ".join(f"{n} :{PORTS[n]}" for n in API_TIER))
    wait_workers(lay, since if any(n in WORKERS for n in started) else None)
    if started:
        nm = [str(lay.bin("nova-manage")), "--config-file", str(lay.etc / "nova" / "nova.conf"),
              "--config-file", str(lay.etc / "nova" / "nova-db.conf")]  # fmt: skip
        _run([*nm, "cell_v2", "discover_hosts"], lay.logs / "discover-hosts.log", 120)
    clock.say(
        "nova-conductor/scheduler/compute and cinder-scheduler/volume report fresh heartbeats"
    )


def wait_service(lay: Layout, name: str, timeout: float) -> None:
    """Wait until ``name`` answers; fail at once (naming its logs) if its process died."""
    svc = SERVICE_BY_NAME[name]

    def ok() -> bool:
        pid = int(lay.pidfile(name).read_text().split()[0])
        if not procs.is_alive(pid):  # (not procs.read: uWSGI's cmdline is briefly empty at start)
            raise StackError(
                f"{name} exited during start; see {lay.logs}/{name}*.log and {name}.stdout"
            )
        return health.service_healthy(svc)

    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise StackError(
                f"{name} did not answer on :{svc.port} after {timeout:.0f}s; see {lay.logs}/{name}*"
            )
        time.sleep(0.3)


def wait_workers(lay: Layout, since: datetime | None, timeout: float = 240) -> None:
    from .clients import session

    sess = session()
    last = [""]

    def ok() -> bool:
        ready, missing = health.compute_ready(sess, since)
        last[0] = missing
        return ready

    try:
        health.wait_for("nova/cinder workers", ok, timeout, interval=1.0)
    except TimeoutError as exc:
        raise StackError(
            f"{exc}: still waiting for {last[0]} (see {lay.logs}/nova-*.log, cinder-*.log)"
        ) from exc


# ------------------------------------------------------------------ clouds.yaml


def write_clouds_yaml(lay: Layout, reader_project: str) -> None:
    def entry(user: str, password: str, scope: dict[str, str]) -> dict:
        auth = {
            "auth_url": AUTH_URL,
            "username": user,
            "password": password,
            "user_domain_name": "Default",
            **scope,
        }
        return {
            "auth": auth,
            "region_name": REGION,
            "identity_api_version": 3,
            "interface": "public",
        }

    clouds = {
        "testbed-admin": entry("admin", ADMIN_PASSWORD, {"project_name": "admin", "project_domain_name": "Default"}),
        "testbed-reader": entry(READER_USER, READER_PASSWORD,
                                {"project_name": reader_project, "project_domain_name": "Default"}),
        "testbed-reader-system": entry(READER_USER, READER_PASSWORD, {"system_scope": "all"}),
    }  # fmt: skip
    import yaml

    text = "# generated by scripts/dev/testbed: test-only credentials\n"
    text += yaml.safe_dump({"clouds": clouds}, sort_keys=False)
    tmp = lay.clouds_yaml.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(lay.clouds_yaml)
    rc = lay.root / "adminrc"
    rc.write_text(
        f"export OS_CLIENT_CONFIG_FILE={lay.clouds_yaml} OS_CLOUD=testbed-admin\n"
        f"export PATH={lay.venv / 'bin'}:$PATH\n"
    )


# ------------------------------------------------------------------ up / stop


def all_healthy(lay: Layout) -> bool:
    running = tracked(lay)
    return all(s.name in running and health.service_healthy(s) for s in SERVICES)


def up(lay: Layout, clock: Clock, seed: bool = True) -> None:
    for d in lay.dirs():
        d.mkdir(parents=True, exist_ok=True)
    if all_healthy(lay) and install.venv_ready(lay, probe=False):
        clock.say("all services already running and answering")
        wait_workers(lay, None, timeout=60)
    else:
        apt_added = install.ensure_apt(lay)
        clock.say(f"apt: installed {' '.join(apt_added)}" if apt_added else "apt: packages present")
        clock.say(
            "pip: installed the OpenStack venv" if install.ensure_venv(lay) else "pip: venv present"
        )
        configs.write_all(lay)
        qcow2.write(lay.data / "tiny.qcow2")
        clock.say(f"configs rendered under {lay.etc}")
        infra = start_infra(lay, clock)
        sync_databases(lay, clock)
        start_openstack(lay, clock, infra)
    from .seed import MAPPED_PROJECTS, Seeder

    write_clouds_yaml(lay, MAPPED_PROJECTS[0][0])
    clock.say(f"wrote {lay.clouds_yaml} (testbed-admin, testbed-reader, testbed-reader-system)")
    if seed:
        Seeder(lay, clock).run(skip_if_complete=True)
    clock.say("READY")


def stop(lay: Layout, clock: Clock) -> None:
    running = tracked(lay)
    order = sorted((s for s in SERVICES if s.name in running), key=lambda s: -s.tier)
    for tier in sorted({s.tier for s in order}, reverse=True):
        group = [running[s.name] for s in order if s.tier == tier]
        for note in procs.stop(group):
            clock.say(note)
        clock.say(f"stopped {', '.join(t.name for t in group)}")
    for s in SERVICES:
        lay.pidfile(s.name).unlink(missing_ok=True)
    epmd = running.get("epmd")
    if epmd:
        names = subprocess.run(
            ["epmd", "-names"], capture_output=True, text=True, check=False
        ).stdout
        if "name " in names:
            clock.say(f"left epmd {epmd.pid} running: other Erlang nodes use it")
        else:
            procs.stop([epmd])
            lay.pidfile("epmd").unlink(missing_ok=True)
            clock.say(f"stopped epmd {epmd.pid} (we started it)")
    leftovers = leftover_processes(lay)
    if leftovers:
        raise StackError("processes still running from the testbed: " + "; ".join(leftovers))
    clock.say("stopped: no testbed process left")


def leftover_processes(lay: Layout) -> list[str]:
    """Any live process whose command line or cwd points into the state dir."""
    out = []
    root = str(lay.root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == _self_pid():
            continue
        pid = int(entry.name)
        cmd = procs.cmdline(pid)
        if root in cmd and procs.is_alive(pid) and "-m testbed" not in cmd:
            out.append(f"{pid} {cmd[:80]}")
    return out


def _self_pid() -> int:
    import os

    return os.getpid()


def wipe(lay: Layout, clock: Clock) -> None:
    if lay.root.exists():
        stop(lay, clock)
        shutil.rmtree(lay.root)
    clock.say(f"deleted {lay.root}")
