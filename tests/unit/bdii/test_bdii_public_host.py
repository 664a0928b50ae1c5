"""The site BDII publishes its own endpoint under a public host name, never a loopback one."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_appliance import cli
from fedcloud_core.config.site_bdii import SiteBdiiConfig, is_loopback_host
from fedcloud_core.errors import ConfigError, ExitCode

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST.",
        "localhost.localdomain",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "[::1]",
        "0.0.0.0",
        "ip6-localhost",
        "foo.localhost",
    ],
)
def test_loopback_names(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["bdii.example.org", "192.0.2.10", "2001:db8::1", "vm"])
def test_public_names(host: str) -> None:
    assert not is_loopback_host(host)


def test_published_host_default_is_fqdn() -> None:
    assert SiteBdiiConfig().published_host(lambda: "bdii.example.org") == "bdii.example.org"
    cfg = SiteBdiiConfig(public_hostname="site-bdii.example.net")
    assert cfg.published_host(lambda: "localhost") == "site-bdii.example.net"


def test_published_host_refuses_a_loopback_fqdn() -> None:
    with pytest.raises(ConfigError, match=r"site_bdii\.public_hostname"):
        SiteBdiiConfig().published_host(lambda: "localhost")


def _write(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "appliance.yaml"
    p.write_text(f"site:\n  name: TEST-SITE\npaths:\n  state_dir: {tmp_path / 's'}\n{extra}")
    return p


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "'::1'"])
def test_config_check_refuses_configured_loopback(tmp_path, capsys, host: str) -> None:
    p = _write(tmp_path, f"site_bdii:\n  public_hostname: {host}\n")
    assert cli.main(["config", "check", "--config", str(p)]) == ExitCode.CONFIG
    assert "site_bdii.public_hostname" in capsys.readouterr().err


def test_config_check_refuses_default_when_fqdn_is_localhost(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("socket.getfqdn", lambda *a: "localhost")
    assert cli.main(["config", "check", "--config", str(_write(tmp_path))]) == ExitCode.CONFIG
    assert "site_bdii.public_hostname" in capsys.readouterr().err
    p = _write(tmp_path, "site_bdii:\n  public_hostname: bdii.example.org\n")
    assert cli.main(["config", "check", "--config", str(p)]) == ExitCode.OK
