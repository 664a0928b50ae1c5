"""caso.conf and voms.json importers (fixtures in legacy/, written for these tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedcloud_accounting.predecessor_config import IMPORTERS, convert_caso_conf, convert_voms_json
from fedcloud_appliance.cli import main
from fedcloud_core.errors import ConfigError

pytestmark = pytest.mark.unit
HERE = Path(__file__).parent / "legacy"


def test_voms_json_maps_vos_to_projects_and_accepts_tenants():
    assert convert_voms_json(HERE / "voms.json") == {
        "vos": {
            "ops": {"projects": ["0a1b2c3d4e5f60718293a4b5c6d7e8f9"]},
            "vo.access.egi.eu": {"projects": ["research-lab"]},
        }
    }


def test_caso_conf_site_queue_mapping_and_no_secrets():
    frag = convert_caso_conf(HERE / "caso.conf")
    assert frag["site"] == {
        "name": "EXAMPLE-CLOUD",
        "service_name": "https://keystone.cloud.example.org:5000/v3",
    }
    assert frag["accounting"] == {
        "outgoing_dir": "/var/spool/apel/outgoing",
        "queues": {"cloud": "openstack"},
        "records_per_message": 250,
    }
    assert set(frag["vos"]) == {"ops", "vo.access.egi.eu"}
    assert frag["x-unmapped-projects"] == ["99999999999999999999999999999999"]
    entry = frag["x-clouds-yaml"]["clouds"]["fedcloud"]
    assert entry["auth"]["username"] == "accounting"
    assert "password" not in entry["auth"]
    assert entry["x-secrets-not-copied"] == ["password"]
    assert "s3cr3t" not in repr(frag)


def test_import_legacy_cli_output_validates_and_holds_no_secret(tmp_path, capsys):
    out = tmp_path / "imported.yaml"
    assert main(["config", "import-legacy", str(HERE / "caso.conf"), "-o", str(out)]) == 0
    text = out.read_text()
    assert "s3cr3t" not in text
    doc = yaml.safe_load(text)
    assert doc["site"]["name"] == "EXAMPLE-CLOUD"
    assert doc["accounting"]["queues"]["cloud"] == "openstack"
    assert "x-unmapped-projects" in text  # shown to the operator as a comment


def test_importers_are_registered_and_recognise_their_files():
    names = {i.name: i for i in IMPORTERS}
    assert names["caso.conf"].matches(HERE / "caso.conf")
    assert names["voms.json"].matches(HERE / "voms.json")
    assert not names["voms.json"].matches(HERE / "caso.conf")


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "voms.json"
    bad.write_text('{"ops": {"projects": "x", "oops": 1}, "bad": ["p"]}')
    with pytest.raises(ConfigError, match="bad"):
        convert_voms_json(bad)
    conf = tmp_path / "caso.conf"
    conf.write_text("[DEFAULT]\nsite_name = X\n[ssm]\nmax_size = many\n")
    with pytest.raises(ConfigError, match="max_size"):
        convert_caso_conf(conf)
