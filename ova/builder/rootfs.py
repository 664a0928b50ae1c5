"""The guest's root file system: mmdebstrap, then the cloud hygiene and the appliance files."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .build_tools import CHROOT, MMDEBSTRAP
from .settings import GUEST_PACKAGES, PRUNED_MODULE_TREES, Settings

log = logging.getLogger(__name__)

# units of ours that are enabled at build time; the bundle's units are enabled by firstboot
OWN_UNITS = ("fedcloud-appliance-firstboot.service", "fedcloud-appliance-swap.service")
FIRSTBOOT_LIB = Path("usr/lib/fedcloud-appliance")


def mmdebstrap_args(s: Settings, target: Path) -> list[str]:
    """Arguments of the one mmdebstrap call (pure: unit-tested)."""
    packages = [*GUEST_PACKAGES, *s.extra_packages]
    args = [
        "--variant=minbase",
        "--include=" + ",".join(packages),
        '--aptopt=Acquire::Retries "3"',
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    ]
    args += [
        f"--dpkgopt=path-exclude=/lib/modules/*/kernel/{tree}/*" for tree in PRUNED_MODULE_TREES
    ]
    args += [
        s.suite,
        str(target),
        f"deb {s.mirror} {s.suite} main",
        f"deb {s.mirror} {s.suite}-updates main",
        f"deb {s.security_mirror} {s.suite}-security main",
    ]
    return args


def bootstrap(s: Settings) -> Path:
    target = s.rootfs
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    MMDEBSTRAP.run(mmdebstrap_args(s, target), log_file=s.work_dir / "logs" / "mmdebstrap.log")
    return target


def kernel_version(root: Path) -> str:
    """The newest kernel installed in the rootfs (e.g. ``6.1.0-28-amd64``)."""
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise FileNotFoundError(
            f"no kernel in {root / 'boot'}: did mmdebstrap install linux-image?"
        )

    def key(v: str) -> list[object]:
        return [int(x) if x.isdigit() else x for x in v.replace("-", ".").split(".")]

    return max(kernels, key=key)


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def grub_cfg(uuid: str, kver: str) -> str:
    console = "console=tty0 console=ttyS0,115200n8"
    return (
        "# written by the appliance build; 'update-grub' in the VM regenerates it after kernel upgrades\n"
        "set default=0\nset timeout=1\n"
        "serial --speed=115200\nterminal_input console serial\nterminal_output console serial\n"
        "insmod part_msdos\ninsmod ext2\n"
        f"search --no-floppy --fs-uuid --set=root {uuid}\n"
        "menuentry 'Debian GNU/Linux (EGI FedCloud appliance)' {\n"
        f"  linux /boot/vmlinuz-{kver} root=UUID={uuid} ro {console}\n"
        f"  initrd /boot/initrd.img-{kver}\n"
        "}\n"
    )


def fstab(uuid: str) -> str:
    return (
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        f"UUID={uuid} / ext4 defaults,errors=remount-ro 0 1\n"
        "# /image_data: the image replication cache. Attach a volume (OpenStack: Cinder) and\n"
        "# uncomment, e.g. after 'mkfs.ext4 -L image_data /dev/vdb':\n"
        "#LABEL=image_data /image_data ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2\n"
        "# No swap is baked in: fedcloud-appliance-swap.service makes /swapfile on a VM with\n"
        "# little RAM at first boot (see docs/ova.md) and adds its line here.\n"
    )


CLOUD_CFG = """\
# EGI FedCloud appliance: cloud-init settings (the Debian default user 'debian' gets the keys).
# keep datasource_list on ONE line: ds-identify reads it with grep
datasource_list: [ NoCloud, ConfigDrive, OpenStack, VMware, OVF, None ]
ssh_pwauth: false
disable_root: true
locale: C.UTF-8
preserve_hostname: false
system_info:
  network:
    renderers: ['networkd']
"""

SSHD_CFG = """\
# EGI FedCloud appliance: keys only
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
"""

NETWORK_DHCP = """\
# any wired NIC gets DHCP (cloud-init writes its own, more specific, files when it knows the network)
[Match]
Name=en* eth*

[Network]
DHCP=yes
"""

SSH_HOSTKEYS_DROPIN = """\
[Service]
# the image ships without host keys: make them on the first start (cloud-init usually did already)
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""

DOCKER_DAEMON_JSON = """\
{
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "3" }
}
"""

DEFAULT_GRUB = """\
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
"""

