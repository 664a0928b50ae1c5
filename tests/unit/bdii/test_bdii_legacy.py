"""Importers of the classic site BDII files (fixtures written for this project)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedcloud_core.config import parse_config
from fedcloud_core.errors import ConfigError
from fedcloud_core.predecessor_config import merge_fragments
from fedcloud_sitebdii.predecessor_config import (
    IMPORTERS,
    convert_site_cfg,
    convert_site_defaults,
    convert_site_urls,
)

pytestmark = pytest.mark.unit

FIX = Path(__file__).parent / "fixtures"


def test_site_cfg() -> None:
    frag = convert_site_cfg(FIX / "site.cfg")
    assert frag == {
        "site": {
            "name": "EXAMPLE-CLOUD",
            "description": "Example research cloud for the test suite",
            "url": "https://cloud.example.net",
            "city": "Utrecht",
            "country": "NL",
            "latitude": 52.09,
            "longitude": 5.12,
            "contacts": {
                "general": "cloud-ops@example.net",
                "security": "csirt@example.net",
                "usersupport": "helpdesk@example.net",
                "sysadmin": "cloud-ops@example.net",
            },
        }
    }


def test_defaults_and_urls_merge_into_a_valid_config() -> None:
    merged = merge_fragments(
        [
            convert_site_cfg(FIX / "site.cfg"),
            convert_site_defaults(FIX / "glite-info-site-defaults.conf"),
            convert_site_urls(FIX / "site-urls.conf"),
        ]
    )
    assert merged["site_bdii"] == {
        "public_hostname": "site-bdii.example.net",
        "resource_bdiis": [
            "ldap://cloud-bdii.example.net:2170",
            "ldap://se.example.net:2170/GLUE2GroupID=resource,o=glue",
        ],
    }
    cfg = parse_config(yaml.safe_dump(merged), environ={})
    assert cfg.site.contacts.security == "csirt@example.net"


def test_bad_number_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"broken-site.cfg:2: SITE_LAT must be a number"):
        convert_site_cfg(FIX / "broken-site.cfg")


def test_file_without_site_name_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "site.cfg"
    p.write_text("SITE_WEB = https://x.example\n")
    with pytest.raises(ConfigError, match="no SITE_NAME"):
        convert_site_cfg(p)


def test_importers_are_picked_by_file_name() -> None:
    names = {imp.name: imp for imp in IMPORTERS}
    assert names["site.cfg"].matches(FIX / "site.cfg")
    assert names["glite-info-site-defaults.conf"].matches(FIX / "glite-info-site-defaults.conf")
    assert not names["site.cfg"].matches(FIX / "site-urls.conf")


def test_provider_cli_prints_only_ldif_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedcloud_appliance.cli import main
    from fedcloud_core.ldif import Entry, parse, render

    snap = tmp_path / "cloud-info" / "snapshot.ldif"
    snap.parent.mkdir()
    svc = Entry("GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue").add("objectClass", "GLUE2Service")
    snap.write_text(render([Entry("o=glue").add("o", "glue"), svc]))
    cfg = tmp_path / "a.yaml"
    cfg.write_text(f"site: {{name: S}}\npaths: {{state_dir: {tmp_path}}}\n")
    assert main(["bdii-update", "--provider", "--config", str(cfg)]) == 0  # one run, no scheduler
    out, err = capsys.readouterr()
    assert [e.dn for e in parse(out)] == [svc.dn]
    assert "bdii-update: ok" in err
