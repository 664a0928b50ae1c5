"""A fake usage source and helpers for the accounting unit and contract tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fedcloud_accounting.extract.facts import (
    Action,
    Flavor,
    FloatingIP,
    Image,
    Project,
    Server,
    Volume,
)
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import OpenStackUnavailable

T0 = datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC)
END = datetime(2024, 5, 11, 0, 0, 0, tzinfo=UTC)
P1 = "1" * 32
P2 = "2" * 32
SMALL = Flavor(
    "f-small",
    "m1.small",
    2,
    2048,
    20,
    0,
    {"accounting:benchmark_type": "HEPSPEC", "accounting:benchmark_value": "10.5"},
)
LARGE = Flavor("f-large", "m1.large", 8, 16384, 80, 20, {})
GPU = Flavor(
    "f-gpu",
    "g1.gpu",
    4,
    8192,
    40,
    0,
    {"Accelerator:Number": "2", "Accelerator:Model": "A100", "Accelerator:Vendor": "NVIDIA"},
)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def server(
    sid: str,
    project: str = P1,
    *,
    name: str | None = None,
    created: float = 0,
    terminated: float | None = None,
    flavor: Flavor | None = SMALL,
    flavor_ref: str | None = None,
    status: str = "ACTIVE",
    image: str | None = "img-1",
    updated: float | None = None,
) -> Server:
    return Server(
        id=sid,
        name=name if name is not None else f"vm-{sid}",
        project_id=project,
        user_id="u1",
        status=status,
        created=at(created),
        terminated=at(terminated) if terminated is not None else None,
        updated=at(updated) if updated is not None else None,
        image_id=image,
        flavor=flavor,
        flavor_ref=flavor_ref or (flavor.name if flavor else None),
    )


@dataclass
class FakeSource:
    servers_by_project: dict[str, list[Server]] = field(default_factory=dict)
    actions_by_server: dict[str, list[Action]] = field(default_factory=dict)
    ips_by_project: dict[str, list[FloatingIP]] = field(default_factory=dict)
    volumes_by_project: dict[str, list[Volume]] = field(default_factory=dict)
    project_list: list[Project] = field(default_factory=list)
    flavor_list: list[Flavor] = field(default_factory=lambda: [SMALL, LARGE, GPU])
    image_list: list[Image] = field(
        default_factory=lambda: [
            Image("img-1", "ubuntu", "https://marketplace.example.org/ubuntu-22.04"),
            Image("img-2", "plain"),
        ]
    )
    users: dict[str, str] = field(default_factory=lambda: {"u1": "alice"})
    failing_projects: set[str] = field(default_factory=set)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _fail(self, project: str) -> None:
        if project in self.failing_projects:
            raise OpenStackUnavailable(
                f"nova servers.list (project {project}): ConnectFailure: refused"
            )

    def projects(self) -> Sequence[Project]:
        return self.project_list or [Project(p, f"name-{p[:4]}") for p in self.servers_by_project]

    def user_names(self) -> dict[str, str]:
        return dict(self.users)

    def flavors(self) -> Sequence[Flavor]:
        return list(self.flavor_list)

    def images(self) -> Sequence[Image]:
        return list(self.image_list)

    def servers(self, project_id: str, deleted_since: datetime | None) -> Sequence[Server]:
        self.calls.append(("servers", (project_id, deleted_since)))
        self._fail(project_id)
        return [
            s
            for s in self.servers_by_project.get(project_id, [])
            if s.terminated is None or (deleted_since is not None and s.terminated >= deleted_since)
        ]

    def deleted_servers(self, since: datetime) -> Sequence[Server]:
        self.calls.append(("deleted_servers", since))
        return [
            s
            for v in self.servers_by_project.values()
            for s in v
            if s.terminated is not None and (s.updated or s.terminated) >= since
        ]

    def changed_servers(self, project_id: str, since: datetime) -> Sequence[Server]:
        """Nova's ``changes-since``: ``updated`` at or after ``since``, deleted ones included."""
        self.calls.append(("changed_servers", (project_id, since)))
        self._fail(project_id)
        return [
            s
            for s in self.servers_by_project.get(project_id, [])
            if (s.updated or s.terminated or s.created) >= since
        ]

    def actions(self, server_id: str) -> Sequence[Action]:
        self.calls.append(("actions", server_id))
        return list(self.actions_by_server.get(server_id, []))

    def floating_ips(self, project_id: str) -> Sequence[FloatingIP]:
        self.calls.append(("floating_ips", project_id))
        return list(self.ips_by_project.get(project_id, []))

    def all_floating_ips(self) -> dict[str, list[FloatingIP]]:
        self.calls.append(("all_floating_ips", None))
        return {p: list(v) for p, v in self.ips_by_project.items()}

    def volumes(self, project_id: str) -> Sequence[Volume]:
        return list(self.volumes_by_project.get(project_id, []))


