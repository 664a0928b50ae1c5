"""Make a cached image ready for Glance: detect the real format, unpack OVA, convert.

``qemu-img`` runs through the core tool adapter only, with a minimal environment and
the image's cache directory as working directory. Only self-contained single-file
images are accepted: the format must be one of :data:`ALLOWED_FORMATS`, and nothing
``qemu-img info --output=json`` reports (backing files, qcow2 external data files,
VMDK extents, child nodes) may name a file other than the image itself. Converting an
image that refers to other files would copy files of the appliance (a host key, say)
into the image shared with the VO. A VMDK text descriptor is refused before qemu-img
even opens it. The format detected once is passed to every later qemu-img call, so
nothing is probed again. An OVA is a tar archive whose OVF descriptor names the disk;
that one member is streamed out (no extractall, no paths outside the cache, no sparse
members, at most ``max_bytes``). A conversion whose output could exceed ``max_bytes``
or the free space of the cache is refused before it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcloud_core.errors import ToolError
from fedcloud_core.external import run_tool

from ..errors import ConversionError

QEMU_IMG = "qemu-img"
_OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"

#: qemu-img formats accepted as input (single-file formats; anything else is refused)
ALLOWED_FORMATS = frozenset({"raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx"})
#: VMDK create types whose one extent is the file itself (descriptor embedded)
_VMDK_SINGLE_FILE = frozenset({"monolithicSparse", "streamOptimized"})
#: keys of ``qemu-img info`` naming another file; their presence alone refuses the image
_REFERENCE_KEYS = ("backing-filename", "full-backing-filename", "backing-image", "data-file")


@dataclass(frozen=True)
class Prepared:
    path: Path
    disk_format: str
    size: int
    virtual_size: int


def qemu_env() -> dict[str, str]:
    """The whole environment qemu-img gets: a PATH and the C locale, nothing else."""
    return {"PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}


def _qemu(argv: list[str], where: Path, timeout: float) -> bytes:
    return run_tool(argv, timeout=timeout, env=qemu_env(), cwd=where).stdout


def _is_vmdk_descriptor(head: bytes) -> bool:
    """True for a VMDK text descriptor (comment/blank lines, then ``version=``), as qemu probes it."""
    for line in head.split(b"\n"):
        text = line.strip(b" \t\r")
        if not text or text.startswith(b"#"):
            continue
        return text.startswith(b"version=")
    return False


def _files_named(node: Any, out: list[str]) -> list[str]:
    """Every ``filename`` anywhere in ``qemu-img info`` output (extents, children)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "filename" and isinstance(value, str):
                out.append(value)
            else:
                _files_named(value, out)
    elif isinstance(node, list):
        for item in node:
            _files_named(item, out)
    return out


def check_self_contained(path: Path, info: dict[str, Any]) -> None:
    """Refuse (ConversionError) an image that is not one file of an accepted format."""
    fmt = str(info.get("format", ""))
    if fmt not in ALLOWED_FORMATS:
        raise ConversionError(
            f"{path.name}: format {fmt!r} is not accepted "
            f"(accepted: {', '.join(sorted(ALLOWED_FORMATS))}); refused"
        )
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ConversionError(f"{path.name}: refers to a backing file; refused")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise ConversionError(f"{path.name}: uses an external data file; refused")
    if info.get("encrypted") or data.get("encrypt"):
        raise ConversionError(f"{path.name}: is encrypted; refused")
    for key in _REFERENCE_KEYS:
        if _find_key(info, key):
            raise ConversionError(f"{path.name}: refers to another file ({key}); refused")
    if fmt == "vmdk":
        create_type = str(data.get("create-type", ""))
        extents = data.get("extents") or []
        if create_type not in _VMDK_SINGLE_FILE or len(extents) != 1:
            raise ConversionError(
                f"{path.name}: VMDK of type {create_type!r} with {len(extents)} extent(s) refers "
                "to other files; only single-file VMDKs (monolithicSparse, streamOptimized) "
                "are accepted; refused"
            )
    me = path.resolve()
    others = [f for f in _files_named(info, []) if (path.parent / f).resolve() != me]
    if others:
        raise ConversionError(
            f"{path.name}: refers to {len(others)} file(s) other than the image itself "
            "(extents or child files); only self-contained single-file images are accepted; "
            "refused"
        )


def _find_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return any(k == key and v for k, v in node.items()) or any(
            _find_key(v, key) for v in node.values()
        )
    if isinstance(node, list):
        return any(_find_key(v, key) for v in node)
    return False