LEGACY_README = """\
This appliance does not read {path} directly.

Its one configuration file is /etc/fedcloud-appliance/appliance.yaml
(annotated sample: /etc/fedcloud-appliance/appliance.sample.yaml).

If you have {what} from an older installation, copy the files here and convert them:

    docker run --rm -v {path}:{path}:ro --entrypoint fedcloud-appliance \\
        "$FEDCLOUD_APPLIANCE_IMAGE" config import-legacy {path}/{example}

(the image name is in /etc/fedcloud-appliance/image.env). Merge the printed YAML into
appliance.yaml, put secrets in files referenced with '<key>_file:', then run
'systemctl restart fedcloud-appliance-firstboot' to check the config and start the services.
"""

# path -> (what the old tool called it, an example file name)
LEGACY_PATHS: dict[str, tuple[str, str]] = {
    "/etc/caso": ("a cASO configuration (caso.conf, voms.json)", "caso.conf"),
    "/etc/apel": ("an APEL SSM sender configuration (sender.cfg)", "sender.cfg"),
    "/etc/sitebdii": ("a site BDII configuration (site.cfg)", "site.cfg"),
    "/etc/cloud-info-provider": (
        "cloud-info-provider files (openstack.rc, site.yaml)",
        "openstack.rc",
    ),
    "/etc/atrope": ("an atrope configuration (hepix.yaml)", "hepix.yaml"),
}


@dataclass(frozen=True)
class BundleFiles:
    """What the appliance bundle puts into the image (found in ova/rootfs and compose/)."""

    units: tuple[str, ...]
    cron_files: tuple[str, ...]
    compose_files: tuple[str, ...]


def install_overlay(overlay: Path, root: Path) -> list[str]:
    """Copy ``ova/rootfs`` into the rootfs (owner root; modes kept, cron.d forced to 0644)."""
    copied: list[str] = []
    if not overlay.is_dir():
        return copied
    for src in sorted(overlay.rglob("*")):
        rel = src.relative_to(overlay)
        if src.name in (".gitkeep", "__pycache__") or src.suffix == ".pyc":
            continue
        dst = root / rel
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        shutil.copyfile(src, dst)
        executable = bool(src.stat().st_mode & stat.S_IXUSR)
        mode = 0o755 if executable else 0o644
        if rel.parts[:2] == ("etc", "cron.d"):
            mode = 0o644  # cron ignores group/other-writable or executable files
        dst.chmod(mode)
        os.chown(dst, 0, 0) if os.geteuid() == 0 else None
        copied.append("/" + str(rel))
    return copied


def bundle_units(overlay: Path) -> tuple[str, ...]:
    unit_dir = overlay / "etc" / "systemd" / "system"
    if not unit_dir.is_dir():
        return ()
    names = [
        p.name for p in unit_dir.iterdir() if p.is_file() and p.suffix in (".service", ".timer")
    ]
    return tuple(sorted(n for n in names if n not in OWN_UNITS))


VM_COMPOSE_ENV = """\
# docker-compose variables of the appliance VM (see env.example beside this file for all).
# In the VM the BDII must answer on the VM's own addresses (the site's security group
# decides who may connect): publish the ports on every interface, not only 127.0.0.1.
FEDCLOUD_BIND=0.0.0.0
"""


def install_compose(compose_dir: Path, root: Path) -> tuple[str, ...]:
    """The compose file(s) and the generated sample config into /etc/fedcloud-appliance."""
    dest = root / "etc" / "fedcloud-appliance"
    dest.mkdir(parents=True, exist_ok=True)
    installed = []
    for name in ("docker-compose.yml", "compose.yml", "docker-compose.yaml"):
        src = compose_dir / name
        if src.is_file():
            shutil.copyfile(src, dest / name)
            installed.append(name)
    examples = {*compose_dir.glob("*env.example"), *compose_dir.glob("*.example.yml")}
    for src in sorted(examples):
        shutil.copyfile(src, dest / src.name)
        installed.append(src.name)
    env = dest / ".env"
    if not env.exists():
        env.write_text(VM_COMPOSE_ENV, encoding="utf-8")
        installed.append(".env")
    sample = compose_dir / "appliance.sample.yaml"
    if sample.is_file():
        shutil.copyfile(sample, dest / "appliance.sample.yaml")
        installed.append("appliance.sample.yaml")
    return tuple(installed)


