"""Write a small, valid, empty qcow2 (version 3) image without qemu-img.

Glance inspects uploads and refuses data that does not match ``disk_format``,
so test images must be real qcow2 files. Four clusters:
header | refcount table | refcount block | L1 table (all zero: no data yet).
An optional ``label`` goes into the unused bytes after the header (qemu ignores
them), so differently labelled images get different checksums. With 512-byte
clusters (``cluster_bits=9``) an image is 2 KiB, handy for thousands of uploads.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = 0x514649FB
LABEL_AT = 128  # after the 104-byte v3 header and the end-of-extensions marker


def build(virtual_mib: int = 64, label: str = "", cluster_bits: int = 16) -> bytes:
    cluster = 1 << cluster_bits
    vsize = virtual_mib * 1024 * 1024
    l1_entries = -(-vsize // (cluster * (cluster // 8)))  # one L1 entry maps a full L2 table
    if l1_entries * 8 > cluster:
        raise ValueError("virtual size too large for a one-cluster L1 table; raise cluster_bits")
    header = struct.pack(
        ">IIQIIQIIQQIIQ",
        MAGIC,
        3,  # version
        0,  # backing file offset (none)
        0,  # backing file name length
        cluster_bits,
        vsize,
        0,  # no encryption
        l1_entries,
        3 * cluster,  # L1 table offset
        1 * cluster,  # refcount table offset
        1,  # refcount table clusters
        0,  # snapshots
        0,  # snapshots offset
    )
    # v3: incompatible, compatible, autoclear features; refcount order 4 (16 bit); header length
    header += struct.pack(">QQQII", 0, 0, 0, 4, 104)
    header += struct.pack(">II", 0, 0)  # end of header extensions
    img = bytearray(4 * cluster)
    img[: len(header)] = header
    tag = label.encode()[: cluster - LABEL_AT]
    img[LABEL_AT : LABEL_AT + len(tag)] = tag
    img[cluster : cluster + 8] = struct.pack(">Q", 2 * cluster)  # refcount table -> block
    for i in range(4):  # clusters 0..3 are used once each
        img[2 * cluster + 2 * i : 2 * cluster + 2 * i + 2] = struct.pack(">H", 1)
    return bytes(img)


def write(path: Path, virtual_mib: int = 64, label: str = "", cluster_bits: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build(virtual_mib, label, cluster_bits))
    return path
