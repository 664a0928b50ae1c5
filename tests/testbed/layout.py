"""Where the testbed lives, which ports it uses and its (test-only) credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REGION = "RegionOne"

# Standard ports; FEDCLOUD_TESTBED_PORT_OFFSET shifts them all (e.g. 10000) so a second
# testbed (another state dir) can run beside the default one. epmd (4369) is shared. Keep the
# offset small (e.g. 1000): ports in the ephemeral range (32768+) get taken by random sockets.
PORT_OFFSET = int(os.environ.get("FEDCLOUD_TESTBED_PORT_OFFSET", "0"))
PORTS = {
    name: base + PORT_OFFSET
    for name, base in {
        "mariadb": 3306, "rabbitmq": 5672, "rabbitmq-dist": 25672, "keystone": 5000, "glance": 9292,
        "placement": 8778, "nova-api": 8774, "neutron": 9696, "cinder-api": 8776,
    }.items()
}  # fmt: skip
KEYSTONE_URL = f"http://{HOST}:{PORTS['keystone']}"
AUTH_URL = f"{KEYSTONE_URL}/v3"

# Well-known, test-only secrets. Never reuse outside the testbed.
ADMIN_PASSWORD = "admin-secret"
SERVICE_PASSWORD = "service-secret"
DB_USER, DB_PASSWORD = "openstack", "db-secret"
MQ_USER, MQ_PASSWORD = "openstack", "mq-secret"
READER_USER, READER_PASSWORD = "fedcloud-reader", "reader-secret"

DB_URL = f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{HOST}:{PORTS['mariadb']}/{{db}}?charset=utf8"
MQ_URL = f"rabbit://{MQ_USER}:{MQ_PASSWORD}@{HOST}:{PORTS['rabbitmq']}/"

# our own Erlang node name: another RabbitMQ (e.g. the STOMP broker tests) may run beside it
RABBIT_NODE = f"testbed{PORT_OFFSET or ''}@localhost"
RABBIT_DIST_PORT = PORTS["rabbitmq-dist"]

DATABASES = (
    "keystone",
    "glance",
    "placement",
    "nova_api",
    "nova_cell0",
    "nova_cell1",
    "neutron",
    "cinder",
)

# Keystone service catalog: service name -> (type, endpoint URL, service user)
CATALOG = {
    "glance": ("image", f"http://{HOST}:{PORTS['glance']}", "glance"),
    "placement": ("placement", f"http://{HOST}:{PORTS['placement']}", "placement"),
    "nova": ("compute", f"http://{HOST}:{PORTS['nova-api']}/v2.1", "nova"),
    "neutron": ("network", f"http://{HOST}:{PORTS['neutron']}", "neutron"),
    "cinderv3": ("volumev3", f"http://{HOST}:{PORTS['cinder-api']}/v3/$(project_id)s", "cinder"),
    "cinder": ("block-storage", f"http://{HOST}:{PORTS['cinder-api']}/v3/$(project_id)s", "cinder"),
}


@dataclass(frozen=True)
class Service:
    """One daemon the testbed runs."""

    name: str
    port: int | None  # TCP port it serves on 127.0.0.1 (None: RPC-only worker)
    health_path: str | None = None  # GET path answering without a token
    tier: int = 0  # start order; stopped in reverse


SERVICES: tuple[Service, ...] = (
    Service("mariadb", PORTS["mariadb"], tier=0),
    Service("rabbitmq", PORTS["rabbitmq"], tier=0),
    Service("keystone", PORTS["keystone"], "/v3", tier=1),
    Service("glance", PORTS["glance"], "/", tier=2),
    Service("placement", PORTS["placement"], "/", tier=2),
    Service("neutron", PORTS["neutron"], "/", tier=2),
    Service("nova-api", PORTS["nova-api"], "/", tier=2),
    Service("cinder-api", PORTS["cinder-api"], "/", tier=2),
    Service("nova-conductor", None, tier=3),
    Service("nova-scheduler", None, tier=3),
    Service("nova-compute", None, tier=3),
    Service("cinder-scheduler", None, tier=3),
    Service("cinder-volume", None, tier=3),
)
SERVICE_BY_NAME = {s.name: s for s in SERVICES}


@dataclass(frozen=True)
class Layout:
    """Paths under the state directory (outside the git clone)."""

    root: Path

    @classmethod
    def from_env(cls) -> Layout:
        return cls(
            Path(os.environ.get("FEDCLOUD_TESTBED_DIR", "/var/tmp/fedcloud-testbed")).resolve()
        )

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def marks(self) -> Path:
        """Flag files recording finished one-off steps (db synced, catalog registered)."""
        return self.root / "state"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def seed_json(self) -> Path:
        return self.root / "seed.json"

    @property
    def mysql_cnf(self) -> Path:
        return self.etc / "mysql" / "my.cnf"

    @property
    def mysql_socket(self) -> Path:
        return self.run / "mysqld.sock"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def mark(self, name: str) -> Path:
        return self.marks / name

    def dirs(self) -> list[Path]:
        r = self.root
        return [
            self.etc, self.logs, self.run, self.run / "lock", self.data, self.marks,
            r / "mysql", r / "rabbitmq" / "mnesia", r / "rabbitmq" / "log", r / "rabbitmq" / "home",
            r / "glance" / "images", r / "glance" / "staging", r / "glance" / "tasks",
            r / "nova" / "instances", r / "neutron", r / "cinder",
        ]  # fmt: skip
