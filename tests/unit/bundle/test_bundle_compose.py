"""The compose file's conventions, checked on the file itself (docker-compose config in integration)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fedcloud_appliance import oneshot

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
RAW = (ROOT / "compose" / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(RAW)
# the same file with every ${VAR:-default} replaced by its default, as compose sees it with no .env
DEFAULTS = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", RAW))
SERVICES = DEFAULTS["services"]


def test_required_services():
    assert {
        "cloud-info",
        "resource-bdii",
        "site-bdii",
        "accounting",
        "ssm",
        "images",
        "scheduler",
        "status-web",
    } <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_healthcheck_fixed_user_readonly_config(name):
    svc = SERVICES[name]
    assert svc["healthcheck"]["test"], name
    user = svc["user"]
    assert all(part.isdigit() for part in user.split(":")), f"{name}: numeric uid:gid, not {user}"
    assert user in ("10001:10001", "2170:10001")
    for v in svc.get("volumes", []):
        src, target, *mode = v.split(":")
        if target in ("/etc/fedcloud-appliance", "/etc/grid-security"):
            assert mode == ["ro"], f"{name}: {target} must be read-only"
        if src.startswith(("/", ".")) and target not in (
            "/etc/fedcloud-appliance",
            "/etc/grid-security",
        ):
            assert mode == ["ro"], f"{name}: host paths are mounted read-only ({v})"
    for p in svc.get("ports", []):
        assert p.startswith("127.0.0.1:"), f"{name}: published on 127.0.0.1 by default ({p})"


def test_bdiis_use_the_bdii_image_and_ldap_healthchecks():
    for name in ("resource-bdii", "site-bdii"):
        svc = SERVICES[name]
        assert svc["image"] == "fedcloud-bdii:latest"
        assert "--with-slapd" in svc["command"]
        assert svc["healthcheck"]["test"][1:3] == ["fedcloud-healthcheck", "ldap"]


def test_oneshot_services_match_the_cron_oneshot():
    """docker-compose run <job> and run-container <job> mount the same volumes."""
    names = {
        "cloud-info": "cloud-info",
        "accounting": "accounting-extract",
        "ssm": "ssm-send",
        "images": "images-sync",
    }
    for svc_name, key in names.items():
        svc = SERVICES[svc_name]
        assert svc["profiles"] == ["jobs"]
        assert svc["restart"] == "no"
        assert "--once" in svc["command"]
        assert svc["healthcheck"]["test"][1:4] == ["fedcloud-healthcheck", "heartbeat", key]
        spec = oneshot.container_spec(key, oneshot.OneshotSettings())
        want = {m["Target"] for m in spec["mounts"]}
        have = {v.split(":")[1] for v in svc["volumes"]}
        assert have == want, svc_name
        assert svc["command"][1:] == spec["command"][1:]


def test_images_job_sees_the_cas_but_not_the_host_key():
    """Images are untrusted input (issue 18): the images job mounts the CA directory only."""
    vols = SERVICES["images"]["volumes"]
    assert "/etc/grid-security/certificates:/etc/grid-security/certificates:ro" in vols
    assert not [v for v in vols if v.split(":")[1] == "/etc/grid-security"]


def test_named_volumes_share_the_oneshot_prefix():
    for vol in ("state", "spool", "images", "infosys", "bdii"):
        assert COMPOSE["volumes"][vol]["name"] == "${FEDCLOUD_VOLUME_PREFIX:-fedcloud}-" + vol


def test_scheduler_runs_only_the_jobs_without_their_own_container():
    cmd = SERVICES["scheduler"]["command"]
    assert cmd[:2] == ["fedcloud-appliance", "scheduler"]
    assert cmd[cmd.index("--jobs") + 1 :] == [
        "cloud-info",
        "accounting-extract",
        "ssm-send",
        "images-sync",
    ]
    assert "profiles" not in SERVICES["scheduler"]
    assert "profiles" not in SERVICES["status-web"]


def test_override_is_ignored_by_git_and_example_exists():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/compose/docker-compose.override.yml" in ignored
    assert "/compose/.env" in ignored
    assert (ROOT / "compose" / "docker-compose.override.example.yml").is_file()
    assert (ROOT / "compose" / "env.example").is_file()
