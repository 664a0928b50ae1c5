"""``imagelist sign`` and ``config import-legacy`` through the umbrella CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedcloud_appliance.cli import main
from fedcloud_core import smime
from fedcloud_core.config import parse_config

pytestmark = pytest.mark.contract

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("mode", ["detached", "opaque", "cms"])
def test_imagelist_sign_builds_and_signs(cpki: Any, tmp_path: Path, mode: str, capsys: Any) -> None:
    disk = tmp_path / "tiny.img"
    disk.write_bytes(b"tiny disk" * 1000)
    desc = {
        "title": "Demo",
        "vo": "demo.example.org",
        "base_url": "http://127.0.0.1:8000/",
        "version": "20260301000000",
        "images": [
            {
                "identifier": "tiny-1",
                "title": "Tiny",
                "file": "tiny.img",
                "format": "RAW",
                "extra": {"sl:osname": "Cirros"},
            }
        ],
    }
    (tmp_path / "list.yaml").write_text(yaml.safe_dump(desc))
    out = tmp_path / "image.list"
    argv = [
        "imagelist",
        "sign",
        str(tmp_path / "list.yaml"),
        "--cert",
        str(cpki.endorser.cert),
        "--key",
        str(cpki.endorser.key),
        "--output",
        str(out),
    ]
    argv += {"detached": [], "opaque": ["--opaque"], "cms": ["--cms"]}[mode]
    assert main(argv) == 0
    signed = out.read_bytes()
    assert (b"multipart/signed" in signed[:300]) is (mode != "opaque")
    v = smime.verify(signed, capath=cpki.capath)
    doc = json.loads(v.content)["hv:imagelist"]
    assert doc["hv:version"] == "20260301000000"
    assert doc["hv:endorser"]["hv:x509"]["hv:dn"] == cpki.endorser.dn
    assert doc["hv:endorser"]["hv:x509"]["hv:ca"] == cpki.endorser_ca
    img = doc["hv:images"][0]["hv:image"]
    assert img["hv:size"] == 9000
    assert img["sl:checksum:sha512"] == hashlib.sha512(disk.read_bytes()).hexdigest()
    assert img["hv:uri"] == "http://127.0.0.1:8000/tiny.img"
    assert img["sl:osname"] == "Cirros"


def test_imagelist_sign_names_a_missing_file(cpki: Any, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "l.yaml").write_text(
        yaml.safe_dump({"images": [{"identifier": "x", "file": "nope.img"}]})
    )
    rc = main(
        [
            "imagelist",
            "sign",
            str(tmp_path / "l.yaml"),
            "--cert",
            str(cpki.endorser.cert),
            "--key",
            str(cpki.endorser.key),
            "-o",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2
    assert "images[0]: file" in capsys.readouterr().err


def _import(tmp_path: Path, *files: str) -> dict[str, Any]:
    out = tmp_path / "imported.yaml"
    assert (
        main(["config", "import-legacy", *(str(FIXTURES / f) for f in files), "-o", str(out)]) == 0
    )
    text = out.read_text()
    assert "s3cr3t" not in text
    assert "TOKEN123" not in text
    return {"text": text, "doc": yaml.safe_load(text)}


def test_import_atrope_hepix_yaml(tmp_path: Path) -> None:
    got = _import(tmp_path, "hepix.yaml")
    subs = {s["name"]: s for s in got["doc"]["images"]["subscriptions"]}
    assert set(subs) == {"tiny-linux", "vo.fedcloud.egi.eu", "paused"}
    assert subs["vo.fedcloud.egi.eu"]["vo"] == "fedcloud.egi.eu"
    assert (
        subs["vo.fedcloud.egi.eu"]["url"]
        == "https://vmcaster.appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list"
    )
    assert subs["vo.fedcloud.egi.eu"]["images"] == ["img-1"]
    assert subs["tiny-linux"]["endorser_ca"] == "/DC=ORG/DC=SEE-GRID/CN=SEE-GRID CA 2013"
    assert subs["paused"]["enabled"] is False
    assert got["doc"]["vos"] == {
        "fedcloud.egi.eu": {"projects": ["0123456789abcdef0123456789abcdef"]}
    }
    assert "token_file" in got["text"]  # a note, not the token
    # with the site added and every VO mapped, the result is a valid appliance config
    doc = dict(got["doc"], site={"name": "X"})
    doc["vos"] = {**doc["vos"], "tiny-linux": {"projects": ["p1"]}, "paused": {"projects": ["p2"]}}
    cfg = parse_config(yaml.safe_dump(doc), environ={})
    assert len(cfg.images.subscriptions) == 3


def test_import_atrope_sources_yaml_with_registry(tmp_path: Path) -> None:
    doc = _import(tmp_path, "sources.yaml")["doc"]
    assert [s["name"] for s in doc["images"]["subscriptions"]] == ["appdb-ops"]
    (reg,) = doc["images"]["registries"]
    assert (reg["url"], reg["project"], reg["vo"]) == (
        "https://registry.egi.eu",
        "egi_vm_images",
        "ops",
    )


def test_import_cloudkeeper_image_lists(tmp_path: Path) -> None:
    got = _import(tmp_path, "image-lists.conf")
    subs = got["doc"]["images"]["subscriptions"]
    assert [(s["name"], s["url"]) for s in subs] == [
        ("fedcloud.egi.eu", "https://vmcaster.appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list"),
        ("ops", "https://vmcaster.appdb.egi.eu/store/vo/ops/image.list"),
    ]
    assert "token_file" in got["text"]
