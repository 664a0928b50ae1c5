"""Secret files are read for the keys the command uses (issue 18 defect 1).

The images containers see only appliance.yaml and /etc/fedcloud-appliance/images/: a
missing ssm (or openstack) secret file must not stop the images job from loading the
config, and still stops ``ssm send`` and ``config check``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_appliance import catalog, cli
from fedcloud_core.config import load_config
from fedcloud_core.config.base import SecretFile
from fedcloud_core.errors import ConfigError
from fedcloud_images import jobs as images_jobs

pytestmark = pytest.mark.unit

PROJECT = "0123456789abcdef0123456789abcdef"


def _spec(key: str):
    return next(s for s in catalog.jobs() if s.key == key)


def _write(tmp_path: Path, *, images_openstack: bool = True, token: str | None = None) -> Path:
    """appliance.yaml as in the bundle: secret files in other jobs' places (not mounted)."""
    creds = tmp_path / "images"
    creds.mkdir(exist_ok=True)
    (creds / "clouds.yaml").write_text("clouds: {}\n")
    text = f"""\
site:
  name: TEST-SITE
paths:
  state_dir: {tmp_path}/state
  image_dir: {tmp_path}/cache
openstack:
  cloud: fedcloud
  clouds_yaml: {tmp_path}/clouds.yaml
  oidc:
    token_endpoint: https://aai.example.org/token
    client_id: token-portal
    refresh_token_file: {tmp_path}/openstack-refresh-token
vos:
  ops:
    projects: [{PROJECT}]
ssm:
  protocol: AMS
  ams_token_file: {tmp_path}/ams-token
images:
  subscriptions:
  - name: ops
    vo: ops
    url: https://lists.example.org/ops.list
    endorser_dn: /DC=EU/CN=appdb.example.org
    endorser_ca: /DC=EU/CN=Example CA
"""
    if token:
        text += f"    token_file: {token}\n"
    if images_openstack:
        text += f"  openstack:\n    cloud: fedcloud-images\n    clouds_yaml: {creds}/clouds.yaml\n"
    path = tmp_path / "appliance.yaml"
    path.write_text(text)
    return path


def test_missing_ssm_and_openstack_secret_files_do_not_stop_images_sync(tmp_path):
    cfg = load_config(_write(tmp_path), secrets=_spec("images-sync").secrets)
    assert isinstance(cfg.ssm.ams_token, SecretFile)
    assert isinstance(cfg.openstack.oidc.refresh_token, SecretFile)
    assert cfg.images.openstack is not None
    assert cfg.images.openstack.cloud == "fedcloud-images"
    assert images_jobs.openstack_config(cfg) is cfg.images.openstack
    # the unread secret is never used as a value
    with pytest.raises(ConfigError, match=r"secret file .*ams-token was not read"):
        cfg.ssm.ams_token.get_secret_value()


def test_the_images_jobs_own_secret_files_are_read(tmp_path):
    (tmp_path / "images").mkdir()
    token = tmp_path / "images" / "ops-token"
    token.write_text("list-token\n")
    cfg = load_config(_write(tmp_path, token=str(token)), secrets=_spec("images-sync").secrets)
    sub = cfg.images.subscriptions[0]
    assert sub.token is not None
    assert not isinstance(sub.token, SecretFile)
    assert sub.token.get_secret_value() == "list-token"


def test_a_missing_images_secret_file_stops_images_sync(tmp_path):
    path = _write(tmp_path, token=str(tmp_path / "images" / "missing-token"))
    with pytest.raises(ConfigError) as err:
        load_config(path, secrets=_spec("images-sync").secrets)
    msg = str(err.value)
    assert "images.subscriptions.0.token_file: cannot read secret file" in msg
    assert f"{path}:" in msg  # the file and line of the key
    assert "ams-token" not in msg  # not the secrets the job does not use


