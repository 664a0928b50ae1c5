"""clouds.yaml / OS_* resolution into a keystoneauth1 session (no network)."""

from __future__ import annotations

import pytest
from keystoneauth1.identity import v3

from fedcloud_core.config.openstack import OpenStackConfig
from fedcloud_core.errors import ConfigError
from fedcloud_core.openstack import OpenStackClients, make_session, resolve_cloud

pytestmark = pytest.mark.unit

CLOUDS = """
clouds:
  site:
    auth:
      auth_url: https://keystone.example.org:5000/v3
      username: reader
      password: pw-123456
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.org:5000/v3
      application_credential_id: abc
      application_credential_secret: sekret-1234
  oidc:
    auth_type: v3oidcaccesstoken
    auth:
      auth_url: https://keystone.example.org:5000/v3
      identity_provider: egi.eu
      access_token: eyJ-token
      project_id: p1
    cacert: /etc/ssl/certs/ca-certificates.crt
  insecure:
    verify: false
    auth: {auth_url: https://x.example/v3, username: u, password: p}
"""


@pytest.fixture
def clouds(tmp_path):
    p = tmp_path / "clouds.yaml"
    p.write_text(CLOUDS)
    return p


def test_password_cloud(clouds):
    cfg = OpenStackConfig(cloud="site", clouds_yaml=clouds)
    s = resolve_cloud(cfg, environ={})
    assert s.auth_type == "v3password"
    assert s.region_name == "RegionOne"
    assert "pw-123456" not in repr(s)
    sess = make_session(cfg, environ={})
    assert isinstance(sess.auth, v3.Password)
    assert sess.verify is True
    assert sess.timeout == 60.0


def test_application_credential_cloud(clouds):
    sess = make_session(OpenStackConfig(cloud="appcred", clouds_yaml=clouds), environ={})
    assert isinstance(sess.auth, v3.ApplicationCredential)


def test_oidc_access_token_cloud_with_cacert(clouds):
    sess = make_session(OpenStackConfig(cloud="oidc", clouds_yaml=clouds), environ={})
    assert isinstance(sess.auth, v3.OidcAccessToken)
    assert sess.verify == "/etc/ssl/certs/ca-certificates.crt"


def test_verify_false_is_refused(clouds):
    with pytest.raises(ConfigError, match="verify: false is refused"):
        resolve_cloud(OpenStackConfig(cloud="insecure", clouds_yaml=clouds), environ={})


def test_unknown_cloud_lists_known_ones(clouds):
    with pytest.raises(
        ConfigError, match="no cloud named 'nope' \\(have: appcred, insecure, oidc, site\\)"
    ):
        resolve_cloud(OpenStackConfig(cloud="nope", clouds_yaml=clouds), environ={})


def test_clouds_yaml_from_env_var(clouds):
    s = resolve_cloud(OpenStackConfig(cloud="site"), environ={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert s.auth["username"] == "reader"


def test_os_env_variables():
    env = {
        "OS_AUTH_URL": "https://k.example/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p-12345",
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "R2",
    }
    clients = OpenStackClients.from_config(OpenStackConfig(), environ=env)
    assert clients.region_name == "R2"
    assert isinstance(clients.session.auth, v3.Password)


def test_os_env_oidc_auth_type():
    env = {
        "OS_AUTH_URL": "https://k.example/v3",
        "OS_AUTH_TYPE": "v3oidcaccesstoken",
        "OS_ACCESS_TOKEN": "tok-12345",
        "OS_IDENTITY_PROVIDER": "egi.eu",
        "OS_PROJECT_ID": "p",
    }
    sess = make_session(OpenStackConfig(), environ=env)
    assert isinstance(sess.auth, v3.OidcAccessToken)


def test_no_credentials_at_all():
    with pytest.raises(ConfigError, match="no OpenStack credentials"):
        resolve_cloud(OpenStackConfig(), environ={})


def test_insecure_env_refused():
    env = {
        "OS_AUTH_URL": "https://k.example/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_INSECURE": "true",
    }
    with pytest.raises(ConfigError, match="OS_INSECURE is refused"):
        resolve_cloud(OpenStackConfig(), environ=env)


def test_unsupported_auth_type(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("clouds:\n  x:\n    auth_type: saml2\n    auth: {auth_url: https://k/v3}\n")
    with pytest.raises(ConfigError, match="unsupported auth_type 'saml2'"):
        resolve_cloud(OpenStackConfig(cloud="x", clouds_yaml=p), environ={})


def test_bad_option_for_auth_type(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "clouds:\n  x:\n    auth: {auth_url: https://k/v3, username: u, password: p, colour: red}\n"
    )
    with pytest.raises(ConfigError, match="auth options not valid for v3password: colour"):
        make_session(OpenStackConfig(cloud="x", clouds_yaml=p), environ={})
