"""The bundle as a Docker Swarm stack on a real single-node swarm (issue 17).

The stack file is rendered by ``compose/stack-render`` from docker-compose.yml and the Swarm
overlay, plus a test overlay for this sandbox: the kernel has no IPVS, so the routing mesh
(ingress ports) and virtual IPs cannot work here; each BDII replica publishes a host-mode
port of its own (random) and the BDII services use DNS round robin (``BDII_ENDPOINT_MODE=dnsrr``),
as docs/scale-out.md describes for such hosts. The scheduler joins the host's network to reach
the testbed and the broker, which listen on the host's 127.0.0.1 only (as in the compose e2e
test). The images scheduler is scaled to 0: image replication is the compose e2e test's.

The module fixture initialises the swarm (``--advertise-addr 127.0.0.1``) only when the
engine is in none, and its finalizer removes the stack, its volumes, configs and secrets and
leaves the swarm (``--force``), also when a test failed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.bundle.conftest import COMPOSE_DIR, _delete_images, free_port, run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LDAPSEARCH = ["ldapsearch", "-x", "-LLL", "-o", "nettimeout=5", "-l", "10"]

TEST_OVERLAY = """\
version: "3.9"
services:
  resource-bdii:
    ports: [{target: 2170, protocol: tcp, mode: host}]
  site-bdii:
    ports: [{target: 2170, protocol: tcp, mode: host}]
  scheduler:
    networks: [hostnet]
    environment:
      FEDCLOUD__SCHEDULER__SSM: "1"
      FEDCLOUD__SCHEDULER__IMAGES: "0"
  images-scheduler:
    networks: [hostnet]
    deploy: {replicas: 0}
networks:
  hostnet: {external: true, name: host}