def test_without_images_openstack_the_images_job_needs_the_openstack_secrets(tmp_path):
    path = _write(tmp_path, images_openstack=False)
    with pytest.raises(ConfigError, match=r"openstack\.oidc\.refresh_token_file"):
        load_config(path, secrets=_spec("images-sync").secrets)
    unread = load_config(path, secrets=lambda _cfg: ())
    assert images_jobs.secret_keys(unread) == ("images", "openstack")
    assert images_jobs.openstack_config(unread) is unread.openstack


def test_a_missing_ssm_secret_file_stops_ssm_send_and_config_check(tmp_path, capsys):
    path = _write(tmp_path)
    (tmp_path / "openstack-refresh-token").write_text("rt\n")
    with pytest.raises(ConfigError, match=r"ssm\.ams_token_file: cannot read secret file"):
        load_config(path, secrets=_spec("ssm-send").secrets)
    with pytest.raises(ConfigError, match=r"ssm\.ams_token_file"):
        load_config(path)  # config check, probes: every secret file
    assert cli.main(["config", "check", "--config", str(path)]) == 2
    assert cli.main(["ssm", "send", "--config", str(path), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.count("ssm.ams_token_file: cannot read secret file") == 2
    (tmp_path / "ams-token").write_text("t0k3n\n")
    cfg = load_config(path)
    assert cfg.ssm.ams_token is not None
    assert cfg.ssm.ams_token.get_secret_value() == "t0k3n"


def test_config_check_lists_every_unreadable_secret_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path))
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert "openstack.oidc.refresh_token_file" in lines[0]
    assert "ssm.ams_token_file" in lines[1]


def test_an_empty_secret_file_is_an_error(tmp_path):
    path = _write(tmp_path)
    (tmp_path / "openstack-refresh-token").write_text("\n")
    (tmp_path / "ams-token").write_text("t\n")
    with pytest.raises(ConfigError, match=r"refresh_token_file: secret file .* is empty"):
        load_config(path)


def test_status_reads_no_secret_file(tmp_path, capsys):
    """The images-scheduler's healthcheck runs `status` in the images container."""
    path = _write(tmp_path)
    rc = cli.main(["status", "--config", str(path), "--no-bdii", "--jobs", "images-sync"])
    assert rc == 0, capsys.readouterr()


def test_the_scheduler_reads_the_secrets_of_its_jobs_only(tmp_path):
    assert cli.secret_scope([_spec("ssm-send")]) is None  # a job without a scope: all
    assert cli.secret_scope([_spec("images-sync"), _spec("ssm-send")]) is None
    scope = cli.secret_scope([_spec("images-sync")])
    assert scope is not None
    cfg = load_config(_write(tmp_path), secrets=scope)
    assert isinstance(cfg.ssm.ams_token, SecretFile)


def test_the_images_job_says_where_its_credentials_go_when_it_has_none(tmp_path):
    """In the images containers /etc/fedcloud-appliance/clouds.yaml is not there."""
    (tmp_path / "openstack-refresh-token").write_text("rt\n")
    cfg = load_config(_write(tmp_path, images_openstack=False), secrets=lambda _cfg: ("openstack",))
    with pytest.raises(ConfigError) as err:
        images_jobs._clients(cfg)
    msg = str(err.value)
    assert f"clouds.yaml not found at {tmp_path}/clouds.yaml" in msg
    assert "images.openstack is not set" in msg
    assert "/etc/fedcloud-appliance/images/" in msg


def test_member_cloud_entries_come_from_the_images_jobs_clouds_yaml(tmp_path):
    from fedcloud_core.jobs import JobContext

    cfg = load_config(_write(tmp_path), secrets=_spec("images-sync").secrets)
    fake = object()
    deps = dict.fromkeys(("clients", "state", "downloader", "glance", "projects", "in_use"), fake)
    ctx = JobContext(config=cfg, deps=images_jobs.ImagesDeps(**deps, sources=[fake]))  # type: ignore[arg-type]
    sync_deps = images_jobs.build_deps(ctx)
    with pytest.raises(ConfigError, match=rf"{tmp_path}/images/clouds.yaml: no cloud named 'vo'"):
        sync_deps.member_client("vo")
