"""The compose file's conventions, checked on the file itself (docker-compose config in integration)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fedcloud_appliance import catalog, cli, oneshot
from fedcloud_core.errors import ConfigError

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
        "images-scheduler",
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


def _jobs_of(svc: dict) -> set[str]:
    """The job keys a service's command runs: a scheduler's (--only/--exclude, parsed by the
    real CLI) or a one-shot's."""
    cmd = svc["command"]
    if cmd[0] != "fedcloud-appliance":
        return set()
    if cmd[1] == "scheduler":
        args = cli.build_parser().parse_args(cmd[1:])
        return {s.key for s in cli.scheduled_jobs(args.jobs, args.exclude)}
    return {k for k, j in oneshot.JOBS.items() if tuple(cmd[1 : 1 + len(j.command)]) == j.command}


SCHEDULERS = sorted(n for n, s in SERVICES.items() if s["command"][1:2] == ["scheduler"])


def test_the_schedulers_run_every_job_without_a_container_of_its_own_once():
    assert SCHEDULERS == ["images-scheduler", "scheduler"]
    assert _jobs_of(SERVICES["scheduler"]) == {"cloud-info", "accounting-extract", "ssm-send"}
    assert _jobs_of(SERVICES["images-scheduler"]) == {"images-sync"}
    for name in SCHEDULERS:
        svc = SERVICES[name]
        assert "profiles" not in svc
        hc = svc["healthcheck"]["test"]
        assert set(hc[hc.index("--jobs") + 1 :]) == _jobs_of(svc), name
    assert "profiles" not in SERVICES["status-web"]


@pytest.mark.parametrize("name", SCHEDULERS)
def test_a_scheduler_mounts_what_its_jobs_need_and_nothing_else(name):
    """The same mounts as the one-shot containers of its jobs (oneshot.JOBS), together."""
    want: set[str] = set()
    for key in _jobs_of(SERVICES[name]):
        want |= {
            m["Target"] for m in oneshot.container_spec(key, oneshot.OneshotSettings())["mounts"]
        }
    have = {v.split(":")[1] for v in SERVICES[name]["volumes"]}
    assert have == want


def test_no_container_that_runs_the_images_job_mounts_the_host_key():
    """Images are untrusted input (issue 18): whatever container replicates them - the
    images scheduler, the one-shot, a cron run-container - sees the CA directory only,
    never /etc/grid-security with the host key and certificate."""
    runners = sorted(n for n, s in SERVICES.items() if "images-sync" in _jobs_of(s))
    assert runners == ["images", "images-scheduler"]
    for name in runners:
        targets = {v.split(":")[1]: v.split(":")[0] for v in SERVICES[name]["volumes"]}
        assert "/etc/grid-security" not in targets, name
        assert targets["/etc/grid-security/certificates"].endswith("/certificates"), name
        assert not [t for t in targets if "hostkey" in t or "hostcert" in t], name
    spec = oneshot.container_spec("images-sync", oneshot.OneshotSettings())
    grid = [m for m in spec["mounts"] if m["Target"].startswith("/etc/grid-security")]
    assert [(m["Source"], m["Target"]) for m in grid] == [
        ("/etc/grid-security/certificates", "/etc/grid-security/certificates")
    ]


def test_scheduler_only_and_exclude():
    keys = [s.key for s in cli.scheduled_jobs(None, ["images-sync"])]
    assert "images-sync" not in keys
    assert "cloud-info" in keys
    only = [s.key for s in cli.scheduled_jobs(["images-sync", "ssm-send"])]
    assert sorted(only) == ["images-sync", "ssm-send"]
    with pytest.raises(ConfigError, match="both"):
        cli.scheduled_jobs(["ssm-send"], ["ssm-send"])
    with pytest.raises(ConfigError, match="no job"):
        cli.scheduled_jobs(None, [s.key for s in catalog.jobs()])
    # --jobs stays an alias of --only
    args = cli.build_parser().parse_args(["scheduler", "--jobs", "ssm-send"])
    assert (args.jobs, args.exclude) == (["ssm-send"], [])
    args = cli.build_parser().parse_args(
        ["scheduler", "--only", "ssm-send", "--exclude", "cloud-info"]
    )
    assert (args.jobs, args.exclude) == (["ssm-send"], ["cloud-info"])


def test_override_is_ignored_by_git_and_example_exists():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/compose/docker-compose.override.yml" in ignored
    assert "/compose/.env" in ignored
    assert (ROOT / "compose" / "docker-compose.override.example.yml").is_file()
    assert (ROOT / "compose" / "env.example").is_file()