"""


@dataclass
class Stack:
    name: str
    prefix: str
    env: dict[str, str]
    workdir: Path
    testbed: Any

    def service(self, svc: str) -> str:
        return f"{self.name}_{svc}"

    def tasks(self, svc: str) -> list[dict[str, Any]]:
        """Running containers of a service: id, slot, health, host port of 2170."""
        ids = run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.swarm.service.name={self.service(svc)}",
            ]
        ).stdout.split()
        out = []
        for cid in ids:
            info = json.loads(run(["docker", "inspect", cid]).stdout)[0]
            labels = info["Config"]["Labels"]
            ports = (info["NetworkSettings"].get("Ports") or {}).get("2170/tcp") or []
            out.append(
                {
                    "id": cid,
                    "task": labels.get("com.docker.swarm.task.id"),
                    "slot": int(labels["com.docker.swarm.task.name"].split(".")[1]),
                    "health": (info["State"].get("Health") or {}).get("Status"),
                    "running": info["State"]["Running"],
                    "port": int(ports[0]["HostPort"]) if ports else None,
                    "user": info["Config"]["User"],
                    "readonly": info["HostConfig"]["ReadonlyRootfs"],
                    "mounts": {
                        m["Destination"]: m.get("Name", m["Source"]) for m in info["Mounts"]
                    },
                }
            )
        return sorted(out, key=lambda t: t["slot"])

    def wait_tasks(
        self, svc: str, n: int, *, healthy: bool = True, timeout: float = 150
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        tasks: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            tasks = [
                t
                for t in self.tasks(svc)
                if t["running"] and (not healthy or t["health"] == "healthy")
            ]
            if len(tasks) >= n:
                return tasks
            time.sleep(2)
        ps = run(["docker", "service", "ps", "--no-trunc", self.service(svc)], check=False)
        logs = run(["docker", "service", "logs", "--tail", "30", self.service(svc)], check=False)
        raise AssertionError(
            f"{svc}: {len(tasks)} of {n} tasks running{' and healthy' if healthy else ''} "
            f"after {timeout}s\n{ps.stdout}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        )

    def exec(self, cid: str, *cmd: str, timeout: float = 120) -> str:
        return run(["docker", "exec", cid, *cmd], timeout=timeout).stdout

    def status(self) -> dict[str, Any]:
        cid = self.wait_tasks("scheduler", 1, healthy=False)[0]["id"]
        out = self.exec(cid, "fedcloud-appliance", "status", "--json", "--no-bdii")
        return {j["key"]: j for j in json.loads(out)["jobs"]} | {
            "_queues": json.loads(out)["queues"]
        }


def _entries(port: int, base: str = "o=glue") -> dict[str, list[str]]:
    """The tree under ``base`` as dn -> sorted attribute lines (ldapsearch, unwrapped)."""
    out = run(
        [*LDAPSEARCH, "-o", "ldif-wrap=no", "-H", f"ldap://127.0.0.1:{port}", "-b", base],
        timeout=60,
    ).stdout
    entries: dict[str, list[str]] = {}
    for block in out.strip().split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln and not ln.startswith("#")]
        if lines:
            entries[lines[0]] = sorted(lines[1:])
    return entries


def _has_network(name: str) -> bool:
    return run(["docker", "network", "inspect", name], check=False).returncode == 0


def _swarm_state() -> str:
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout.strip()


@pytest.fixture(scope="module")
def stack(docker_images: dict[str, str], testbed: Any) -> Iterator[Stack]:
    from fedcloud_dev.demo_env import broker_start, broker_stop, prepare

    if shutil.which("ldapsearch") is None:
        pytest.skip("ldapsearch is not installed (scripts/dev/apt.d/bundle.txt: ldap-utils)")
    state = _swarm_state()
    if state != "inactive":
        pytest.skip(f"this engine is already in a swarm ({state}): not touching someone else's")
    tag = uuid.uuid4().hex[:8]
    base = Path(f"/tmp/fedcloud-swarm-{tag}")
    names = ("resource_bdii", "site_bdii", "status_web", "imagelist", "stomp")
    ports = {n: free_port() for n in names}
    world = prepare(base, ports, subscription=f"st-{tag}", image_prefix=f"ST{tag} ")
    name = f"fcst{tag}"
    prefix = f"fcst-{tag}"
    env = {
        **os.environ,
        "FEDCLOUD_CONFIG_DIR": world["config_dir"],
        "FEDCLOUD_GRID_SECURITY": world["grid_security"],
        "FEDCLOUD_VOLUME_PREFIX": prefix,
        "FEDCLOUD_STACK_NAME": name,
        "BDII_ENDPOINT_MODE": "dnsrr",
    }
    overlay = base / "stack.test.yml"
    overlay.write_text(TEST_OVERLAY)
    s = Stack(name=name, prefix=prefix, env=env, workdir=base, testbed=testbed)
    node = None
    init = False
    gwbridge_before = _has_network("docker_gwbridge")
    try:
        run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], timeout=60)
        init = True
        node = broker_start(base)
        run(
            [
                str(COMPOSE_DIR / "stack-render"),
                "--no-ports",
                "-f",
                str(overlay),
                "-o",
                str(base / "stack.yml"),
            ],
            env=env,
        )
        run(
            [
                "docker",
                "stack",
                "deploy",
                "--resolve-image",
                "never",
                "-c",
                str(base / "stack.yml"),
                name,
            ],
            env=env,
            timeout=120,
        )
        yield s
    finally:
        if init:
            run(["docker", "stack", "rm", name], check=False, timeout=60)
            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline
                and run(
                    ["docker", "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={name}"],
                    check=False,
                ).stdout.strip()
            ):
                time.sleep(1)
            run(["docker", "swarm", "leave", "--force"], check=False, timeout=60)
            # the bridge swarm init created stays after leaving: remove it unless it was there
            if not gwbridge_before and _has_network("docker_gwbridge"):
                run(["docker", "network", "rm", "docker_gwbridge"], check=False)
        vols = (
            run(
                ["docker", "volume", "ls", "-q", "--filter", f"name={prefix}"], check=False
            ).stdout.split()
            + run(
                ["docker", "volume", "ls", "-q", "--filter", f"name={name}_"], check=False
            ).stdout.split()
        )
        if vols:
            run(["docker", "volume", "rm", "-f", *vols], check=False)
        if node is not None:
            node.stop()
        broker_stop(base)
        shutil.rmtree(base, ignore_errors=True)
        _delete_images(testbed, f"ST{tag} ")
        # the engine is back to a plain engine: the compose bundle tests run on it as before
        assert _swarm_state() == "inactive"


def test_stack_runs_the_bundle_images_as_their_users(stack: Stack):
    for svc, user in (("resource-bdii", "2170:10001"), ("site-bdii", "2170:10001")):
        tasks = stack.wait_tasks(svc, 2)
        assert len(tasks) == 2
        assert {t["slot"] for t in tasks} == {1, 2}
        for t in tasks:
            assert t["user"] == user
            assert t["readonly"]
            # each replica has its own slapd data (a volume per task slot); the snapshot is shared
            assert t["mounts"]["/var/lib/fedcloud-appliance"] == f"{stack.service(svc)}-{t['slot']}"
        assert len({t["port"] for t in tasks}) == 2
    sched = stack.wait_tasks("scheduler", 1, healthy=False)
    assert len(sched) == 1
    assert sched[0]["user"] == "10001:10001"
    assert sched[0]["readonly"]
    # appliance.yaml from a Swarm config, clouds.yaml and the host key from Swarm secrets
    cid = sched[0]["id"]
    listing = stack.exec(
        cid,
        "stat",
        "-c",
        "%n %u:%g %a",
        "/etc/fedcloud-appliance/appliance.yaml",
        "/etc/fedcloud-appliance/clouds.yaml",
        "/etc/grid-security/hostkey.pem",
    ).splitlines()
    assert listing == [
        "/etc/fedcloud-appliance/appliance.yaml 0:10001 444",
        "/etc/fedcloud-appliance/clouds.yaml 0:10001 440",
        "/etc/grid-security/hostkey.pem 0:10001 440",
    ]
    inspect = json.loads(run(["docker", "service", "inspect", stack.service("scheduler")]).stdout)
    spec = inspect[0]["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert {s["File"]["Name"] for s in spec["Secrets"]} == {
        "/etc/fedcloud-appliance/clouds.yaml",
        "/etc/grid-security/hostcert.pem",
        "/etc/grid-security/hostkey.pem",
    }


def test_both_bdii_replicas_publish_the_same_tree(stack: Stack):
    """One cycle of the scheduler's cloud-info, one bdii-update cycle in each replica."""
    deadline = time.monotonic() + 180
    jobs: dict[str, Any] = {}
    while time.monotonic() < deadline:
        jobs = stack.status()
        if jobs["cloud-info"]["status"] in ("ok", "partial"):
            break
        time.sleep(3)
    assert jobs["cloud-info"]["status"] in ("ok", "partial"), jobs["cloud-info"]
    tasks = stack.wait_tasks("resource-bdii", 2)
    for t in tasks:
        stack.exec(
            t["id"],
            "fedcloud-appliance",
            "bdii-update",
            "--once",
            "--wait-lock",
            "60",
            "--config",
            "/etc/fedcloud-appliance/appliance.yaml",
        )
    trees = [_entries(t["port"]) for t in tasks]
    assert trees[0] == trees[1]
    objects = "\n".join(line for lines in trees[0].values() for line in lines)
    assert "objectClass: GLUE2ComputingService" in objects
    assert objects.count("objectClass: GLUE2ComputingShare") == len(stack.testbed.seed["vo_map"])
    assert len(trees[0]) > 10


