"""Make a cached image ready for Glance: detect the real format, unpack OVA, convert.

``qemu-img`` runs through the core tool adapter only. Images that refer to other
files (qcow2 backing files, external data files) are refused: converting them would
read files of the appliance. An OVA is a tar archive whose OVF descriptor names the
disk; that one member is streamed out (no extractall, no paths outside the cache).
"""

from __future__ import annotations

import json
import os
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcloud_core.errors import ToolError
from fedcloud_core.tool import run_tool

from ..errors import ConversionError

QEMU_IMG = "qemu-img"
_OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"


@dataclass(frozen=True)
class Prepared:
    path: Path
    disk_format: str
    size: int
    virtual_size: int


def qemu_info(path: Path, fmt: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
    argv = [QEMU_IMG, "info", "--output=json"]
    if fmt:
        argv += ["-f", fmt]
    argv.append(str(path))
    try:
        out = run_tool(argv, timeout=timeout).stdout
    except ToolError as exc:
        raise ConversionError(f"{path.name}: cannot read the image: {exc}") from None
    info: dict[str, Any] = json.loads(out)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ConversionError(f"{path.name}: refers to a backing file; refused")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise ConversionError(f"{path.name}: uses an external data file; refused")
    return info


def _ovf_disk_name(ovf_xml: bytes) -> str:
    root = ET.fromstring(ovf_xml)  # noqa: S314 - expat limits entity expansion; no external entities
    files = {}
    for el in root.iter():
        if el.tag.endswith("}File") or el.tag == "File":
            fid = el.get(f"{{{_OVF_NS}}}id") or el.get("id")
            href = el.get(f"{{{_OVF_NS}}}href") or el.get("href")
            if fid and href:
                files[fid] = href
    for el in root.iter():
        if el.tag.endswith("}Disk") or el.tag == "Disk":
            ref = el.get(f"{{{_OVF_NS}}}fileRef") or el.get("fileRef")
            if ref in files:
                return files[ref]
    if len(files) == 1:
        return next(iter(files.values()))
    raise ConversionError("the OVF descriptor names no disk file")


def is_ova(path: Path) -> bool:
    try:
        with tarfile.open(path, mode="r:") as tar:
            return any(m.isfile() and m.name.lower().endswith(".ovf") for m in tar.getmembers())
    except (tarfile.TarError, OSError):
        return False


def extract_ova_disk(path: Path, dest: Path) -> Path:
    """Stream the disk named by the OVA's OVF descriptor to ``dest``."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            ovfs = [m for m in members.values() if m.isfile() and m.name.lower().endswith(".ovf")]
            if len(ovfs) != 1:
                raise ConversionError(
                    f"{path.name}: expected one OVF descriptor, found {len(ovfs)}"
                )
            fh = tar.extractfile(ovfs[0])
            assert fh is not None
            name = _ovf_disk_name(fh.read(4 * 1024 * 1024))
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ConversionError(
                    f"{path.name}: OVF disk reference {name!r} is not a plain file name"
                )
            disk = members.get(name) or members.get(f"./{name}")
            if disk is None or not disk.isfile():
                raise ConversionError(
                    f"{path.name}: the OVF names {name!r}, which is not a file in the OVA"
                )
            src = tar.extractfile(disk)
            assert src is not None
            tmp = dest.with_name(dest.name + ".part")
            with tmp.open("wb") as out:
                while chunk := src.read(1024 * 1024):
                    out.write(chunk)
            os.replace(tmp, dest)
            return dest
    except (tarfile.TarError, ET.ParseError) as exc:
        raise ConversionError(f"{path.name}: broken OVA: {exc}") from None


def prepare(
    original: Path,
    formats: list[str],
    *,
    stem: str,
    format_hint: str | None = None,
    timeout: float = 3600.0,
) -> Prepared:
    """Return the file to upload: the original if its real format is preferred, else converted.

    Results live next to ``original`` as ``<stem>.<format>``.
    """
    src = original
    info = qemu_info(src)
    fmt = str(info.get("format", "raw"))
    if (fmt == "raw" or format_hint == "ova") and is_ova(src):
        src = extract_ova_disk(src, original.with_name(f"{stem}.ova-disk"))
        info = qemu_info(src)
        fmt = str(info.get("format", "raw"))
    if fmt in formats:
        return Prepared(src, fmt, src.stat().st_size, int(info.get("virtual-size", 0)))
    target = formats[0]
    out = original.with_name(f"{stem}.{target}")
    tmp = out.with_name(out.name + ".part")
    try:
        run_tool(
            [QEMU_IMG, "convert", "-f", fmt, "-O", target, str(src), str(tmp)], timeout=timeout
        )
    except ToolError as exc:
        tmp.unlink(missing_ok=True)
        raise ConversionError(f"{original.name}: {fmt} -> {target} failed: {exc}") from None
    os.replace(tmp, out)
    if src != original:
        src.unlink(missing_ok=True)
    info = qemu_info(out, target)
    return Prepared(out, target, out.stat().st_size, int(info.get("virtual-size", 0)))
