"""run-container: the container spec (Docker SDK objects, no engine) and the run loop with a fake client."""

from __future__ import annotations

import io

import pytest
from docker.types import Mount

from fedcloud_appliance import oneshot
from fedcloud_core.errors import PermanentError

pytestmark = pytest.mark.unit


def _mounts(spec: dict) -> dict[str, Mount]:
    return {m["Target"]: m for m in spec["mounts"]}


def test_accounting_spec_volumes_user_readonly():
    s = oneshot.OneshotSettings(config_dir="/srv/cfg", volume_prefix="site1")
    spec = oneshot.container_spec("accounting", s)
    assert spec["image"] == "fedcloud-appliance:latest"
    assert spec["command"] == [
        "fedcloud-appliance",
        "accounting",
        "extract",
        "--config",
        "/etc/fedcloud-appliance/appliance.yaml",
        "--once",
    ]
    assert spec["user"] == "10001:10001"
    m = _mounts(spec)
    assert set(m) == {"/etc/fedcloud-appliance", "/var/lib/fedcloud-appliance", "/var/spool/apel"}
    cfg = m["/etc/fedcloud-appliance"]
    assert (cfg["Type"], cfg["Source"], cfg["ReadOnly"]) == ("bind", "/srv/cfg", True)
    assert (m["/var/spool/apel"]["Type"], m["/var/spool/apel"]["Source"]) == (
        "volume",
        "site1-spool",
    )
    assert m["/var/lib/fedcloud-appliance"]["Source"] == "site1-state"
    assert m["/var/lib/fedcloud-appliance"]["ReadOnly"] is False
    assert spec["read_only"] is True
    assert "/tmp" in spec["tmpfs"]
    assert spec["cap_drop"] == ["ALL"]
    assert spec["security_opt"] == ["no-new-privileges"]
    assert "network_mode" not in spec
    assert "network" not in spec
    assert spec["labels"]["eu.egi.fedcloud.job"] == "accounting-extract"


@pytest.mark.parametrize(
    ("job", "volumes", "certs"),
    [
        (
            "cloud-info",
            {"/var/lib/fedcloud-appliance", "/var/lib/fedcloud-appliance/cloud-info"},
            False,
        ),
        ("ssm send", {"/var/lib/fedcloud-appliance", "/var/spool/apel"}, True),
        ("images-sync", {"/var/lib/fedcloud-appliance", "/image_data"}, "ca"),
    ],
)
def test_each_job_gets_only_what_it_needs(job, volumes, certs):
    m = _mounts(oneshot.container_spec(job, oneshot.OneshotSettings()))
    assert {t for t, x in m.items() if x["Type"] == "volume"} == volumes
    assert ("/etc/grid-security" in m) is (certs is True)
    if certs is True:
        assert m["/etc/grid-security"]["ReadOnly"] is True
    # images-sync handles untrusted images: the CA directory only, never the host key
    assert ("/etc/grid-security/certificates" in m) is (certs == "ca")
    if certs == "ca":
        ca = m["/etc/grid-security/certificates"]
        assert ca["ReadOnly"] is True
        assert ca["Source"] == "/etc/grid-security/certificates"


def test_network_and_extra_args():
    spec = oneshot.container_spec("ssm", oneshot.OneshotSettings(network="host"), ["--dry-run"])
    assert spec["network_mode"] == "host"
    assert spec["command"][-2:] == ["--once", "--dry-run"]
    spec = oneshot.container_spec("ssm", oneshot.OneshotSettings(network="fedcloud_default"))
    assert spec["network"] == "fedcloud_default"


def test_unknown_job_is_a_clear_error():
    with pytest.raises(PermanentError, match="unknown job 'bdii-update'"):
        oneshot.container_spec("bdii-update", oneshot.OneshotSettings())


def test_settings_from_env(tmp_path):
    s = oneshot.OneshotSettings.from_env(
        {
            "FEDCLOUD_IMAGE": "reg/app:1",
            "FEDCLOUD_VOLUME_PREFIX": "p",
            "FEDCLOUD_NETWORK": "host",
            "FEDCLOUD_CONFIG_DIR": str(tmp_path / "x" / ".." / "cfg"),
        },
        volume_prefix=None,
        timeout=5.0,
    )
    assert (s.image, s.volume_prefix, s.network, s.timeout) == ("reg/app:1", "p", "host", 5.0)
    assert s.config_dir == str(tmp_path / "cfg")  # absolute, normalised: a bind mount source


