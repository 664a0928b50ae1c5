"""Logic of the OVA builder: settings, mmdebstrap arguments, image selection, boot sectors, manifest."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest
import yaml

from ova.builder import disk, images, package, rootfs
from ova.builder.settings import Settings
from ova.builder.userdata import appliance_files, firstboot_selection, render_user_data

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_settings_from_env_overrides_and_rejects_bad_numbers(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "OVA_DISK_GB": "12",
            "OVA_WORK_DIR": str(tmp_path),
            "OVA_IMAGE_PATTERNS": "a/*, b*",
            "OVA_APPLIANCE_IMAGE": "x:1",
        }
    )
    assert (s.disk_gb, s.work_dir, s.image_patterns, s.appliance_image) == (
        12,
        tmp_path,
        ("a/*", "b*"),
        "x:1",
    )
    assert s.disk_bytes == 12 * 1024**3
    with pytest.raises(ValueError, match="OVA_CPUS"):
        Settings.from_env({"OVA_CPUS": "two"})


def test_mmdebstrap_args_have_kernel_cloud_init_docker_and_prune_modules(tmp_path: Path) -> None:
    args = rootfs.mmdebstrap_args(Settings(extra_packages=("htop",)), tmp_path / "r")
    include = (
        next(a for a in args if a.startswith("--include=")).removeprefix("--include=").split(",")
    )
    for pkg in (
        "linux-image-amd64",
        "cloud-init",
        "openssh-server",
        "docker.io",
        "docker-compose",
        "htop",
    ):
        assert pkg in include
    assert "--variant=minbase" in args
    assert "--dpkgopt=path-exclude=/lib/modules/*/kernel/sound/*" in args
    assert not any("drivers/net/ethernet" in a for a in args)  # e1000/vmxnet3 stay
    assert args[-5:-3] == ["bookworm", str(tmp_path / "r")]
    assert args[-1].endswith("bookworm-security main")


def test_compose_images_of_the_bundle_resolve_variable_defaults() -> None:
    refs = images.compose_images(ROOT / "compose" / "docker-compose.yml")
    assert "fedcloud-appliance:latest" in refs
    assert "fedcloud-bdii:latest" in refs
    assert not any("$" in r for r in refs)


def test_compose_images_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert images.compose_images(tmp_path / "nope.yml") == []


def test_select_images_prefers_compose_names_reports_missing_and_skips_base() -> None:
    local = [
        "fedcloud-appliance:latest",
        "fedcloud-appliance:0.1.0",
        "fedcloud-base:bookworm",
        "<none>:<none>",
        "debian:bookworm",
        "fedcloud/extra:1",
    ]
    sel = images.select_images(
        local, ["fedcloud-appliance", "fedcloud-bdii:latest"], Settings().image_patterns
    )
    assert sel.preload[0] == "fedcloud-appliance:latest"
    assert set(sel.preload) == {
        "fedcloud-appliance:latest",
        "fedcloud-appliance:0.1.0",
        "fedcloud/extra:1",
    }
    assert sel.missing == ["fedcloud-bdii:latest"]


@pytest.mark.parametrize(
    ("preloaded", "explicit", "expected"),
    [
        (["fedcloud-bdii:latest", "fedcloud-appliance:latest"], "", "fedcloud-appliance:latest"),
        (["fedcloud-bdii:latest", "site/jobs:2"], "", "site/jobs:2"),
        ([], "", "fedcloud-appliance:latest"),
        (["fedcloud-appliance:latest"], "mine:1", "mine:1"),
    ],
)
def test_guess_appliance_image(preloaded: list[str], explicit: str, expected: str) -> None:
    assert images.guess_appliance_image(preloaded, explicit) == expected


def test_fstab_and_grub_find_root_by_uuid_and_document_image_data() -> None:
    uuid = "0d6c4a3e-1111-2222-3333-444455556666"
    fstab = rootfs.fstab(uuid)
    assert f"UUID={uuid} / ext4" in fstab
    assert "#LABEL=image_data /image_data" in fstab
    assert "swap" not in [
        line.split()[2] for line in fstab.splitlines() if line and not line.startswith("#")
    ]
    cfg = rootfs.grub_cfg(uuid, "6.1.0-28-amd64")
    assert f"search --no-floppy --fs-uuid --set=root {uuid}" in cfg
    assert f"root=UUID={uuid} ro" in cfg
    assert "/boot/vmlinuz-6.1.0-28-amd64" in cfg
    assert "console=ttyS0" in cfg


def test_kernel_version_picks_the_newest(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    for v in ("6.1.0-9-amd64", "6.1.0-28-amd64", "6.1.0-10-amd64"):
        (tmp_path / "boot" / f"vmlinuz-{v}").touch()
    assert rootfs.kernel_version(tmp_path) == "6.1.0-28-amd64"
    with pytest.raises(FileNotFoundError, match="no kernel"):
        rootfs.kernel_version(tmp_path / "empty")


def test_cloud_cfg_keeps_datasources_on_one_line_and_no_passwords() -> None:
    cfg = yaml.safe_load(rootfs.CLOUD_CFG)
    assert cfg["datasource_list"][:3] == ["NoCloud", "ConfigDrive", "OpenStack"]
    assert cfg["datasource_list"][-1] == "None"
    assert next(
        ln for ln in rootfs.CLOUD_CFG.splitlines() if ln.startswith("datasource_list")
    ).endswith("]")
    assert cfg["ssh_pwauth"] is False
    assert cfg["locale"] == "C.UTF-8"
    assert "PasswordAuthentication no" in rootfs.SSHD_CFG


def test_install_overlay_keeps_exec_bits_and_forces_cron_0644(tmp_path: Path) -> None:
    overlay, root = tmp_path / "overlay", tmp_path / "root"
    (overlay / "etc/cron.d").mkdir(parents=True)
    (overlay / "usr/local/bin").mkdir(parents=True)
    (overlay / "etc/cron.d/fedcloud").write_text("0 * * * * root true\n")
    (overlay / "etc/cron.d/fedcloud").chmod(0o775)
    (overlay / "usr/local/bin/tool").write_text("#!/bin/sh\n")
    (overlay / "usr/local/bin/tool").chmod(0o755)
    (overlay / "usr/local/bin/.gitkeep").touch()
    copied = rootfs.install_overlay(overlay, root)
    assert sorted(copied) == ["/etc/cron.d/fedcloud", "/usr/local/bin/tool"]
    assert stat.S_IMODE((root / "etc/cron.d/fedcloud").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "usr/local/bin/tool").stat().st_mode) == 0o755


def test_bundle_units_and_service_list(tmp_path: Path) -> None:
    units = tmp_path / "overlay/etc/systemd/system"
    units.mkdir(parents=True)
    for name in (
        "bdii.service",
        "ssm-send.service",
        "images.timer",
        "fedcloud-appliance-firstboot.service",
    ):
        (units / name).write_text("[Unit]\n")
    found = rootfs.bundle_units(tmp_path / "overlay")
    assert found == ("bdii.service", "images.timer", "ssm-send.service")
    rootfs.write_service_list(tmp_path / "root", found)
    lines = (tmp_path / "root" / rootfs.FIRSTBOOT_LIB / "services").read_text().splitlines()
    assert "bdii.service config" in lines
    assert "ssm-send.service config hostcert" in lines
    assert not any(line.startswith("images.timer") for line in lines)


def test_boot_sectors_keep_the_partition_table(tmp_path: Path) -> None:
    raw = tmp_path / "d.raw"
    table = bytes(range(256)) * 2
    raw.write_bytes(table + bytes(4 * 1024 * 1024))
    disk.write_boot_sectors(raw, b"\xeb" * 512, b"\x01" * 4096)
    data = raw.read_bytes()
    assert data[:440] == b"\xeb" * 440
    assert data[440:512] == table[440:512]  # disk signature + partition table untouched
    assert data[512 : 512 + 4096] == b"\x01" * 4096
    with pytest.raises(ValueError, match="does not fit"):
        disk.write_boot_sectors(raw, b"\0" * 512, b"\0" * (2047 * 512 + 1))
    assert disk.sfdisk_script().startswith("label: dos\nstart=2048")
    assert disk.partition_kib(8 * 1024**3) == (8 * 1024**3 - 1024 * 1024) // 1024


def test_manifest_format_and_parse(tmp_path: Path) -> None:
    a, b = tmp_path / "x.ovf", tmp_path / "x-disk1.vmdk"
    a.write_text("<Envelope/>")
    b.write_bytes(b"\0" * 10)
    text = package.manifest_text([a, b])
    lines = text.splitlines()
    assert lines[0].startswith("SHA256(x.ovf)= ")
    assert len(lines[0]) == len("SHA256(x.ovf)= ") + 64
    assert " (" not in text
    assert " =" not in text
    assert package.parse_manifest(text) == {
        "x.ovf": package.sha256_file(a),
        "x-disk1.vmdk": package.sha256_file(b),
    }
    with pytest.raises(ValueError, match="line 1"):
        package.parse_manifest("SHA256 (x.ovf) = " + "0" * 64)
    with pytest.raises(ValueError, match="not hex"):
        package.parse_manifest("SHA256(x.ovf)= " + "z" * 64)


def test_write_ova_is_ustar_in_the_given_order(tmp_path: Path) -> None:
    files = []
    for name in ("a.ovf", "a.mf", "a-disk1.vmdk"):
        p = tmp_path / name
        p.write_bytes(name.encode())
        files.append(p)
    ova = tmp_path / "a.ova"
    package.write_ova(ova, files)
    raw = ova.read_bytes()
    assert raw[257:263] == b"ustar\x00"
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.ovf", "a.mf", "a-disk1.vmdk"]
    assert all(m.uid == 0 and m.gid == 0 and m.isfile() for m in members)


def test_user_data_carries_config_and_certificate_verbatim() -> None:
    config = 'site:\n  name: "X: y"\n  description: "quotes \' and {{ braces }} and #"\n'
    files = appliance_files(
        config, "-----BEGIN CERTIFICATE-----\nAAA\n", "-----BEGIN PRIVATE KEY-----\nBBB\n"
    )
    text = render_user_data(hostname="bdii", ssh_keys=["ssh-ed25519 AAAA test\n"], files=files)
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data["ssh_authorized_keys"] == ["ssh-ed25519 AAAA test"]
    by_path = {f["path"]: f for f in data["write_files"]}
    assert by_path["/etc/fedcloud-appliance/appliance.yaml"]["content"] == config
    assert by_path["/etc/fedcloud-appliance/appliance.yaml"]["owner"] == "root:fedcloud"
    assert by_path["/etc/grid-security/hostkey.pem"]["permissions"] == "0600"
    assert by_path["/etc/grid-security/hostcert.pem"]["content"].startswith(
        "-----BEGIN CERTIFICATE"
    )


def test_user_data_refuses_half_a_certificate_and_no_key() -> None:
    with pytest.raises(ValueError, match="both"):
        appliance_files("site: {}\n", "-----BEGIN CERTIFICATE-----\n", None)
    with pytest.raises(ValueError, match="not PEM"):
        appliance_files("site: {}\n", "hello", "-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="SSH public key"):
        render_user_data(hostname="x", ssh_keys=[], files=[])


def test_install_compose_brings_the_bundle_files_and_publishes_ports_in_the_vm(
    tmp_path: Path,
) -> None:
    compose, root = tmp_path / "compose", tmp_path / "root"
    compose.mkdir()
    for name in (
        "docker-compose.yml",
        "env.example",
        "docker-compose.override.example.yml",
        "appliance.sample.yaml",
        "docker-compose.override.yml",
    ):
        (compose / name).write_text(name)
    installed = rootfs.install_compose(compose, root)
    assert set(installed) == {
        "docker-compose.yml",
        "env.example",
        "docker-compose.override.example.yml",
        ".env",
        "appliance.sample.yaml",
    }
    dest = root / "etc/fedcloud-appliance"
    assert not (dest / "docker-compose.override.yml").exists()  # a site's own override never ships
    assert "FEDCLOUD_BIND=0.0.0.0" in (dest / ".env").read_text().splitlines()


def test_v2v_summary_keeps_what_the_importer_understood() -> None:
    from ova.builder.validate import v2v_summary

    out = (
        "[   0.0] Setting up the source: -i ova x.ova\n"
        "    source name: fedcloud-appliance\nhypervisor type: \n"
        "         memory: 2147483648 (bytes)\n       nr vCPUs: 2\n       firmware: bios\n"
        'disks:\n\t0 [ide]\nremovable media:\n\nNICs:\n\tBridge "VM Network" [e1000]\n'
    )
    assert v2v_summary(out) == (
        "source name: fedcloud-appliance; memory: 2147483648 (bytes); nr vCPUs: 2; firmware: bios; "
        'disks: 0 [ide]; NICs: Bridge "VM Network" [e1000]'
    )


def test_firstboot_selection_renders_into_user_data_and_rejects_bad_names() -> None:
    f = firstboot_selection(["bdii.service", "fedcloud-status-web.service"])
    assert f.path == "/etc/fedcloud-appliance/firstboot.env"
    assert 'FEDCLOUD_SERVICES="bdii.service fedcloud-status-web.service"\n' in f.content
    doc = yaml.safe_load(render_user_data(hostname="h", ssh_keys=["ssh-ed25519 AAAA k"], files=[f]))
    assert doc["write_files"][0]["content"] == f.content
    for bad in ([], ["bdii"], ["bdii.service; rm -rf /.service"]):
        with pytest.raises(ValueError, match="firstboot selection"):
            firstboot_selection(bad)
