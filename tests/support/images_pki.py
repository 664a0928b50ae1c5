"""Test material for the image replicator: endorser certificates, tiny disk images, signed lists.

Certificates come from :mod:`support.pki` (a throw-away CA made with ``cryptography``);
the endorser is a host-style certificate without the emailProtection usage, like
AppDB's. Lists are built and signed with the project's own ``imagelist sign`` code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fedcloud_core.external import run_tool
from fedcloud_images import imagelist
from support.pki import Cred, Pki, issue, make_pki


@dataclass
class ImagesPki:
    pki: Pki
    endorser: Cred  # the configured endorser
    wrong: Cred  # issued by the same trusted CA, another DN
    untrusted: Cred  # same DN as the endorser, issued by an untrusted CA

    @property
    def capath(self) -> Path:
        return self.pki.capath

    @property
    def endorser_ca(self) -> str:
        return self.pki.ca.dn


def make_images_pki(root: Path) -> ImagesPki:
    pki = make_pki(root)
    endorser = issue(root, pki.ca, "endorser", "appdb.example.org")
    wrong = issue(root, pki.ca, "wrong-endorser", "impostor.example.org")
    untrusted = issue(root, pki.other_ca, "untrusted-endorser", "appdb.example.org")
    return ImagesPki(pki, endorser, wrong, untrusted)


def make_disk(path: Path, *, fmt: str = "qcow2", seed: str = "a", data_kib: int = 64) -> Path:
    """A small disk image whose content depends on ``seed`` (so digests differ)."""
    raw = path.with_suffix(".raw-src")
    block = hashlib.sha512(seed.encode()).digest() * 16  # 1 KiB
    with raw.open("wb") as fh:
        fh.write(block * data_kib)
        fh.truncate(1024 * 1024)
    if fmt == "raw":
        os.replace(raw, path)
        return path
    run_tool(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(path)], timeout=60)
    raw.unlink()
    return path


def make_ova(path: Path, *, seed: str = "ova") -> Path:
    """An OVA: a tar with an OVF descriptor naming a VMDK disk (plus a decoy file)."""
    disk = make_disk(path.with_name(path.stem + "-disk1.vmdk"), fmt="vmdk", seed=seed)
    ovf = f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:id="file1" ovf:href="{disk.name}"/>
    <File ovf:id="file2" ovf:href="notes.txt"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1048576"/>
  </DiskSection>
</Envelope>
""".encode()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in ((path.stem + ".ovf", ovf), ("notes.txt", b"not the disk\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        tar.add(disk, arcname=disk.name)
    disk.unlink()
    return path


def sha512_file(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()


def image_desc(ident: str, path: Path, base_url: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "identifier": ident,
        "title": f"Image {ident}",
        "file": str(path),
        "uri": base_url + path.name,
        "format": "QCOW2",
        "version": "1.0",
        "description": f"test image {ident}",
        "extra": {
            "sl:osname": "Ubuntu",
            "sl:osversion": "22.04",
            "sl:arch": "x86_64",
            "hv:ram_minimum": "512",
            "ad:mpuri": f"https://appdb.example/store/vo/image/{ident}:1/",
        },
    }
    d.update(extra)
    return d


def signed_list(
    signer: Cred,
    images: list[dict[str, Any]],
    *,
    version: str = "20260101000000",
    opaque: bool = False,
    cms: bool = False,
    expires: datetime | None = None,
    base_dir: Path = Path("/"),
    vo: str = "vo.example.org",
    tamper: bool = False,
) -> bytes:
    """A signed HEPiX list built with the ``imagelist sign`` code."""
    desc: dict[str, Any] = {
        "title": "test list",
        "vo": vo,
        "version": version,
        "images": images,
        "identifier": "0e1f7a4e-0000-4000-8000-000000000001",
    }
    exp = expires or datetime.now(UTC) + timedelta(days=30)
    desc["expires"] = exp.strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = imagelist.build_list(desc, base_dir=base_dir, cert=signer.cert)
    signed = imagelist.sign_list(doc, cert=signer.cert, key=signer.key, opaque=opaque, cms=cms)
    if tamper:
        # change one character of the signed JSON (clear-signed: the content is readable)
        assert not opaque, "tampering is done on clear-signed lists"
        signed = signed.replace(b'"dc:title": "test list"', b'"dc:title": "test lisT"', 1)
    return signed


def list_json(signed_doc: dict[str, Any]) -> str:
    return json.dumps(signed_doc)