def test_both_site_bdii_replicas_aggregate_the_same_tree(stack: Stack):
    """Each site BDII replica reads the resource BDII service (DNS over its running tasks)."""
    tasks = stack.wait_tasks("site-bdii", 2)
    for t in tasks:
        stack.exec(
            t["id"],
            "fedcloud-appliance",
            "site-bdii",
            "--once",
            "--wait-lock",
            "60",
            "--config",
            "/etc/fedcloud-appliance/appliance.yaml",
        )
    base = "GLUE2DomainID=DEMO-SITE,o=glue"
    trees = [_entries(t["port"], base) for t in tasks]
    assert trees[0] == trees[1]
    objects = "\n".join(line for lines in trees[0].values() for line in lines)
    assert "objectClass: GLUE2AdminDomain" in objects
    assert "objectClass: GLUE2ComputingService" in objects


def test_a_killed_bdii_task_is_replaced_and_the_service_keeps_answering(stack: Stack):
    tasks = stack.wait_tasks("resource-bdii", 2)
    victim, survivor = tasks[0], tasks[1]
    before = _entries(survivor["port"])
    run(["docker", "kill", victim["id"]])
    # the service name (DNS round robin over the running tasks) answers from the ldap network
    client = [
        "docker",
        "run",
        "--rm",
        "--network",
        f"{stack.name}_ldap",
        "fedcloud-appliance:latest",
        *LDAPSEARCH,
        "-H",
        "ldap://resource-bdii:2170",
        "-b",
        "o=glue",
        "-s",
        "base",
        "dn",
    ]
    for _ in range(3):
        assert "dn: o=glue" in run(client, timeout=60).stdout
        assert _entries(survivor["port"]) == before
    # Swarm starts a new task in the killed one's slot; it answers the same tree
    deadline = time.monotonic() + 150
    replaced: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        replaced = [
            t
            for t in stack.wait_tasks("resource-bdii", 2, timeout=150)
            if t["id"] != survivor["id"]
        ]
        if replaced and replaced[0]["id"] != victim["id"]:
            break
        time.sleep(2)
    assert replaced
    assert replaced[0]["id"] != victim["id"]
    assert replaced[0]["slot"] == victim["slot"]
    new = replaced[0]
    stack.exec(
        new["id"],
        "fedcloud-appliance",
        "bdii-update",
        "--once",
        "--wait-lock",
        "60",
        "--config",
        "/etc/fedcloud-appliance/appliance.yaml",
    )
    assert _entries(new["port"]) == _entries(survivor["port"])


