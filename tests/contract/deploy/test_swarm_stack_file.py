"""The Swarm stack (compose/stack-render) agrees with docker-compose.yml (issue 17).

Rendered for real by ``docker stack config`` (the docker CLI's own loader and schema, the
one ``docker stack deploy`` uses). The stack is compose's long-running services with the
same images, commands, users, environment, healthchecks, capabilities and named volumes;
the only differences are the deliberate ones listed here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "compose"
RAW = (COMPOSE / "docker-compose.yml").read_text()
# compose with every variable at its default (as the stack is rendered below)
DEFAULTS = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", RAW))
LONG_RUNNING = sorted(n for n, s in DEFAULTS["services"].items() if not s.get("profiles"))
BDIIS = ("resource-bdii", "site-bdii")
HOST_BIND_TARGETS = {
    "/etc/fedcloud-appliance",
    "/etc/grid-security",
    "/etc/grid-security/certificates",
}
ENV_VARS = re.compile(r"^(FEDCLOUD_|RESOURCE_BDII_|SITE_BDII_|STATUS_|BDII_|IMAGELIST_)")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (scripts/dev/apt.d/bundle.txt: docker.io)")
    env = {k: v for k, v in os.environ.items() if not ENV_VARS.match(k)}
    proc = subprocess.run(
        [str(COMPOSE / "stack-render")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# rendered by compose/stack-render")
    doc: dict[str, Any] = yaml.safe_load(proc.stdout)
    doc["_text"] = proc.stdout
    return doc


def _compose_mounts(svc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    out = {}
    for v in svc.get("volumes", []):
        src, target, *mode = v.split(":")
        out[target] = (src, "ro" in mode)
    return out


def _stack_mounts(svc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {
        v["target"]: (v.get("source", v["type"]), bool(v.get("read_only")))
        for v in svc.get("volumes", [])
    }


def test_the_stack_is_composes_long_running_services(stack):
    assert sorted(stack["services"]) == LONG_RUNNING
    assert {"resource-bdii", "site-bdii", "scheduler", "status-web"} <= set(LONG_RUNNING)
    for oneshot in ("cloud-info", "accounting", "ssm", "images", "imagelist-server"):
        assert oneshot not in stack["services"]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_same_image_command_user_environment_healthcheck(stack, name):
    c, s = DEFAULTS["services"][name], stack["services"][name]
    assert s["image"] == c["image"]
    assert s["command"] == c["command"]
    assert s["user"] == c["user"]
    assert {k: str(v) for k, v in c.get("environment", {}).items()} == {
        k: str(v) for k, v in s.get("environment", {}).items()
    }
    assert s["healthcheck"]["test"] == c["healthcheck"]["test"]
    assert s["cap_drop"] == c["cap_drop"] == ["ALL"]
    assert s["read_only"] is True  # the BDIIs too (their slapd writes only into its volume)
    assert any(v["type"] == "tmpfs" and v["target"] == "/tmp" for v in s["volumes"])


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_same_named_volumes_except_the_bdii_replicas_own(stack, name):
    c = _compose_mounts(DEFAULTS["services"][name])
    s = _stack_mounts(stack["services"][name])
    for target, (src, ro) in c.items():
        if target in HOST_BIND_TARGETS or target.startswith("/etc/fedcloud-appliance/"):
            continue  # Swarm configs and secrets (below), the CA directory a bind mount
        if name in BDIIS and target == "/var/lib/fedcloud-appliance":
            # each replica its own slapd data: a volume per task slot, never one shared by two
            assert s[target] == ("bdii-replica", False)
            continue
        assert s[target] == (src, ro), target
    extra = set(s) - set(c) - {"/tmp", "/etc/grid-security/certificates"}
    assert extra == set()
    for vol in {src for src, _ in c.values()} & set(stack["volumes"]):
        assert stack["volumes"][vol]["name"] == DEFAULTS["volumes"][vol]["name"]
    assert stack["volumes"]["bdii-replica"]["name"] == "{{.Service.Name}}-{{.Task.Slot}}"


def test_config_and_certificates_are_swarm_configs_and_secrets(stack):
    for name in LONG_RUNNING:
        s = stack["services"][name]
        assert {c["target"] for c in s["configs"]} == {"/etc/fedcloud-appliance/appliance.yaml"}
        assert not [v for v in s["volumes"] if v["target"] == "/etc/fedcloud-appliance"]
    sched = stack["services"]["scheduler"]
    assert {(x["target"], x["mode"]) for x in sched["secrets"]} == {
        ("/etc/fedcloud-appliance/clouds.yaml", 0o440),
        ("/etc/grid-security/hostcert.pem", 0o444),
        ("/etc/grid-security/hostkey.pem", 0o440),
    }
    for name in (*BDIIS, "status-web"):
        assert not stack["services"][name].get("secrets")  # no OpenStack credentials, no key
    if "images-scheduler" in stack["services"]:
        img = stack["services"]["images-scheduler"]
        assert [x["target"] for x in img["secrets"]] == ["/etc/fedcloud-appliance/clouds.yaml"]
    # content only ever from files on the manager, never inline in the stack file
    for kind in ("configs", "secrets"):
        for item in stack[kind].values():
            assert set(item) <= {"name", "file"}, item
    assert "PRIVATE KEY" not in stack["_text"]
    assert "password" not in stack["_text"].lower()


def test_replicas_healthchecks_and_single_scheduler(stack):
    for name in BDIIS:
        deploy = stack["services"][name]["deploy"]
        assert deploy["replicas"] == 2
        assert deploy["update_config"]["order"] == "start-first"
        assert stack["services"][name]["healthcheck"]["test"][1:3] == [
            "fedcloud-healthcheck",
            "ldap",
        ]
        ports = stack["services"][name]["ports"]
        assert [(p["target"], p["mode"]) for p in ports] == [(2170, "ingress")]
    for name in [n for n in LONG_RUNNING if n.endswith("scheduler")]:
        deploy = stack["services"][name]["deploy"]
        assert deploy["replicas"] == 1
        assert deploy["update_config"]["order"] == "stop-first"
    assert "ports" not in stack["services"]["status-web"]  # never public by default
    for name in LONG_RUNNING:
        res = stack["services"][name]["deploy"]["resources"]
        assert int(res["reservations"]["memory"]) < int(res["limits"]["memory"])


def test_render_without_ports_and_with_a_site_file(tmp_path):
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    site = tmp_path / "site.yml"
    site.write_text(
        'version: "3.9"\nservices:\n  resource-bdii:\n    ports: [{target: 2170, mode: host}]\n'
    )
    out = subprocess.run(
        [str(COMPOSE / "stack-render"), "--no-ports", "-f", str(site)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    doc = yaml.safe_load(out)
    assert doc["services"]["resource-bdii"]["ports"] == [{"mode": "host", "target": 2170}]
    assert "ports" not in doc["services"]["site-bdii"]
