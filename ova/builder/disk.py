"""The raw disk: MBR + one ext4 partition filled from the rootfs + GRUB for BIOS; no loop, no mount."""

from __future__ import annotations

import logging
from pathlib import Path

from .build_tools import E2FSCK, GRUB_MKIMAGE, MKFS_EXT4, SFDISK

log = logging.getLogger(__name__)

SECTOR = 512
PART_START_SECTOR = 2048  # 1 MiB: room for GRUB's core image between the MBR and the partition
PART_OFFSET = PART_START_SECTOR * SECTOR
GRUB_DIR = Path("/usr/lib/grub/i386-pc")
# modules of the core image: enough to find the root file system by UUID and read grub.cfg
CORE_MODULES = (
    "biosdisk",
    "part_msdos",
    "ext2",
    "search",
    "search_fs_uuid",
    "normal",
    "configfile",
)


def sfdisk_script() -> str:
    return f"label: dos\nstart={PART_START_SECTOR}, type=83, bootable\n"


def early_config(uuid: str) -> str:
    """Embedded in core.img: find the root file system by UUID, then load its grub.cfg."""
    return f"search --no-floppy --fs-uuid --set=root {uuid}\nset prefix=($root)/boot/grub\n"


def partition_kib(disk_bytes: int) -> int:
    return (disk_bytes - PART_OFFSET) // 1024


def assemble(raw: Path, rootfs: Path, uuid: str, disk_bytes: int, work: Path) -> None:
    if disk_bytes % (1024 * 1024):
        raise ValueError("the disk size must be a whole number of MiB")
    raw.unlink(missing_ok=True)
    with raw.open("wb") as fh:  # sparse file
        fh.truncate(disk_bytes)
    SFDISK.run(["-q", str(raw)], input=sfdisk_script().encode())
    MKFS_EXT4.run(
        [
            "-q",
            "-F",
            "-L",
            "root",
            "-U",
            uuid,
            "-E",
            f"offset={PART_OFFSET}",
            "-d",
            str(rootfs),
            str(raw),
            f"{partition_kib(disk_bytes)}k",
        ],
        log_file=work / "logs" / "mkfs.log",
    )
    early = work / "grub-early.cfg"
    early.write_text(early_config(uuid), encoding="utf-8")
    core = work / "core.img"
    GRUB_MKIMAGE.run(
        [
            "-O",
            "i386-pc",
            "-o",
            str(core),
            "-c",
            str(early),
            "-p",
            "(hd0,msdos1)/boot/grub",
            *CORE_MODULES,
        ]
    )
    write_boot_sectors(raw, (GRUB_DIR / "boot.img").read_bytes(), core.read_bytes())
    E2FSCK.run(["-fn", f"{raw}?offset={PART_OFFSET}"], log_file=work / "logs" / "e2fsck.log")


def write_boot_sectors(raw: Path, boot_img: bytes, core_img: bytes) -> None:
    """boot.img's code (first 440 bytes: the partition table stays) + core.img from sector 1.

    boot.img's default kernel sector (1) and core.img's diskboot block list both assume
    core.img starts at sector 1; it must end before the partition.
    """
    if len(boot_img) != SECTOR:
        raise ValueError(f"boot.img is {len(boot_img)} bytes, expected {SECTOR}")
    if len(core_img) > (PART_START_SECTOR - 1) * SECTOR:
        raise ValueError(f"core.img ({len(core_img)} bytes) does not fit before the partition")
    with raw.open("r+b") as fh:
        fh.seek(0)
        fh.write(boot_img[:440])
        fh.seek(SECTOR)
        fh.write(core_img)
