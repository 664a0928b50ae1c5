"""The rendered slapd.conf against the real parser: Debian's slaptest with the Debian GLUE 2.0 schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_core.bdii.slapd import SlapdSettings, hash_password, render_config
from fedcloud_core.external import run_tool

pytestmark = pytest.mark.contract


def test_slaptest_accepts_the_rendered_config(tmp_path: Path) -> None:
    s = SlapdSettings(role="contract", host="127.0.0.1", port=2170, data_dir=tmp_path)
    for name in ("glue", "grid", "infosys"):
        (tmp_path / "db" / name).mkdir(parents=True)
    (tmp_path / "run").mkdir()
    conf = tmp_path / "slapd.conf"
    conf.write_text(render_config(s, hash_password("x")))
    proc = run_tool(["/usr/sbin/slaptest", "-u", "-f", str(conf)], timeout=30)
    assert b"config file testing succeeded" in proc.stderr


def test_slaptest_rejects_a_broken_index(tmp_path: Path) -> None:
    from fedcloud_core.bdii.slapd import Database
    from fedcloud_core.errors import ToolError

    s = SlapdSettings(
        role="contract",
        host="127.0.0.1",
        port=2170,
        data_dir=tmp_path,
        databases=(Database("glue", "o=glue", ("GLUE2NoSuchAttribute eq",)),),
    )
    (tmp_path / "db" / "glue").mkdir(parents=True)
    conf = tmp_path / "slapd.conf"
    conf.write_text(render_config(s, hash_password("x")))
    with pytest.raises(ToolError, match="exit 1"):
        run_tool(["/usr/sbin/slaptest", "-u", "-f", str(conf)], timeout=30)


def test_resource_bdii_settings_pass_slaptest(tmp_path: Path) -> None:
    """bdii-update's own settings (with the project's GLUE 2.1 schema when it ships one)."""
    import yaml

    from fedcloud_cloudinfo import bdii_update
    from fedcloud_core.config import parse_config

    cfg = parse_config(
        yaml.safe_dump({"site": {"name": "S"}, "paths": {"state_dir": str(tmp_path)}}), environ={}
    )
    s = bdii_update.slapd_settings(cfg)
    assert s.port == 2170
    assert s.maxsize_mb == 1024
    assert s.data_dir == tmp_path / "bdii"
    for name in ("glue", "grid", "infosys"):
        (tmp_path / "bdii" / "db" / name).mkdir(parents=True)
    (tmp_path / "bdii" / "run").mkdir()
    conf = tmp_path / "slapd.conf"
    conf.write_text(render_config(s, hash_password("x")))
    assert all(str(p) in conf.read_text() for p in s.extra_schemas)
    run_tool(["/usr/sbin/slaptest", "-u", "-f", str(conf)], timeout=30)
