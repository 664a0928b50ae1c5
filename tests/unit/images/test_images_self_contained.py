"""The self-contained check on ``qemu-img info`` JSON, including shapes newer qemu versions print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedcloud_images.cache.convert import check_self_contained
from fedcloud_images.errors import ConversionError

pytestmark = pytest.mark.unit


def _info(path: Path, **extra: Any) -> dict[str, Any]:
    return {"format": "qcow2", "filename": str(path), "virtual-size": 1024, **extra}


def test_plain_image_passes(tmp_path: Path) -> None:
    check_self_contained(tmp_path / "a.orig", _info(tmp_path / "a.orig"))


def test_relative_name_of_the_image_itself_passes(tmp_path: Path) -> None:
    p = tmp_path / "a.orig"
    info = _info(p, **{"format": "vmdk", "format-specific": {"type": "vmdk", "data": {
        "create-type": "monolithicSparse", "extents": [{"filename": "a.orig", "format": ""}]}}})  # fmt: skip
    check_self_contained(p, info)


def test_child_node_naming_another_file_is_refused(tmp_path: Path) -> None:
    """qemu 8+ prints the block graph as ``children``; any other file there refuses the image."""
    p = tmp_path / "a.orig"
    info = _info(
        p,
        children=[
            {"name": "file", "info": {"filename": str(p), "format": "file"}},
            {"name": "data-file", "info": {"filename": "/etc/grid-security/hostkey.pem"}},
        ],
    )
    with pytest.raises(ConversionError, match="1 file\\(s\\) other than the image itself"):
        check_self_contained(p, info)


def test_nested_backing_image_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.orig"
    with pytest.raises(ConversionError, match="backing-image"):
        check_self_contained(p, _info(p, **{"backing-image": {"filename": str(p)}}))


def test_encrypted_image_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.orig"
    with pytest.raises(ConversionError, match="encrypted"):
        check_self_contained(p, _info(p, encrypted=True))


@pytest.mark.parametrize("fmt", ["qed", "luks", "parallels", "vvfat", "", "json"])
def test_formats_outside_the_allow_list_are_refused(tmp_path: Path, fmt: str) -> None:
    p = tmp_path / "a.orig"
    with pytest.raises(ConversionError, match="is not accepted"):
        check_self_contained(p, _info(p, format=fmt))


def test_vmdk_whose_one_extent_is_another_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.orig"
    data = {
        "create-type": "monolithicSparse",
        "extents": [{"filename": "../other/b.orig", "format": ""}],
    }
    info = _info(p, format="vmdk", **{"format-specific": {"type": "vmdk", "data": data}})
    with pytest.raises(ConversionError, match="other than the image itself"):
        check_self_contained(p, info)
