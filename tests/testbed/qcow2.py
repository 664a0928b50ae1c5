"""Write a small, valid, empty qcow2 (version 3) image without qemu-img.

Glance inspects uploads and refuses data that does not match ``disk_format``,
so test images must be real qcow2 files. Layout, one 64 KiB cluster each:
header | refcount table | refcount block | L1 table (all entries zero: no data).
A ``label`` is written as an (ignored) header-extension-free tail in the
padding of the header cluster so that differently labelled images have
different checksums.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = 0x514649FB
CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS


def build(virtual_mib: int = 64, label: str = "") -> bytes:
    vsize = virtual_mib * 1024 * 1024
    per_l2 = CLUSTER // 8
    l1_entries = -(-vsize // (CLUSTER * per_l2))
    header = struct.pack(
        ">IIQIIQIIQQIIQ",
        MAGIC, 3,           # magic, version
        0, 0,               # backing file offset, size
        CLUSTER_BITS, vsize,
        0,                  # no encryption
        l1_entries, 3 * CLUSTER,   # L1 size, L1 offset
        1 * CLUSTER,        # refcount table offset
        1,                  # refcount table clusters
        0, 0,               # snapshots: count, offset
    )  # fmt: skip
    # v3 fields: incompatible/compatible/autoclear features, refcount order (16 bit), header length
    header += struct.pack(">QQQII", 0, 0, 0, 4, 104)
    header += struct.pack(">II", 0, 0)  # end-of-extensions marker
    img = bytearray(4 * CLUSTER)
    img[: len(header)] = header
    tag = label.encode()[:1024]
    img[CLUSTER - 2048 : CLUSTER - 2048 + len(tag)] = tag  # unused padding inside cluster 0
    img[CLUSTER : CLUSTER + 8] = struct.pack(">Q", 2 * CLUSTER)
    for i in range(4):  # clusters 0-3 are in use, refcount 1 each
        img[2 * CLUSTER + 2 * i : 2 * CLUSTER + 2 * i + 2] = struct.pack(">H", 1)
    return bytes(img)


def write(path: Path, virtual_mib: int = 64, label: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build(virtual_mib, label))
    return path