def write_service_list(root: Path, units: tuple[str, ...]) -> None:
    """The bundle's units that firstboot enables once the config checks out.

    One line per unit: ``<unit> <requirement>...``; requirements are ``config`` (a valid
    appliance.yaml) and ``hostcert`` (/etc/grid-security/hostcert.pem + hostkey.pem).
    """
    lines = ["# <unit> <requirements: config, hostcert> (written by the OVA build)"]
    for unit in units:
        if not unit.endswith(".service"):
            continue
        needs = ["config"]
        if any(word in unit for word in ("ssm", "apel-send", "sender")):
            needs.append("hostcert")
        lines.append(" ".join([unit, *needs]))
    _write(root, str(FIRSTBOOT_LIB / "services"), "\n".join(lines) + "\n")


def customize(s: Settings, root: Path, uuid: str, appliance_image: str) -> BundleFiles:
    """Cloud hygiene, boot loader config, appliance files (no I/O outside ``root``)."""
    kver = kernel_version(root)
    # identity: mmdebstrap copies the build host's hostname; machine-id must be empty
    # (systemd-networkd derives the DHCP client id from it: clones would share a lease)
    _write(root, "etc/hostname", "localhost\n")
    _write(root, "etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    _write(root, "etc/machine-id", "", 0o444)
    for p in [root / "var/lib/dbus/machine-id", *(root / "etc/ssh").glob("ssh_host_*")]:
        if p.exists() or p.is_symlink():
            p.unlink()
    for rules in (
        "etc/udev/rules.d/70-persistent-net.rules",
        "etc/udev/rules.d/75-persistent-net-generator.rules",
    ):
        (root / rules).unlink(missing_ok=True)
    _write(root, "etc/ssh/sshd_config.d/50-fedcloud-appliance.conf", SSHD_CFG)
    _write(root, "etc/systemd/system/ssh.service.d/10-hostkeys.conf", SSH_HOSTKEYS_DROPIN)
    _write(root, "etc/cloud/cloud.cfg.d/90-fedcloud-appliance.cfg", CLOUD_CFG)
    _write(root, "etc/systemd/network/99-dhcp-any.network", NETWORK_DHCP)
    resolv = root / "etc/resolv.conf"
    if resolv.exists() or resolv.is_symlink():
        resolv.unlink()
    resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    _write(root, "etc/fstab", fstab(uuid))
    _write(root, "etc/docker/daemon.json", DOCKER_DAEMON_JSON)
    _write(root, "etc/default/grub", DEFAULT_GRUB)
    grub_mods = root / "boot/grub/i386-pc"
    if grub_mods.exists():
        shutil.rmtree(grub_mods)
    shutil.copytree("/usr/lib/grub/i386-pc", grub_mods)
    _write(root, "boot/grub/grub.cfg", grub_cfg(uuid, kver))
    # appliance layout
    for d in ("image_data", "etc/grid-security", "var/lib/fedcloud-appliance", "var/spool/apel"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/grid-security").chmod(0o755)
    for path, (what, example) in LEGACY_PATHS.items():
        _write(
            root,
            path.lstrip("/") + "/README",
            LEGACY_README.format(path=path, what=what, example=example),
        )
    _write(
        root,
        "etc/fedcloud-appliance/image.env",
        "# the container image that carries the fedcloud-appliance command (written by the OVA build)\n"
        f"FEDCLOUD_APPLIANCE_IMAGE={appliance_image}\n",
    )
    copied = install_overlay(s.overlay_dir, root)
    units = bundle_units(s.overlay_dir)
    write_service_list(root, units)
    compose = install_compose(s.compose_dir, root)
    # enable: networking, our units. The bundle's units are enabled by firstboot when configured.
    enable = ["systemd-networkd.service", "systemd-resolved.service"]
    enable += [u for u in OWN_UNITS if (root / "etc/systemd/system" / u).exists()]
    CHROOT.run([str(root), "systemctl", "enable", *enable])
    CHROOT.run([str(root), "systemctl", "mask", "systemd-networkd-wait-online.service"])
    if CHROOT.run([str(root), "getent", "group", "fedcloud"], check=False).returncode != 0:
        CHROOT.run([str(root), "groupadd", "--system", "--gid", str(s.container_gid), "fedcloud"])
    # leftovers of the build
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "tmp/*",
        "var/log/*.log",
        "var/log/apt/*",
    ):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    cron = tuple(c for c in copied if c.startswith("/etc/cron.d/"))
    log.info(
        "customized rootfs: kernel %s, %d bundle unit(s), %d cron file(s), compose: %s",
        kver,
        len(units),
        len(cron),
        ", ".join(compose) or "none",
    )
    return BundleFiles(units=units, cron_files=cron, compose_files=compose)