def make_config(tmp: Path, **accounting: Any) -> AppConfig:
    return AppConfig.model_validate(
        {
            "site": {"name": "TEST-SITE", "service_name": "https://cloud.example.org:5000/v3"},
            "vos": {"ops": {"projects": [P1]}, "fedcloud.egi.eu": {"projects": [P2]}},
            "paths": {"state_dir": str(tmp / "state"), "spool_dir": str(tmp / "spool")},
            "accounting": accounting,
            "ssm": {"protocol": "STOMP"},  # any record type may be queued (AMS needs topics)
        }
    )


class MemoryWriter:
    def __init__(self, fail_on: int | None = None):
        self.messages: list[tuple[str, bytes]] = []
        self.fail_on = fail_on  # fail the n-th add (1-based)

    def add(self, queue: str, body: bytes) -> str:
        if self.fail_on is not None and len(self.messages) + 1 >= self.fail_on:
            raise OSError(28, "No space left on device")
        self.messages.append((queue, body))
        return f"{len(self.messages):08x}/{len(self.messages):014x}"


def standard_source() -> FakeSource:
    """Two projects; P1 has a stopped-and-restarted VM, a deleted one, a shelved one and a volume."""
    return FakeSource(
        servers_by_project={
            P1: [
                server("a-run", created=0),
                server("b-stop", created=10, flavor=LARGE),
                server("c-del", created=20, terminated=50, image="img-2"),
                server("d-shelve", created=30, status="SHELVED_OFFLOADED", image=None),
            ],
            P2: [server("e-p2", P2, created=5)],
        },
        actions_by_server={
            "a-run": [Action("create", at(0)), Action("reboot", at(3))],
            "b-stop": [Action("create", at(10)), Action("stop", at(20)), Action("start", at(30))],
            "c-del": [Action("create", at(20)), Action("delete", at(50))],
            "d-shelve": [
                Action("create", at(30)),
                Action("shelve", at(40)),
                Action("shelveOffload", at(40.5)),
            ],
        },
        ips_by_project={
            P1: [
                FloatingIP("fip-1", "192.0.2.10", P1, "port-1", "a-run"),
                FloatingIP("fip-2", "2001:db8::10", P1, "port-2", "a-run"),
                FloatingIP("fip-3", "192.0.2.11", P1, None, None),
            ]
        },
        volumes_by_project={P1: [Volume("vol-1", "data", P1, "u1", 10, at(1), "in-use")]},
    )


# ---------------------------------------------------------------- a big, Nova-like site

FLEET_END = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)


def fleet_projects(n: int = 50) -> list[str]:
    return [f"{i:02d}".ljust(32, "f") for i in range(n)]


