"""Untrusted image files with the real qemu-img: only self-contained single files pass (issue 18).

A VMDK descriptor or an embedded descriptor can name any local file as an extent, a
qcow2 can name a backing file or an external data file: converting such an image
would copy that file (a host key, say) into the image shared with the VO. Each
crafted image here points at a secret file; it must be refused and the secret must
never appear in any file of the cache or in the error.
"""

from __future__ import annotations

import io
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from fedcloud_core.external import run_tool
from fedcloud_images.cache import convert
from fedcloud_images.errors import ConversionError
from support.images_pki import make_disk

pytestmark = pytest.mark.contract

SECRET = b"-----BEGIN PRIVATE KEY-----SECRET-HOST-KEY-MATERIAL-4711-----END PRIVATE KEY-----\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    d = tmp_path / "grid-security"
    d.mkdir()
    p = d / "hostkey.pem"
    p.write_bytes(SECRET * 64)  # 5 KiB: more than the extents below read
    return p


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    d = tmp_path / "cache" / "list" / "img"
    d.mkdir(parents=True)
    return d


def _refused(src: Path, cache: Path, formats: list[str], match: str) -> ConversionError:
    with pytest.raises(ConversionError, match=match) as info:
        convert.prepare(src, formats, stem="s")
    err = info.value
    assert b"SECRET-HOST-KEY" not in str(err).encode()
    for f in cache.rglob("*"):
        if f.is_file():
            assert b"SECRET-HOST-KEY" not in f.read_bytes(), f"secret copied into {f.name}"
    kept = [f.name for f in cache.iterdir() if f.name.startswith("s.") and f.name != "s.orig"]
    assert not kept  # no converted or partial output
    return err


def _flat_descriptor(target: Path, sectors: int = 8, create_type: str = "monolithicFlat") -> bytes:
    return (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="{create_type}"\n\n# Extent description\n'
        f'RW {sectors} FLAT "{target}" 0\n\n# The Disk Data Base\n#DDB\n'
        'ddb.virtualHWVersion = "4"\nddb.adapterType = "ide"\n'
    ).encode()


@pytest.mark.parametrize("formats", [["qcow2"], ["raw"], ["vmdk", "qcow2"]])
def test_monolithic_flat_vmdk_naming_the_host_key_is_refused(
    cache: Path, secret: Path, formats: list[str]
) -> None:
    src = cache / "s.orig"
    src.write_bytes(_flat_descriptor(secret))
    # qemu-img itself would copy the key: the danger is real on this qemu version
    leak = cache.parent / "leak.raw"
    run_tool(["qemu-img", "convert", "-f", "vmdk", "-O", "raw", str(src), str(leak)])
    assert b"SECRET-HOST-KEY" in leak.read_bytes()
    leak.unlink()
    _refused(src, cache, formats, "VMDK text descriptor")


def test_descriptor_with_a_relative_extent_is_refused(cache: Path, secret: Path) -> None:
    src = cache / "s.orig"
    rel = Path("..") / ".." / ".." / "grid-security" / secret.name
    src.write_bytes(_flat_descriptor(rel, create_type="twoGbMaxExtentFlat"))
    _refused(src, cache, ["qcow2"], "VMDK text descriptor")


def test_sparse_vmdk_with_an_embedded_descriptor_naming_other_files_is_refused(
    cache: Path, secret: Path
) -> None:
    """A binary monolithicSparse file whose header has capacity 0: qemu then reads the
    embedded descriptor, which here lists a sparse extent and a flat extent (the key)."""
    src = cache / "s.orig"
    other = make_disk(cache / "other.vmdk", fmt="vmdk")
    data = bytearray(other.read_bytes())
    assert data[:4] == b"KDMV"
    desc_offset, desc_size = struct.unpack_from("<QQ", data, 28)
    desc = (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="twoGbMaxExtentSparse"\n\n'
        f'RW 2048 SPARSE "other.vmdk"\nRW 8 FLAT "{secret}" 0\n\n'
    ).encode()
    data[desc_offset * 512 : (desc_offset + desc_size) * 512] = desc.ljust(desc_size * 512, b"\0")
    struct.pack_into("<Q", data, 12, 0)  # capacity 0: use the embedded descriptor
    src.write_bytes(bytes(data))
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(src)], capture_output=True, check=True
    )
    assert str(secret).encode() in info.stdout  # qemu follows it
    err = _refused(src, cache, ["raw"], "refers to other files|other than the image itself")
    assert "twoGbMaxExtentSparse" in str(err)


@pytest.mark.parametrize(
    "subformat", ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "monolithicFlat"]
)
def test_multi_file_vmdk_made_by_qemu_is_refused(cache: Path, subformat: str) -> None:
    src = cache / "s.orig"
    run_tool(["qemu-img", "create", "-f", "vmdk", "-o", f"subformat={subformat}", str(src), "3G"])
    with pytest.raises(ConversionError, match="VMDK text descriptor"):
        convert.prepare(src, ["qcow2"], stem="s")
    assert not (cache / "s.qcow2").exists()


def test_qcow2_with_an_external_data_file_is_refused(cache: Path, secret: Path) -> None:
    src = cache / "s.orig"
    data_file = cache.parent / "data.raw"  # a qcow2 data file of the crafter's choosing
    data_file.write_bytes(SECRET * 64)
    run_tool(["qemu-img", "create", "-f", "qcow2", "-o", f"data_file={data_file}", str(src), "1M"])
    data_file.write_bytes(SECRET * 64)  # create truncated it
    _refused(src, cache, ["raw"], "external data file")


