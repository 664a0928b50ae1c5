"""Format detection and conversion with the real qemu-img; OVA unpacking."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from fedcloud_core.external import run_tool
from fedcloud_images.cache import convert
from fedcloud_images.errors import ConversionError
from support.images_pki import make_disk, make_ova

pytestmark = pytest.mark.contract


def _fmt(path: Path) -> str:
    return str(
        json.loads(run_tool(["qemu-img", "info", "--output=json", str(path)]).stdout)["format"]
    )


def test_preferred_format_is_uploaded_as_is(tmp_path: Path) -> None:
    src = make_disk(tmp_path / "a.orig")
    prep = convert.prepare(src, ["qcow2"], stem="a", format_hint="qcow2")
    assert (prep.path, prep.disk_format, prep.virtual_size) == (src, "qcow2", 1024 * 1024)


def test_wrongly_announced_format_is_detected_and_converted(tmp_path: Path) -> None:
    src = make_disk(tmp_path / "b.orig", fmt="raw")  # the list says QCOW2, the bytes are raw
    prep = convert.prepare(src, ["qcow2"], stem="b", format_hint="qcow2")
    assert prep.path == tmp_path / "b.qcow2"
    assert _fmt(prep.path) == "qcow2"
    assert src.exists()  # the original stays next to the converted file
    assert not list(tmp_path.glob("*.part"))


def test_site_preferring_raw_gets_raw(tmp_path: Path) -> None:
    src = make_disk(tmp_path / "c.orig", fmt="vmdk")
    prep = convert.prepare(src, ["raw", "qcow2"], stem="c", format_hint="vmdk")
    assert (prep.disk_format, _fmt(prep.path)) == ("raw", "raw")


def test_ova_disk_named_in_the_ovf_is_extracted_and_converted(tmp_path: Path) -> None:
    ova = make_ova(tmp_path / "d.orig")
    prep = convert.prepare(ova, ["qcow2"], stem="d", format_hint="ova")
    assert prep.disk_format == "qcow2"
    assert _fmt(prep.path) == "qcow2"
    assert prep.virtual_size == 1024 * 1024
    assert not (tmp_path / "d.ova-disk").exists()  # the intermediate disk is removed


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return path


OVF = (
    b'<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/'
    b'envelope/1"><References><File ovf:id="f" ovf:href="HREF"/></References><DiskSection>'
    b'<Disk ovf:diskId="d" ovf:fileRef="f"/></DiskSection></Envelope>'
)


@pytest.mark.parametrize(
    ("href", "message"),
    [
        (b"../../etc/passwd", "not a plain file name"),
        (b"missing.vmdk", "not a file in the OVA"),
    ],
)
def test_unsafe_or_broken_ova_is_refused(tmp_path: Path, href: bytes, message: str) -> None:
    ova = _tar(tmp_path / "e.orig", {"e.ovf": OVF.replace(b"HREF", href), "disk.vmdk": b"x" * 10})
    with pytest.raises(ConversionError, match=message):
        convert.prepare(ova, ["qcow2"], stem="e", format_hint="ova")


def test_image_with_a_backing_file_is_refused(tmp_path: Path) -> None:
    base = make_disk(tmp_path / "base.qcow2")
    overlay = tmp_path / "f.orig"
    run_tool(["qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)])
    with pytest.raises(ConversionError, match="backing file"):
        convert.prepare(overlay, ["raw"], stem="f")
