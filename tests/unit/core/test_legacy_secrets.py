"""``config import-legacy`` never copies a secret and writes ``-o`` files 0600 (issue 18, defect 5)."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from fedcloud_appliance import cli
from fedcloud_core.predecessor_config import SECRET_PLACEHOLDER, is_secret, scrub_secrets
from fedcloud_core.predecessor_config.openstack_rc import convert

pytestmark = pytest.mark.unit

PASSWORD = "Pw-7f3a91c2e"  # test values the output must never contain
APP_SECRET = "AppCredSecret-55d0e1b7"
ACCESS_TOKEN = "eyJhbGciOiJSUzI1NiJ9.accessTok-9c2f"
CLIENT_SECRET = "oidc-client-secret-41aa"
CASO_PASSWORD = "caso-pw-0b8e61"
CASO_APP_SECRET = "caso-appcred-7713ab"
AMS_TOKEN = "ams-token-2d9c4f0e"
LIST_TOKEN = "appdbtoken3141"
QUERY_TOKEN = "querytoken2718"
YAML_TOKEN = "hepixtoken1618"
CK_TOKEN = "cloudkeepertoken1414"
SECRETS = [
    PASSWORD,
    APP_SECRET,
    ACCESS_TOKEN,
    CLIENT_SECRET,
    CASO_PASSWORD,
    CASO_APP_SECRET,
    AMS_TOKEN,
    LIST_TOKEN,
    QUERY_TOKEN,
    YAML_TOKEN,
    CK_TOKEN,
]

RC = f"""\
export OS_AUTH_URL=https://keystone.example.org:5000/v3
export OS_AUTH_TYPE=v3applicationcredential
export OS_USERNAME=accounting
export OS_PASSWORD='{PASSWORD}'
export OS_APPLICATION_CREDENTIAL_ID=0c5e7a
export OS_APPLICATION_CREDENTIAL_SECRET="{APP_SECRET}"
export OS_ACCESS_TOKEN={ACCESS_TOKEN}
export OS_CLIENT_SECRET={CLIENT_SECRET}
export OS_PROJECT_NAME=admin
export OS_REGION_NAME=RegionOne
"""


def _legacy_files(tmp_path):
    rc = tmp_path / "openstack.rc"
    rc.write_text(RC)
    caso = tmp_path / "caso.conf"
    caso.write_text(
        "[DEFAULT]\nsite_name = DEMO-SITE\nprojects = p1\n"
        "[keystone_auth]\nauth_type = password\nauth_url = https://keystone.example.org/v3\n"
        f"username = caso\npassword = {CASO_PASSWORD}\n"
        f"application_credential_secret = {CASO_APP_SECRET}\n"
    )
    sender = tmp_path / "sender.cfg"
    sender.write_text(
        "[sender]\nprotocol = AMS\n[broker]\nhost = msg.argo.grnet.gr\n"
        "[messaging]\ndestination = gLite-APEL\nams_project = accounting\n"
        f"token = {AMS_TOKEN}\npath = /var/spool/apel/outgoing/cloud\n"
    )
    hepix = tmp_path / "hepix.yaml"
    hepix.write_text(
        yaml.safe_dump(
            {
                "fedcloud.egi.eu": {
                    "url": f"https://{LIST_TOKEN}:x-oauth-basic@vmcaster.appdb.egi.eu/store/vo/"
                    "fedcloud.egi.eu/image.list",
                    "project": "p1",
                },
                "ops": {
                    "url": "https://vmcaster.appdb.egi.eu/store/vo/ops/image.list"
                    f"?access_token={QUERY_TOKEN}&format=json",
                    "token": YAML_TOKEN,
                },
            }
        )
    )
    ck = tmp_path / "image-lists.conf"
    ck.write_text(
        f"https://{CK_TOKEN}:x-oauth-basic@vmcaster.appdb.egi.eu/store/vo/biomed/image.list\n"
    )
    return [rc, caso, sender, hepix, ck]


def test_openstack_rc_convert_replaces_every_secret(tmp_path):
    rc = tmp_path / "openstack.rc"
    rc.write_text(RC)
    entry = convert(rc)["x-clouds-yaml"]["clouds"]["fedcloud"]
    auth = entry["auth"]
    assert auth["password"] == SECRET_PLACEHOLDER
    assert auth["application_credential_secret"] == SECRET_PLACEHOLDER
    assert auth["access_token"] == SECRET_PLACEHOLDER
    assert auth["application_credential_id"] == "0c5e7a"  # not a secret: kept
    assert auth["username"] == "accounting"
    assert entry["x-secrets-not-copied"] == [
        "OS_ACCESS_TOKEN",
        "OS_APPLICATION_CREDENTIAL_SECRET",
        "OS_CLIENT_SECRET",
        "OS_PASSWORD",
    ]
    text = repr(entry)
    for secret in (PASSWORD, APP_SECRET, ACCESS_TOKEN, CLIENT_SECRET):
        assert secret not in text


def test_import_legacy_prints_no_secret_of_any_importer(tmp_path, capsys):
    files = _legacy_files(tmp_path)
    assert cli.main(["config", "import-legacy", *map(str, files)]) == 0
    captured = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in captured.out, secret
        assert secret not in captured.err, secret
    assert "# x-clouds-yaml" in captured.out
    assert SECRET_PLACEHOLDER in captured.out  # the operator is told where the secret goes
    assert "OS_PASSWORD" in captured.out  # ... and which ones were left out
    assert "ams_token_file" in captured.out
    assert "format=json" in captured.out  # the rest of a list URL survives


def test_import_legacy_output_file_is_0600_whatever_the_umask(tmp_path):
    files = _legacy_files(tmp_path)
    out = tmp_path / "appliance.yaml"
    out.write_text("old\n")
    out.chmod(0o644)  # an existing world-readable file is replaced, not rewritten in place
    old_umask = os.umask(0o022)
    try:
        assert cli.main(["config", "import-legacy", *map(str, files), "-o", str(out)]) == 0
        fresh = tmp_path / "fresh.yaml"
        assert cli.main(["config", "import-legacy", str(files[0]), "-o", str(fresh)]) == 0
    finally:
        os.umask(old_umask)
    for f in (out, fresh):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        text = f.read_text()
        assert "x-clouds-yaml" in text
        for secret in SECRETS:
            assert secret not in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("OS_PASSWORD", True),
        ("password", True),
        ("application_credential_secret", True),
        ("access_token", True),
        ("OS_REFRESH_TOKEN", True),
        ("client_secret", True),
        ("token", True),
        ("ams_token_file", False),
        ("application_credential_id", False),
        ("application_credential_name", False),
        ("OS_ACCESS_TOKEN_TYPE", False),
        ("username", False),
        ("auth_url", False),
    ],
)
def test_is_secret(key, secret):
    assert is_secret(key) is secret


def test_scrub_secrets_is_the_last_guard():
    doc = {
        "ssm": {"token": "t0ps3cret", "token_file": "/etc/x"},
        "x-secrets-not-copied": ["password"],
        "images": {"subscriptions": [{"name": "a", "password": "p"}]},
    }
    out = scrub_secrets(doc)
    assert out["ssm"] == {"token": SECRET_PLACEHOLDER, "token_file": "/etc/x"}
    assert out["x-secrets-not-copied"] == ["password"]
    assert out["images"]["subscriptions"][0]["password"] == SECRET_PLACEHOLDER
    assert doc["ssm"]["token"] == "t0ps3cret"  # a copy