def test_qcow2_with_a_backing_file_is_refused(cache: Path, secret: Path) -> None:
    src = cache / "s.orig"
    run_tool(["qemu-img", "create", "-f", "qcow2", "-F", "raw", "-b", str(secret), str(src), "1M"])
    _refused(src, cache, ["raw"], "backing file")


def test_format_outside_the_allow_list_is_refused(cache: Path) -> None:
    src = cache / "s.orig"
    run_tool(["qemu-img", "create", "-f", "qed", str(src), "1M"])
    _refused(src, cache, ["qcow2"], "format 'qed' is not accepted")


@pytest.mark.parametrize(
    ("fmt", "opts"),
    [
        ("raw", []),
        ("qcow2", []),
        ("vmdk", []),
        ("vmdk", ["-o", "subformat=streamOptimized"]),
        ("vdi", []),
        ("vpc", []),
        ("vhdx", []),
    ],
)
def test_self_contained_images_are_accepted(cache: Path, fmt: str, opts: list[str]) -> None:
    raw = make_disk(cache / "in.raw", fmt="raw")
    src = cache / "s.orig"
    run_tool(["qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, str(raw), str(src)])
    prep = convert.prepare(src, ["qcow2"], stem="s")
    assert prep.disk_format == "qcow2"
    out = run_tool(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(prep.path)])
    assert out.returncode == 0


def test_qemu_img_runs_with_a_minimal_environment_in_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str] | None, object]] = []
    real = convert.run_tool

    def spy(argv: list[str], **kw: object) -> object:
        seen.append((list(argv), kw.get("env"), kw.get("cwd")))  # type: ignore[arg-type]
        return real(argv, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(convert, "run_tool", spy)
    monkeypatch.setenv("OS_PASSWORD", "do-not-pass")
    src = make_disk(cache / "s.orig", fmt="raw")
    convert.prepare(src, ["qcow2"], stem="s")
    assert {a[1] for a, _, _ in seen} >= {"info", "measure", "convert"}
    for argv, env, cwd in seen:
        assert env is not None, argv
        assert set(env) <= {"PATH", "LC_ALL"}, argv
        assert Path(str(cwd)) == cache
    convert_argv = next(a for a, _, _ in seen if a[1] == "convert")
    assert convert_argv[2:4] == ["-f", "raw"]  # the checked format, never probed again


# ------------------------------------------------------------------ size limits (issue 18 #7)


def test_conversion_larger_than_the_maximum_is_refused_before_it_starts(cache: Path) -> None:
    src = cache / "s.orig"
    run_tool(["qemu-img", "create", "-f", "qcow2", str(src), "100G"])  # 200 KiB file
    with pytest.raises(ConversionError, match="exceeds the maximum image size"):
        convert.prepare(src, ["raw"], stem="s", max_bytes=1024**3)
    assert not list(cache.glob("s.raw*"))
    # the same image to qcow2 needs little room: accepted as is
    assert convert.prepare(src, ["qcow2"], stem="s", max_bytes=1024**3).path == src


def test_conversion_that_does_not_fit_in_the_cache_is_refused(cache: Path) -> None:
    src = make_disk(cache / "s.orig", fmt="vmdk")
    with pytest.raises(ConversionError, match="not enough free space"):
        convert.prepare(src, ["raw"], stem="s", min_free_bytes=10**18)
    assert not list(cache.glob("s.raw*"))


OVF = (
    b'<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/'
    b'envelope/1"><References><File ovf:id="f" ovf:href="disk.raw"/></References><DiskSection>'
    b'<Disk ovf:diskId="d" ovf:fileRef="f"/></DiskSection></Envelope>'
)


def test_ova_with_a_sparse_disk_member_is_refused(cache: Path, tmp_path: Path) -> None:
    work = tmp_path / "ova"
    work.mkdir()
    (work / "x.ovf").write_bytes(OVF)
    with (work / "disk.raw").open("wb") as fh:  # 16 GiB declared, a few bytes stored
        fh.write(b"\1" * 4096)
        fh.truncate(16 * 1024**3)
    ova = cache / "s.orig"
    subprocess.run(
        ["tar", "--format=gnu", "--sparse", "-cf", str(ova), "-C", str(work), "x.ovf", "disk.raw"],
        check=True,
    )
    assert ova.stat().st_size < 1024 * 1024
    with tarfile.open(ova) as tar:
        assert tar.getmember("disk.raw").issparse()
    with pytest.raises(ConversionError, match="sparse member"):
        convert.prepare(ova, ["qcow2"], stem="s", format_hint="ova")
    assert not list(cache.glob("s.ova-disk*"))


def test_ova_disk_larger_than_the_maximum_is_refused(cache: Path) -> None:
    ova = cache / "s.orig"
    with tarfile.open(ova, "w") as tar:
        for name, data in (("x.ovf", OVF), ("disk.raw", b"\0" * (2 * 1024 * 1024))):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    with pytest.raises(ConversionError, match="exceeds the maximum image size"):
        convert.prepare(ova, ["qcow2"], stem="s", format_hint="ova", max_bytes=1024 * 1024)
    assert not list(cache.glob("s.ova-disk*"))
    prep = convert.prepare(ova, ["qcow2"], stem="s", format_hint="ova", max_bytes=4 * 1024**2)
    assert prep.disk_format == "qcow2"
