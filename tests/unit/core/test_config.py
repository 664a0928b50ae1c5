"""The appliance config model and loader: good files, bad files, error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_core.config import load_config, parse_config, render_sample
from fedcloud_core.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = "site:\n  name: TEST-SITE\n"


def test_minimal_config_gets_defaults():
    cfg = parse_config(MINIMAL, environ={})
    assert cfg.site.name == "TEST-SITE"
    assert cfg.site.compute_service_name == "TEST-SITE"
    assert cfg.bdii.port == 2170
    assert cfg.paths.locks == Path("/var/lib/fedcloud-appliance/locks")
    assert cfg.ssm.destination == "/queue/global.accounting.cloudtest.APEL"


def test_sample_is_valid_and_committed_copy_is_current():
    sample = render_sample()
    cfg = parse_config(sample, source="sample", environ={})
    assert cfg.site.name == "TEST-SITE"
    committed = (ROOT / "compose" / "appliance.sample.yaml").read_text(encoding="utf-8")
    assert committed == sample, (
        "compose/appliance.sample.yaml is out of date: run "
        "'fedcloud-appliance config sample -o compose/appliance.sample.yaml'"
    )


def test_sample_documents_every_section():
    sample = render_sample()
    for section in (
        "site:",
        "openstack:",
        "vos:",
        "paths:",
        "cloud_info:",
        "bdii:",
        "site_bdii:",
        "accounting:",
        "ssm:",
        "images:",
        "scheduler:",
    ):
        assert f"\n{section}" in sample


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site:\n  name: X\nbogus: 1\n", "cfg.yaml:3: bogus: unknown key"),
        ("site:\n  name: X\n  nmae: typo\n", "cfg.yaml:3: site.nmae: unknown key"),
        ("site:\n  description: no name\n", "site.name: required key is missing"),
        ("{}\n", "site: required key is missing"),
        (
            "site:\n  name: X\nbdii:\n  port: lots\n",
            "cfg.yaml:4: bdii.port: Input should be a valid integer",
        ),
        (
            "site:\n  name: X\nbdii:\n  port: 99999\n",
            "bdii.port: Input should be less than or equal to 65535",
        ),
        ("site:\n  name: 'bad name'\n", "site.name: String should match pattern"),
        (
            "site:\n  name: X\n  contacts:\n    security: nobody\n",
            "site.contacts.security: not an e-mail",
        ),
        ("site: [1, 2]\n", "site: Input should be a valid dictionary"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("site:\n  name: X\n   bad: indent\n", "cfg.yaml:3:"),
    ],
)
def test_bad_configs_name_file_key_and_problem(text, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="cfg.yaml", environ={})
    assert expected in str(err.value)


def test_project_mapped_to_two_vos_is_rejected():
    text = MINIMAL + "vos:\n  a:\n    projects: [p1]\n  b:\n    projects: [p1]\n"
    with pytest.raises(ConfigError, match="project p1 is mapped to two VOs: a and b"):
        parse_config(text, environ={})


def test_subscription_must_name_a_configured_vo():
    text = MINIMAL + (
        "images:\n  subscriptions:\n  - name: l1\n    url: https://x.example/l\n    vo: nope\n"
        "    endorser_dn: /CN=a\n    endorser_ca: /CN=b\n"
    )
    with pytest.raises(ConfigError, match="names VO 'nope', which is not in 'vos'"):
        parse_config(text, environ={})


def test_project_vo_mapping():
    cfg = parse_config(
        MINIMAL + "vos:\n  ops:\n    projects: [p1, p2]\n  fc:\n    projects: [p3]\n", environ={}
    )
    assert cfg.project_vo() == {"p1": "ops", "p2": "ops", "p3": "fc"}


def test_env_overrides_nested_keys_with_yaml_scalars():
    cfg = parse_config(
        MINIMAL,
        environ={
            "FEDCLOUD__BDII__PORT": "3000",
            "FEDCLOUD__SITE__NAME": "OTHER",
            "FEDCLOUD__SSM__USE_SSL": "false",
            "UNRELATED": "x",
        },
    )
    assert cfg.bdii.port == 3000
    assert cfg.site.name == "OTHER"
    assert cfg.ssm.use_ssl is False


def test_env_override_with_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match=r"bdii\.prot: unknown key"):
        parse_config(MINIMAL, environ={"FEDCLOUD__BDII__PROT": "1"})


def test_secret_from_file_is_read_and_hidden(tmp_path):
    secret = tmp_path / "ams.token"
    secret.write_text("s3cr3t-token\n")
    cfg = parse_config(MINIMAL + f"ssm:\n  ams_token_file: {secret}\n", environ={})
    assert cfg.ssm.ams_token is not None
    assert cfg.ssm.ams_token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t" not in repr(cfg)
    assert "s3cr3t" not in str(cfg.model_dump())


def test_secret_file_missing_names_key_and_path(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(
            MINIMAL + f"ssm:\n  ams_token_file: {tmp_path}/missing\n", source="c.yaml", environ={}
        )
    assert "ams_token_file" in str(err.value)
    assert "missing" in str(err.value)


def test_secret_and_secret_file_together_is_an_error(tmp_path):
    f = tmp_path / "t"
    f.write_text("x")
    with pytest.raises(ConfigError, match="either 'ams_token' or 'ams_token_file'"):
        parse_config(MINIMAL + f"ssm:\n  ams_token: y\n  ams_token_file: {f}\n", environ={})


def test_load_config_missing_file_mentions_sample(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


def test_load_config_from_env_var(tmp_path, monkeypatch):
    p = tmp_path / "a.yaml"
    p.write_text(MINIMAL)
    monkeypatch.setenv("FEDCLOUD_APPLIANCE_CONFIG", str(p))
    assert load_config().site.name == "TEST-SITE"