class FakeContainer:
    def __init__(self, code: int | None):
        self.code = code
        self.calls: list[str] = []

    def start(self):
        self.calls.append("start")

    def logs(self, **kw):
        assert kw["follow"] is True
        yield b"accounting-extract: ok in 0.1s\n"

    def wait(self, timeout):
        self.calls.append("wait")
        if self.code is None:
            from requests.exceptions import ReadTimeout

            raise ReadTimeout("timed out")
        return {"StatusCode": self.code}

    def stop(self, timeout):
        self.calls.append("stop")

    def remove(self, force, v):
        self.calls.append(f"remove force={force} v={v}")


class FakeClient:
    def __init__(self, container):
        self.container = container
        self.created: dict = {}
        self.containers = self

    def create(self, **kw):
        self.created = kw
        return self.container


@pytest.mark.parametrize("code", [0, 3, 4])
def test_run_passes_the_exit_code_and_always_removes(code):
    c = FakeContainer(code)
    out = io.StringIO()
    rc = oneshot.run_oneshot("accounting", oneshot.OneshotSettings(), client=FakeClient(c), out=out)
    assert rc == code
    assert c.calls == ["start", "wait", "remove force=True v=True"]
    assert "accounting-extract: ok" in out.getvalue()


def test_run_timeout_stops_and_removes():
    c = FakeContainer(None)
    rc = oneshot.run_oneshot(
        "ssm", oneshot.OneshotSettings(timeout=0.1), client=FakeClient(c), out=io.StringIO()
    )
    assert rc == 1
    assert c.calls == ["start", "wait", "stop", "remove force=True v=True"]


def test_missing_image_is_a_clear_error():
    from docker.errors import ImageNotFound

    class NoImage(FakeClient):
        def create(self, **kw):
            raise ImageNotFound("no such image")

    with pytest.raises(PermanentError, match=r"image nope:1 is not present \(make images\)"):
        oneshot.run_oneshot("ssm", oneshot.OneshotSettings(image="nope:1"), client=NoImage(None))


# --- oneshot.JOBS restates the job registry and the compose file: tied to both here


def _compose_oneshots() -> dict[str, dict]:
    """The compose bundle's one-shot job services (profile jobs), by their job's key."""
    import re

    import yaml

    from support.repo_paths import REPO

    doc = yaml.safe_load((REPO / "compose" / "docker-compose.yml").read_text())
    out = {}
    for svc in doc["services"].values():
        cmd = svc.get("command") or []
        if "jobs" in svc.get("profiles", ()) and cmd[:1] == ["fedcloud-appliance"]:
            words = tuple(w for w in cmd[1:] if not w.startswith("-") and not w.startswith("/"))
            mounts = {}
            for v in svc["volumes"]:
                m = re.fullmatch(r"(\$\{[^}]*\}[^:]*|[^:]+):([^:]+)(?::(ro|rw))?", v)
                assert m, v
                mounts[m.group(2)] = (m.group(1), m.group(3) == "ro")
            out["-".join(words)] = {"command": words, "mounts": mounts}
    return out


def test_oneshot_jobs_are_the_registrys_scheduled_jobs_outside_the_bdiis():
    from fedcloud_appliance import catalog

    scheduled = {s.key for s in catalog.jobs() if s.interval is not None}
    # bdii-update and site-bdii run inside the long-running BDII containers, not one-shot
    assert set(oneshot.JOBS) == scheduled - {"bdii-update", "site-bdii"}
    for key, job in oneshot.JOBS.items():
        assert tuple(catalog.job(key).name.split()) == job.command, key


def test_oneshot_jobs_mount_what_the_compose_services_mount():
    compose = _compose_oneshots()
    assert set(compose) == set(oneshot.JOBS)
    for key, job in oneshot.JOBS.items():
        c = compose[key]
        assert c["command"] == job.command, key
        named = {src: tgt for tgt, (src, _) in c["mounts"].items() if not src.startswith("$")}
        assert named == {v: oneshot.VOLUME_TARGETS[v] for v in job.volumes}, key
        m = _mounts(oneshot.container_spec(key, oneshot.OneshotSettings()))
        binds = {t for t, x in m.items() if x["Type"] == "bind"}
        assert binds == {t for t, (src, _) in c["mounts"].items() if src.startswith("$")}, key
        for t in binds:
            assert m[t]["ReadOnly"] is c["mounts"][t][1] is True, (key, t)
