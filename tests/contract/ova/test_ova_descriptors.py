"""The OVF descriptor, the TOSCA template and the guest files, checked with real parsers."""

from __future__ import annotations

import configparser
import logging
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from toscaparser.common.exception import ValidationError
from toscaparser.functions import Concat
from toscaparser.tosca_template import ToscaTemplate

from ova.builder.package import OvfParams, render_ovf
from ova.builder.validate import ovf_problems

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "templates"
TOSCA = ROOT / "ova" / "tosca" / "fedcloud-appliance.yaml"
UNITS = ROOT / "ova" / "rootfs" / "etc" / "systemd" / "system"

PARAMS = OvfParams(
    name="fedcloud-appliance",
    version="1.2.3",
    disk_file="fedcloud-appliance-disk1.vmdk",
    disk_file_size=400_000_000,
    capacity=8 * 1024**3,
    populated_size=1_300_000_000,
    cpus=2,
    memory_mb=2048,
)


@pytest.fixture(scope="module")
def ovf() -> str:
    return render_ovf(PARAMS, TEMPLATES)


def test_rendered_ovf_is_structurally_valid(ovf: str) -> None:
    assert ovf_problems(ovf, {PARAMS.disk_file: PARAMS.disk_file_size}) == []
    assert f'ovf:capacity="{8 * 1024**3}"' in ovf
    assert 'ovf:populatedSize="1300000000"' in ovf
    assert "<rasd:VirtualQuantity>2048</rasd:VirtualQuantity>" in ovf


def test_rendered_ovf_is_well_formed_for_xmllint(ovf: str, tmp_path: Path) -> None:
    f = tmp_path / "a.ovf"
    f.write_text(ovf, encoding="utf-8")
    proc = subprocess.run(
        ["xmllint", "--noout", str(f)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_ovf_values_are_xml_escaped() -> None:
    text = render_ovf(replace(PARAMS, product='A & B <"appliance">'), TEMPLATES)
    assert ovf_problems(text) == []
    assert "A &amp; B &lt;&#34;appliance&#34;&gt;" in text


def test_ovf_template_refuses_a_missing_value() -> None:
    """The builder's own environment (the one render_ovf uses) refuses a missing value."""
    from jinja2 import UndefinedError

    from ova.builder.package import OVF_TEMPLATE, template_environment

    env = template_environment(TEMPLATES)
    with pytest.raises(UndefinedError):
        env.get_template(OVF_TEMPLATE).render(name="x")


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda t: re.sub(r"<DiskSection>.*</DiskSection>", "", t, flags=re.S),
            "DiskSection is missing",
        ),
        (
            lambda t: t.replace('ovf:size="400000000"', 'ovf:size="1"'),
            "ovf:size 1 but the file has",
        ),
        (
            lambda t: t.replace(
                'ovf:populatedSize="1300000000"', 'ovf:populatedSize="99999999999"'
            ),
            "populatedSize larger than capacity",
        ),
        (
            lambda t: t.replace(
                "<rasd:ResourceType>10</rasd:ResourceType>",
                "<rasd:ResourceType>1</rasd:ResourceType>",
            ),
            "no network adapter",
        ),
        (
            lambda t: t.replace(
                "<rasd:ResourceType>5</rasd:ResourceType>",
                "<rasd:ResourceType>1</rasd:ResourceType>",
            ),
            "no disk controller",
        ),
        (lambda t: t.replace("ovf:/disk/vmdisk1", "ovf:/disk/other"), "names no Disk"),
        (
            lambda t: re.sub(
                r"<OperatingSystemSection.*?</OperatingSystemSection>", "", t, flags=re.S
            ),
            "no OperatingSystemSection",
        ),
        (lambda t: t.replace("#streamOptimized", "#monolithicSparse"), "streamOptimized"),
        (
            lambda t: t.replace(
                "<References>", "<References><File ovf:id='x' ovf:href='a/b' ovf:size='1'/>"
            ),
            "plain name",
        ),
        (lambda t: t[:-20], "not well-formed"),
    ],
)
def test_ovf_checker_catches_broken_descriptors(ovf: str, mutate, problem: str) -> None:  # type: ignore[no-untyped-def]
    problems = ovf_problems(mutate(ovf), {PARAMS.disk_file: PARAMS.disk_file_size})
    assert any(problem in p for p in problems), problems


