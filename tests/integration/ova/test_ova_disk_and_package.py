"""The real disk assembly and packaging tools on a tiny root file system (seconds, no VM).

sfdisk + mkfs.ext4 -d + grub-mkimage build a bootable-layout disk without loop devices;
qemu-img, the OVF template, the manifest and the tar make an OVA that the structural
checker, sha256 and qemu-img accept. The full image build and the QEMU boot test are
`make ova` / `make test-ova` (minutes: not part of `make test`).
"""

from __future__ import annotations

import json
import subprocess
import uuid as uuidlib
from pathlib import Path

import pytest

from ova.builder import disk, package
from ova.builder.package import parse_manifest, sha256_file
from ova.builder.settings import REPO_ROOT, Settings
from ova.builder.validate import ova_problems

pytestmark = pytest.mark.integration

DISK_BYTES = 64 * 1024 * 1024


def _run(*argv: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{argv[0]}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    work = tmp_path_factory.mktemp("ova")
    root = work / "rootfs"
    (root / "boot/grub").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/hello").write_text("fedcloud\n")
    (root / "boot/grub/grub.cfg").write_text("set timeout=0\n")
    s = Settings(
        name="tiny",
        work_dir=work,
        out_dir=work / "out",
        templates_dir=REPO_ROOT / "templates",
        disk_gb=1,
    )
    uuid = str(uuidlib.uuid4())
    disk.assemble(s.raw_disk, root, uuid, DISK_BYTES, work)
    package.package(s)
    return s, uuid


def test_disk_has_one_bootable_partition_at_1mib(built: tuple[Settings, str]) -> None:
    s, _ = built
    table = json.loads(_run("sfdisk", "--json", str(s.raw_disk)))["partitiontable"]
    assert table["label"] == "dos"
    (part,) = table["partitions"]
    assert part["start"] == 2048
    assert part.get("bootable") is True
    mbr = s.raw_disk.read_bytes()[:512]
    assert mbr[510:512] == b"\x55\xaa"
    assert mbr[:440] == (disk.GRUB_DIR / "boot.img").read_bytes()[:440]


def test_file_system_is_found_by_uuid_and_holds_the_rootfs(built: tuple[Settings, str]) -> None:
    s, uuid = built
    dev = f"{s.raw_disk}?offset={disk.PART_OFFSET}"
    assert f"Filesystem UUID:          {uuid}" in _run("dumpe2fs", "-h", dev)
    assert _run("debugfs", "-R", "cat /etc/hello", dev).strip() == "fedcloud"
    core = (s.work_dir / "core.img").read_bytes()
    assert s.raw_disk.read_bytes()[512 : 512 + len(core)] == core


def test_ova_passes_the_importers_checks(built: tuple[Settings, str]) -> None:
    s, _ = built
    x = s.work_dir / "check"
    assert ova_problems(s.ova_path, x) == []
    digests = parse_manifest((x / "tiny.mf").read_text())
    assert set(digests) == {"tiny.ovf", "tiny-disk1.vmdk"}
    lines = "".join(f"{d}  {n}\n" for n, d in digests.items())
    proc = subprocess.run(
        ["sha256sum", "-c", "-"],
        input=lines,
        cwd=x,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(_run("qemu-img", "info", "--output=json", str(x / "tiny-disk1.vmdk")))
    assert info["format"] == "vmdk"
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    assert info["virtual-size"] == DISK_BYTES
    _run("qemu-img", "check", str(x / "tiny-disk1.vmdk"))
    _run(
        "qemu-img",
        "compare",
        "-f",
        "vmdk",
        "-F",
        "raw",
        str(x / "tiny-disk1.vmdk"),
        str(s.raw_disk),
    )
    _run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(s.qcow2_path), str(s.raw_disk))


def test_tampered_ova_is_refused(built: tuple[Settings, str], tmp_path: Path) -> None:
    s, _ = built
    data = bytearray(s.ova_path.read_bytes())
    data[-4096] ^= 0xFF  # flip a byte inside the disk image (last member)
    bad = tmp_path / "bad.ova"
    bad.write_bytes(bytes(data))
    problems = ova_problems(bad, tmp_path / "x")
    assert any("SHA256 does not match" in p for p in problems), problems
    assert sha256_file(bad) != sha256_file(s.ova_path)
