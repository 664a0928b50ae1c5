"""The bundle against a real Docker engine: images from scripts/dev/images, docker-compose 1.29.

``bundle`` (session scope) is one compose project with its own name, named volumes
(prefix) and free ports on 127.0.0.1, a config dir for the local OpenStack testbed,
and a finalizer that removes its containers and volumes. The BDIIs and the status
page run on the default bridge network with published ports (the production shape);
the one-shot jobs that talk to the testbed (which listens on the host's 127.0.0.1
only) join the host's network.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
COMPOSE_DIR = REPO / "compose"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    cmd: list[str],
    *,
    timeout: float = 300,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def docker_images() -> dict[str, str]:
    """The engine runs and the images are built from this tree (cached layers make it quick)."""
    run([str(REPO / "scripts/dev/dockerd"), "start"], timeout=120)
    out = run([str(REPO / "scripts/dev/images")], timeout=1800).stdout
    return {"appliance": "fedcloud-appliance:latest", "bdii": "fedcloud-bdii:latest", "log": out}


@dataclass
class Bundle:
    project: str
    prefix: str
    config_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    testbed: Any = None
    host_file: Path = Path()  # the compose file on the host network (demo_env.host_compose)
    workdir: Path = Path()  # demo_env's world: PKI, grid-security, image lists, broker

    def compose(
        self, *args: str, host: bool = False, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        files = ["-f", str(self.host_file if host else COMPOSE_DIR / "docker-compose.yml")]
        return run(
            [
                "docker-compose",
                "-p",
                self.project,
                "--project-directory",
                str(COMPOSE_DIR),
                *files,
                *args,
            ],
            env=self.env,
            timeout=timeout,
            check=check,
            cwd=COMPOSE_DIR,
        )

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def health(self, service: str) -> str:
        cid = self.container(service)
        if not cid:
            return "absent"
        out = run(
            [
                "docker",
                "inspect",
                "-f",
                "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                cid,
            ]
        ).stdout.split()
        return out[1] if len(out) > 1 else out[0]

    def wait_healthy(self, service: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.health(service)
            if state == "healthy":
                return
            if state in ("exited", "dead", "absent"):
                break
            time.sleep(1)
        logs = self.compose("logs", "--tail", "40", service, check=False).stdout
        raise AssertionError(f"{service} is {state}, not healthy, after {timeout}s\n{logs}")

    def volume_exec(self, script: str, *, timeout: float = 60) -> str:
        """Run a shell script in a throw-away appliance container with the three volumes."""
        return run(
            [
                "docker",
                "run",
                "--rm",
                "--user",
                "10001:10001",
                "-v",
                f"{self.prefix}-state:/var/lib/fedcloud-appliance",
                "-v",
                f"{self.prefix}-spool:/var/spool/apel",
                "-v",
                f"{self.prefix}-images:/image_data",
                "fedcloud-appliance:latest",
                "sh",
                "-c",
                script,
            ],
            timeout=timeout,
        ).stdout

    def volume_python(self, script: str, *, timeout: float = 60) -> str:
        """Run a Python script in a throw-away appliance container with the spool volume."""
        return run(
            [
                "docker",
                "run",
                "--rm",
                "--user",
                "10001:10001",
                "-v",
                f"{self.prefix}-spool:/var/spool/apel",
                "fedcloud-appliance:latest",
                "python3",
                "-c",
                script,
            ],
            timeout=timeout,
        ).stdout

    def status_json(self, timeout: float = 30) -> dict[str, Any]:
        """The status page's JSON, collected after this call started (the page caches for 10 s)."""
        import urllib.request
        from datetime import UTC, datetime

        t0 = datetime.now(UTC).replace(microsecond=0)
        url = f"http://127.0.0.1:{self.ports['status']}/status.json"
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(url, timeout=10) as r:
                data: dict[str, Any] = json.loads(r.read())
            if datetime.fromisoformat(data["generated"]) >= t0 or time.monotonic() > deadline:
                return data
            time.sleep(1)


@pytest.fixture(scope="session")
def bundle(docker_images: dict[str, str], testbed: Any) -> Iterator[Bundle]:
    """One compose project; its world (PKI, signed list, broker, config) from demo_env, as in make demo."""
    from fedcloud_dev.demo_env import broker_start, broker_stop, host_compose, prepare

    tag = uuid.uuid4().hex[:8]
    base = Path(f"/tmp/fedcloud-bundle-{tag}")
    names = ("resource_bdii", "site_bdii", "status_web", "imagelist", "stomp")
    ports = {n: free_port() for n in names}
    state = prepare(base, ports, subscription=f"bt-{tag}", image_prefix=f"BT{tag} ")
    cfg = Path(state["config_dir"])
    env = {
        **os.environ,
        "FEDCLOUD_CONFIG_DIR": str(cfg),
        "FEDCLOUD_GRID_SECURITY": state["grid_security"],
        "FEDCLOUD_VOLUME_PREFIX": f"fcbt-{tag}",
        "DEMO_IMAGELIST_DIR": state["imagelists"],
        "RESOURCE_BDII_PORT": str(ports["resource_bdii"]),
        "SITE_BDII_PORT": str(ports["site_bdii"]),
        "STATUS_WEB_PORT": str(ports["status_web"]),
        "IMAGELIST_PORT": str(ports["imagelist"]),
    }
    host_compose(COMPOSE_DIR / "docker-compose.yml", base / "docker-compose.host.yml")
    b = Bundle(
        project=f"fcbt{tag}",
        prefix=f"fcbt-{tag}",
        config_dir=cfg,
        env=env,
        ports={
            "resource": ports["resource_bdii"],
            "site": ports["site_bdii"],
            "status": ports["status_web"],
            "imagelist": ports["imagelist"],
            "stomp": ports["stomp"],
        },
        testbed=testbed,
        host_file=base / "docker-compose.host.yml",
        workdir=base,
    )
    node = None
    try:
        node = broker_start(base)
        yield b
    finally:
        b.compose(
            "--profile",
            "jobs",
            "--profile",
            "demo",
            "down",
            "-v",
            "--remove-orphans",
            "-t",
            "5",
            check=False,
            timeout=180,
        )
        run(
            [
                "docker",
                "volume",
                "rm",
                f"{b.prefix}-state",
                f"{b.prefix}-spool",
                f"{b.prefix}-images",
                f"{b.prefix}-infosys",
                f"{b.prefix}-bdii",
            ],
            check=False,
        )
        if node is not None:
            node.stop()
        broker_stop(base)
        shutil.rmtree(base, ignore_errors=True)
        _delete_images(testbed, f"BT{tag} ")


def _delete_images(testbed: Any, prefix: str) -> None:
    """The shared testbed keeps only what other tests expect: remove this run's images."""
    try:
        glance = testbed.glance(testbed.admin_session())
        for img in list(glance.images.list(filters={"tag": ["fedcloud-appliance"]})):
            if img["name"].startswith(prefix):
                glance.images.delete(img["id"])
    except Exception as exc:  # a cleanup problem must not hide the test result
        print(f"could not remove the test images {prefix}*: {exc}")