def _tosca(**inputs: str) -> ToscaTemplate:
    logging.getLogger("tosca").setLevel(logging.ERROR)
    return ToscaTemplate(str(TOSCA), parsed_params=inputs)


def test_tosca_template_parses_with_tosca_parser() -> None:
    t = _tosca(image="ost://keystone.example.org/0a1b", appliance_config="site:\n  name: X\n")
    assert {i.name for i in t.inputs} >= {
        "num_cpus",
        "mem_size",
        "image",
        "appliance_config",
        "host_certificate",
        "host_key",
    }
    assert next(o.name for o in t.outputs) == "bdii_url"
    (node,) = t.nodetemplates
    assert node.is_derived_from("tosca.nodes.Compute")
    host = node.get_capability("host")
    assert (
        host.get_property_value("num_cpus") == {"get_input": "num_cpus"}
        or host.get_property_value("num_cpus") == 2
    )
    (create,) = [op for op in node.interfaces if op.name == "create"]
    assert isinstance(create.inputs["user_data"], Concat)
    raw = yaml.safe_load(TOSCA.read_text(encoding="utf-8"))["topology_template"]
    parts = raw["node_templates"]["fedcloud_appliance"]["interfaces"]["Standard"]["create"][
        "inputs"
    ]["user_data"]["concat"]
    assert parts[0] == "#!/bin/sh\n"
    assert {"get_input": "appliance_config"} in parts
    assert {"get_input": "host_key"} in parts
    assert "2170" in str(t.tpl["topology_template"]["outputs"]["bdii_url"])


def test_tosca_template_requires_image_and_config_and_checks_sizes() -> None:
    t = _tosca(image="ost://x/y", appliance_config="site: {}\n")
    required = {i.name for i in t.inputs if i.default is None}
    assert required == {"image", "appliance_config"}
    by_name = {i.name: i for i in t.inputs}
    assert [type(c).__name__ for c in by_name["num_cpus"].constraints] == ["GreaterOrEqual"]
    assert [type(c).__name__ for c in by_name["mem_size"].constraints] == ["GreaterOrEqual"]
    assert by_name["mem_size"].type == "scalar-unit.size"


def test_tosca_template_with_an_unknown_input_fails() -> None:
    text = TOSCA.read_text(encoding="utf-8").replace(
        "{ get_input: dns_name }", "{ get_input: no_such_input }"
    )
    with pytest.raises(ValidationError, match="no_such_input"):
        ToscaTemplate(
            yaml_dict_tpl=yaml.safe_load(text),
            parsed_params={"image": "x", "appliance_config": "y"},
        )


def test_tosca_user_data_writes_the_files_the_appliance_reads() -> None:
    text = TOSCA.read_text(encoding="utf-8")
    for path in (
        "/etc/fedcloud-appliance/appliance.yaml",
        "/etc/grid-security/hostcert.pem",
        "/etc/grid-security/hostkey.pem",
    ):
        assert path in text


def test_guest_scripts_are_valid_sh() -> None:
    lib = ROOT / "ova" / "rootfs" / "usr" / "lib" / "fedcloud-appliance"
    scripts = [
        lib / "firstboot",
        lib / "swap-setup",
        ROOT / "ova" / "rootfs" / "etc" / "update-motd.d" / "60-fedcloud-appliance",
    ]
    for script in scripts:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
        proc = subprocess.run(
            ["sh", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
        )
        assert proc.returncode == 0, f"{script}: {proc.stderr}"


@pytest.mark.parametrize(
    "unit", ["fedcloud-appliance-firstboot.service", "fedcloud-appliance-swap.service"]
)
def test_own_units_are_well_formed(unit: str) -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / unit)
    assert cp["Service"]["Type"] == "oneshot"
    exec_start = cp["Service"]["ExecStart"]
    assert (ROOT / "ova" / "rootfs" / exec_start.lstrip("/")).exists(), exec_start
    assert "multi-user.target" in cp["Install"]["WantedBy"]
    assert cp["Unit"]["Description"]


def test_firstboot_runs_after_cloud_init_without_an_ordering_cycle() -> None:
    # cloud-final.service is After=multi-user.target on Debian: a unit wanted by
    # multi-user.target and ordered after cloud-final must not get the target's implicit After
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read(UNITS / "fedcloud-appliance-firstboot.service")
    assert "cloud-final.service" in cp["Unit"]["After"].split()
    assert cp["Unit"]["DefaultDependencies"] == "no"
    assert "shutdown.target" in cp["Unit"]["Conflicts"]