def fleet(n: int, projects: int = 50) -> FakeSource:
    """``n`` servers over ``projects`` projects, with Nova's ``launched_at``/``updated`` rules.

    Deterministic. Nova saves the instance (moving ``updated``) on every state change and
    sets ``launched_at`` on every spawn: the first one, and also unshelve, rebuild, resize
    and rescue. Most servers run untouched since their first launch (``updated`` is their
    ``launched_at``, or a second later); the others were stopped, suspended, paused,
    shelved, rebooted, deleted, never launched - and some were stopped or shelved, then
    re-spawned by a rebuild or an unshelve, so that their ``updated`` is again their
    ``launched_at``, days after their creation.
    """
    import random

    src = FakeSource(flavor_list=[SMALL, LARGE, GPU])
    pids = fleet_projects(projects)
    src.project_list = [Project(p, f"project-{p[:2]}") for p in pids]
    src.users = {f"u{k}": f"user{k}" for k in range(5)}
    flavors = [SMALL, SMALL, LARGE, GPU]
    for i in range(n):
        rng = random.Random(i)
        sid = f"{i:08d}-0000-4000-8000-{rng.getrandbits(48):012x}"
        pid = pids[i % len(pids)]
        created = FLEET_END - timedelta(seconds=rng.randint(3600, 60 * 86400))
        launched: datetime | None = created + timedelta(seconds=rng.randint(5, 90))
        assert launched is not None
        span = int((FLEET_END - launched).total_seconds())

        def t(frac: float, base: datetime = launched, total: int = span) -> datetime:
            return base + timedelta(seconds=max(60, int(total * frac)))

        acts = [Action("create", created)]
        status, terminated = "ACTIVE", None
        updated = launched + timedelta(seconds=rng.choice((0, 0, 0, 1)))
        kind = i % 20
        if kind == 0:  # deleted within the last 30 days, sometimes after a stop/start
            end = FLEET_END - timedelta(seconds=rng.randint(60, 29 * 86400))
            if end <= launched + timedelta(minutes=10):
                end = launched + timedelta(minutes=10)
            if rng.random() < 0.5:
                acts += [Action("stop", t(0.2, launched, int((end - launched).total_seconds())))]
                acts += [Action("start", t(0.4, launched, int((end - launched).total_seconds())))]
            acts.append(Action("delete", end))
            status, terminated, updated = "DELETED", end + timedelta(seconds=1), end
        elif kind == 1:
            acts.append(Action("stop", t(0.5)))
            status, updated = "SHUTOFF", acts[-1].time
        elif kind == 2:
            acts.append(Action("suspend", t(0.3)))
            status, updated = "SUSPENDED", acts[-1].time
        elif kind == 3:
            acts.append(Action("pause", t(0.7)))
            status, updated = "PAUSED", acts[-1].time
        elif kind == 4:
            acts += [Action("stop", t(0.2)), Action("start", t(0.6))]
            updated = acts[-1].time
        elif kind == 5:  # shelved, unshelved days later: a new launched_at, updated with it
            acts += [
                Action("shelve", t(0.2)),
                Action("shelveOffload", t(0.2) + timedelta(seconds=9)),
            ]
            acts.append(Action("unshelve", t(0.5)))
            launched = updated = acts[-1].time + timedelta(seconds=20)
        elif kind == 6:  # stopped, started, rebuilt: the rebuild re-spawns it
            acts += [Action("stop", t(0.1)), Action("start", t(0.3)), Action("rebuild", t(0.6))]
            launched = updated = acts[-1].time + timedelta(seconds=15)
        elif kind == 7:
            acts.append(Action("reboot", t(0.5)))
            updated = acts[-1].time
        elif kind == 8 and i % 40 == 8:  # went to ERROR while building: never launched
            status, launched, updated = "ERROR", None, created + timedelta(seconds=3)
        elif kind == 9:
            acts += [
                Action("shelve", t(0.4)),
                Action("shelveOffload", t(0.4) + timedelta(seconds=5)),
            ]
            status, updated = "SHELVED_OFFLOADED", acts[-1].time
        src.servers_by_project.setdefault(pid, []).append(
            Server(
                id=sid,
                name=f"vm-{i:05d}",
                project_id=pid,
                user_id=f"u{i % 5}",
                status=status,
                created=created,
                terminated=terminated,
                launched=launched,
                updated=updated,
                image_id=rng.choice(("img-1", "img-2", None)),
                flavor=flavors[i % len(flavors)],
                flavor_ref=flavors[i % len(flavors)].name,
            )
        )
        src.actions_by_server[sid] = acts
        if i % 7 == 0:
            src.ips_by_project.setdefault(pid, []).append(
                FloatingIP(f"fip-{i:05d}", f"192.0.{i % 250}.{i % 200 + 1}", pid, f"port-{i}", sid)
            )
        if i % 10 == 0:
            src.volumes_by_project.setdefault(pid, []).append(
                Volume(f"vol-{i:05d}", f"data-{i}", pid, "u1", 1 + i % 50, created, "in-use")
            )
    return src


def fleet_config(tmp: Path, projects: int = 50, **accounting: Any) -> AppConfig:
    pids = fleet_projects(projects)
    return AppConfig.model_validate(
        {
            "site": {"name": "FLEET-SITE", "service_name": "https://cloud.example.org:5000/v3"},
            "vos": {
                "vo-a.example.org": {"projects": pids[::2]},
                "vo-b.example.org": {"projects": pids[1::2]},
            },
            "paths": {"state_dir": str(tmp / "state"), "spool_dir": str(tmp / "spool")},
            "accounting": accounting,
            "ssm": {"protocol": "STOMP"},
        }
    )
