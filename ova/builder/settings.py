"""Build settings: defaults, overridable by ``OVA_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Module trees a server VM never needs (generic kernel ~400 MB -> ~230 MB). The drivers the
# hypervisors need stay: virtio, e1000/e1000e, vmxnet3, ahci/ata_piix, mptspi, pvscsi, hv_*.
PRUNED_MODULE_TREES: tuple[str, ...] = (
    "sound",
    "drivers/media",
    "drivers/net/wireless",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
    "drivers/bluetooth",
    "drivers/infiniband",
    "drivers/staging",
    "drivers/iio",
    "drivers/isdn",
    "drivers/comedi",
    "drivers/gpu/drm/amd",
    "drivers/gpu/drm/radeon",
    "drivers/gpu/drm/nouveau",
    "drivers/gpu/drm/i915",
    "drivers/input/joystick",
    "drivers/input/touchscreen",
)

# Debian packages of the appliance VM (bookworm).
GUEST_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",  # generic kernel: e1000/ahci/mptspi for VirtualBox/VMware (cloud kernel lacks them)
    "systemd-sysv",
    "systemd-resolved",
    "dbus",
    "cloud-init",
    "cloud-guest-utils",  # growpart: the root partition grows to the flavor's disk
    "openssh-server",
    "sudo",
    "docker.io",
    "docker-compose",
    "apparmor",
    "ca-certificates",
    "cron",
    "iproute2",
    "netbase",
    "less",
    "procps",
    "grub-pc-bin",  # update-grub / grub-install inside the VM after kernel upgrades
    "grub2-common",
    "e2fsprogs",
    "ldap-utils",  # operators query the BDII from the VM
    "logrotate",
)


@dataclass(frozen=True)
class Settings:
    """Everything a build depends on; ``from_env`` reads ``OVA_<FIELD>`` overrides."""

    name: str = "fedcloud-appliance"
    version: str = "0.1.0"
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    security_mirror: str = "http://deb.debian.org/debian-security"
    disk_gb: int = 8
    cpus: int = 2
    memory_mb: int = 2048
    work_dir: Path = Path("/var/tmp/fedcloud-ova")  # noqa: S108 - big scratch space, not a temp file
    out_dir: Path = REPO_ROOT / "build" / "ova"
    compose_dir: Path = REPO_ROOT / "compose"
    overlay_dir: Path = REPO_ROOT / "ova" / "rootfs"
    templates_dir: Path = REPO_ROOT / "templates"
    # which local docker images (repository globs) belong to the appliance, beside those the
    # compose file names; the build base (fedcloud-base) is not one of them
    image_patterns: tuple[str, ...] = ("fedcloud-appliance", "fedcloud-bdii", "fedcloud/*")
    # the image that carries the fedcloud-appliance CLI (empty: guessed from the preloaded ones)
    appliance_image: str = ""
    docker_host: str = "unix:///var/run/docker.sock"
    # numeric group of the bundle's containers (compose: jobs 10001:10001, BDIIs 2170:10001):
    # the VM gets a group 'fedcloud' with this id so 0640 root:fedcloud config files are readable
    container_gid: int = 10001
    extra_packages: tuple[str, ...] = field(default=())

    @property
    def rootfs(self) -> Path:
        return self.work_dir / "rootfs"

    @property
    def raw_disk(self) -> Path:
        return self.work_dir / f"{self.name}.raw"

    @property
    def disk_bytes(self) -> int:
        return self.disk_gb * 1024**3

    @property
    def vmdk_name(self) -> str:
        return f"{self.name}-disk1.vmdk"

    @property
    def ova_path(self) -> Path:
        return self.out_dir / f"{self.name}.ova"

    @property
    def qcow2_path(self) -> Path:
        return self.out_dir / f"{self.name}.qcow2"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        kw: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"OVA_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls, f.name, None)
            if isinstance(default, bool):
                kw[f.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                try:
                    kw[f.name] = int(raw)
                except ValueError:
                    raise ValueError(f"OVA_{f.name.upper()}: not an integer: {raw!r}") from None
            elif isinstance(default, Path):
                kw[f.name] = Path(raw)
            elif f.name in ("image_patterns", "extra_packages"):
                kw[f.name] = tuple(p for p in raw.replace(",", " ").split() if p)
            else:
                kw[f.name] = raw
        return cls(**kw)  # type: ignore[arg-type]
