"""Issue 18 defect 1: the containers that replicate images (untrusted input) see of the
config directory only appliance.yaml and the images job's own credentials directory, and of
/etc/grid-security only the CAs; the other containers keep the whole config directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fedcloud_appliance import oneshot
from fedcloud_core.errors import PermanentError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
RAW = (ROOT / "compose" / "docker-compose.yml").read_text()
SERVICES = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", RAW))["services"]
CONFIG = "/etc/fedcloud-appliance"
IMAGES_RUNNERS = ("images", "images-scheduler")
SECRETS = ("hostkey", "hostcert", "clouds.yaml")


def _binds(svc: dict) -> dict[str, str]:
    """target -> host source of a compose service's bind mounts."""
    out = {}
    for v in svc["volumes"]:
        src, target, *_ = v.split(":")
        if src.startswith("/"):
            out[target] = src
    return out


@pytest.mark.parametrize("name", IMAGES_RUNNERS)
def test_compose_images_containers_mount_appliance_yaml_and_their_credentials_only(name):
    binds = _binds(SERVICES[name])
    assert binds == {
        f"{CONFIG}/appliance.yaml": f"{CONFIG}/appliance.yaml",
        f"{CONFIG}/images": f"{CONFIG}/images",
        "/etc/grid-security/certificates": "/etc/grid-security/certificates",
    }
    assert CONFIG not in binds  # not the directory as a whole
    assert not [p for p in (*binds, *binds.values()) if any(s in p for s in SECRETS)]
    for v in SERVICES[name]["volumes"]:
        if v.startswith("/"):
            assert v.endswith(":ro"), v


@pytest.mark.parametrize("name", ["scheduler", "status-web", "cloud-info", "accounting", "ssm"])
def test_the_other_job_containers_keep_the_whole_config_directory(name):
    assert _binds(SERVICES[name])[CONFIG] == CONFIG


def test_run_container_images_mounts_neither_the_host_key_nor_the_config_directory():
    spec = oneshot.container_spec("images", oneshot.OneshotSettings(config_dir="/srv/cfg"))
    binds = {
        m["Target"]: (m["Source"], m["ReadOnly"]) for m in spec["mounts"] if m["Type"] == "bind"
    }
    assert binds == {
        f"{CONFIG}/appliance.yaml": ("/srv/cfg/appliance.yaml", True),
        f"{CONFIG}/images": ("/srv/cfg/images", True),
        "/etc/grid-security/certificates": ("/etc/grid-security/certificates", True),
    }
    assert spec["command"][spec["command"].index("--config") + 1] == f"{CONFIG}/appliance.yaml"


@pytest.mark.parametrize("job", ["cloud-info", "accounting", "ssm"])
def test_run_container_other_jobs_keep_the_whole_config_directory(job):
    spec = oneshot.container_spec(job, oneshot.OneshotSettings(config_dir="/srv/cfg"))
    cfg = [m for m in spec["mounts"] if m["Target"].startswith(CONFIG)]
    assert [(m["Target"], m["Source"], m["ReadOnly"]) for m in cfg] == [(CONFIG, "/srv/cfg", True)]


def test_run_container_names_a_missing_images_credentials_directory(tmp_path):
    (tmp_path / "appliance.yaml").write_text("site: {name: X}\n")
    settings = oneshot.OneshotSettings(config_dir=str(tmp_path))
    with pytest.raises(PermanentError, match=r"images-sync needs .*/images: create it"):
        oneshot.container_spec("images", settings)
    (tmp_path / "images").mkdir()
    spec = oneshot.container_spec("images", settings)
    assert {m["Source"] for m in spec["mounts"]} >= {str(tmp_path / "images")}


def test_compose_and_run_container_agree_on_the_images_mounts():
    spec = oneshot.container_spec("images-sync", oneshot.OneshotSettings())
    want = {(m["Target"], m.get("Source")) for m in spec["mounts"] if m["Type"] == "bind"}
    for name in IMAGES_RUNNERS:
        have = {(t, s) for t, s in _binds(SERVICES[name]).items()}
        assert have == want, name