def qemu_info(path: Path, fmt: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
    """``qemu-img info`` of ``path``, refused unless it is a self-contained single file."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError as exc:
        raise ConversionError(f"{path.name}: cannot read the image: {exc.strerror}") from None
    if _is_vmdk_descriptor(head):
        raise ConversionError(
            f"{path.name}: is a VMDK text descriptor, which refers to other files "
            "(extents); only self-contained single-file images are accepted; refused"
        )
    argv = [QEMU_IMG, "info", "--output=json"]
    if fmt:
        argv += ["-f", fmt]
    argv.append(str(path.resolve()))
    try:
        out = _qemu(argv, path.parent, timeout)
    except ToolError as exc:
        raise ConversionError(f"{path.name}: cannot read the image: {exc}") from None
    try:
        info: dict[str, Any] = json.loads(out)
    except ValueError:
        raise ConversionError(f"{path.name}: qemu-img info gave no JSON") from None
    check_self_contained(path, info)
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


def fsync_replace(tmp: Path, dest: Path) -> None:
    """Make ``tmp`` durable, rename it to ``dest``, and make the rename durable."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    dfd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _check_room(
    name: str, what: str, need: int, where: Path, max_bytes: int | None, min_free: int
) -> None:
    if max_bytes is not None and need > max_bytes:
        raise ConversionError(
            f"{name}: {what} of {need} bytes exceeds the maximum image size "
            f"({max_bytes} bytes, images.max_image_gb); refused"
        )
    free = shutil.disk_usage(where).free
    if free < need + min_free:
        raise ConversionError(
            f"{name}: not enough free space in the cache for the {what} ({free} bytes free, "
            f"{need} needed plus {min_free} kept free)"
        )


def extract_ova_disk(
    path: Path, dest: Path, *, max_bytes: int | None = None, min_free_bytes: int = 0
) -> Path:
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
            if disk.issparse():  # expands to its declared size, not its stored size
                raise ConversionError(
                    f"{path.name}: the OVA disk {name!r} is a sparse member; refused"
                )
            _check_room(path.name, "OVA disk", disk.size, dest.parent, max_bytes, min_free_bytes)
            src = tar.extractfile(disk)
            assert src is not None
            tmp = dest.with_name(dest.name + ".part")
            written = 0
            try:
                with tmp.open("wb") as out:
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        if written > disk.size or (max_bytes is not None and written > max_bytes):
                            raise ConversionError(
                                f"{path.name}: the OVA disk {name!r} is larger than declared; refused"
                            )
                        out.write(chunk)
                fsync_replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return dest
    except (tarfile.TarError, ET.ParseError) as exc:
        raise ConversionError(f"{path.name}: broken OVA: {exc}") from None


def _measure(src: Path, fmt: str, target: str, info: dict[str, Any], timeout: float) -> int:
    """Bytes the converted file may take (qemu-img measure; the virtual size where unsupported)."""
    virtual = int(info.get("virtual-size", 0))
    try:
        out = _qemu(
            [QEMU_IMG, "measure", "--output=json", "-f", fmt, "-O", target, str(src.resolve())],
            src.parent,
            timeout,
        )
        return int(json.loads(out)["required"])
    except (ToolError, ValueError, KeyError, TypeError):
        return virtual


def prepare(
    original: Path,
    formats: list[str],
    *,
    stem: str,
    format_hint: str | None = None,
    timeout: float = 3600.0,
    max_bytes: int | None = None,
    min_free_bytes: int = 0,
) -> Prepared:
    """Return the file to upload: the original if its real format is preferred, else converted.

    Results live next to ``original`` as ``<stem>.<format>``. Raises ConversionError for an
    image that is not self-contained, too large, or does not fit in the cache.
    """
    src = original
    info = qemu_info(src)
    fmt = str(info["format"])
    if (fmt == "raw" or format_hint == "ova") and is_ova(src):
        src = extract_ova_disk(
            src,
            original.with_name(f"{stem}.ova-disk"),
            max_bytes=max_bytes,
            min_free_bytes=min_free_bytes,
        )
        try:
            info = qemu_info(src)
        except ConversionError:
            src.unlink(missing_ok=True)
            raise
        fmt = str(info["format"])
    try:
        return _convert(original, src, fmt, info, formats, stem, timeout, max_bytes, min_free_bytes)
    finally:
        if src != original:
            src.unlink(missing_ok=True)


def _convert(
    original: Path,
    src: Path,
    fmt: str,
    info: dict[str, Any],
    formats: list[str],
    stem: str,
    timeout: float,
    max_bytes: int | None,
    min_free: int,
) -> Prepared:
    if fmt in formats:
        if src != original:  # the OVA disk becomes the file to upload
            out = original.with_name(f"{stem}.{fmt}")
            os.replace(src, out)
            src = out
        return Prepared(src, fmt, src.stat().st_size, int(info.get("virtual-size", 0)))
    target = formats[0]
    need = _measure(src, fmt, target, info, timeout=120.0)
    _check_room(original.name, f"{target} conversion", need, original.parent, max_bytes, min_free)
    out = original.with_name(f"{stem}.{target}")
    tmp = out.with_name(out.name + ".part")
    try:
        # the format detected and checked above, never probed again
        _qemu(
            [QEMU_IMG, "convert", "-f", fmt, "-O", target, str(src.resolve()), str(tmp.resolve())],
            original.parent,
            timeout,
        )
        size = tmp.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ConversionError(
                f"{original.name}: the {target} conversion has {size} bytes, more than the "
                f"maximum image size ({max_bytes} bytes, images.max_image_gb); refused"
            )
        fsync_replace(tmp, out)
    except ToolError as exc:
        raise ConversionError(f"{original.name}: {fmt} -> {target} failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    info = qemu_info(out, target)
    return Prepared(out, target, out.stat().st_size, int(info.get("virtual-size", 0)))