def test_one_scheduler_cycle_delivers_the_accounting_messages(stack: Stack):
    """accounting-extract then ssm-send in the single scheduler replica; the receiver gets all."""
    from fedcloud_dev.demo_env import receive

    deadline = time.monotonic() + 240
    jobs: dict[str, Any] = {}
    while time.monotonic() < deadline:
        jobs = stack.status()
        acc, ssm = jobs["accounting-extract"], jobs["ssm-send"]
        if (
            acc["status"] == "ok"
            and ssm["status"] == "ok"
            and ssm["last_run"]
            and ssm["last_run"] > acc["last_run"]
        ):
            break
        time.sleep(3)
    acc, ssm = jobs["accounting-extract"], jobs["ssm-send"]
    assert acc["status"] == "ok", acc
    assert ssm["status"] == "ok", ssm
    assert ssm["last_run"] > acc["last_run"], (acc, ssm)
    sent = ssm["counts"]["sent"]
    assert sent > 0, ssm
    queued = sum(q["elements"] for q in jobs["_queues"]["queues"])
    assert queued == 0  # nothing left behind
    assert receive(stack.workdir) == 0
    accepted = sorted((stack.workdir / "received" / "accepted").glob("*.msg"))
    rejected = stack.workdir / "received" / "rejected"
    assert len(accepted) == sent
    assert not rejected.exists() or not any(rejected.iterdir())
    # nothing lost: every message the extraction queued was sent and accepted, every cloud
    # record it counted is in them
    assert acc["counts"]["messages"] == sent, (acc, ssm)
    texts = [p.read_text() for p in accepted]
    cloud = [t for t in texts if "APEL-cloud-message" in t]
    assert cloud
    assert sum(t.count("\nVMUUID: ") for t in cloud) == acc["counts"]["records_cloud"], acc
