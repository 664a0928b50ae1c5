"""What real importers check, run against the built OVA (``scripts/dev/ova validate``)."""

from __future__ import annotations

import logging
import shutil
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

from fedcloud_core.errors import ToolError

from .build_tools import QEMU_IMG, SHA256SUM, VIRT_V2V, XMLLINT
from .package import parse_manifest, sha256_file
from .settings import Settings

log = logging.getLogger(__name__)

NS = {
    "ovf": "http://schemas.dmtf.org/ovf/envelope/1",
    "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
    "vssd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData",
}
A = "{" + NS["ovf"] + "}"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
# CIM ResourceType numbers a VM needs
REQUIRED_HARDWARE = {"3": "CPU", "4": "memory", "10": "network adapter", "17": "disk drive"}
CONTROLLERS = {"5": "IDE controller", "6": "SCSI controller", "20": "SATA controller"}


def ovf_problems(ovf_text: str, file_sizes: dict[str, int] | None = None) -> list[str]:
    """Structural problems of an OVF 1.x descriptor (empty list: fine).

    ``file_sizes`` (name -> bytes), when given, is compared with References/File/@ovf:size.
    """
    problems: list[str] = []
    try:
        root = ET.fromstring(ovf_text)  # noqa: S314 - our own descriptor, built locally
    except ET.ParseError as exc:
        return [f"not well-formed XML: {exc}"]
    if root.tag != f"{A}Envelope":
        return [f"root element is {root.tag}, expected ovf:Envelope"]
    refs = root.find("ovf:References", NS)
    files: dict[str, ET.Element] = {}
    if refs is None:
        problems.append("References section is missing")
    else:
        for f in refs.findall("ovf:File", NS):
            fid, href, size = f.get(A + "id"), f.get(A + "href"), f.get(A + "size")
            if not fid or not href:
                problems.append("References/File without ovf:id or ovf:href")
                continue
            files[fid] = f
            if "/" in href:
                problems.append(f"File {href}: href must be a plain name inside the OVA")
            if size is None or not size.isdigit():
                problems.append(f"File {href}: ovf:size missing or not a number")
            elif file_sizes is not None:
                if href not in file_sizes:
                    problems.append(f"File {href}: referenced but not in the package")
                elif file_sizes[href] != int(size):
                    problems.append(
                        f"File {href}: ovf:size {size} but the file has {file_sizes[href]} bytes"
                    )
    disks = root.find("ovf:DiskSection", NS)
    disk_ids: set[str] = set()
    if disks is None:
        problems.append("DiskSection is missing")
    else:
        if disks.find("ovf:Info", NS) is None:
            problems.append("DiskSection has no Info")
        for d in disks.findall("ovf:Disk", NS):
            did = d.get(A + "diskId") or "?"
            disk_ids.add(did)
            cap, pop = d.get(A + "capacity") or "", d.get(A + "populatedSize") or ""
            if d.get(A + "fileRef") not in files:
                problems.append(f"Disk {did}: fileRef does not name a References/File")
            if not cap.isdigit() or int(cap) <= 0:
                problems.append(f"Disk {did}: capacity missing or not positive")
            if not pop.isdigit():
                problems.append(f"Disk {did}: populatedSize missing")
            elif cap.isdigit() and int(pop) > int(cap):
                problems.append(f"Disk {did}: populatedSize larger than capacity")
            if d.get(A + "format") != STREAM_OPTIMIZED:
                problems.append(f"Disk {did}: format is not the streamOptimized VMDK URI")
        if not disk_ids:
            problems.append("DiskSection has no Disk")
    vs = root.find("ovf:VirtualSystem", NS)
    if vs is None:
        return [*problems, "VirtualSystem is missing"]
    for section in ("Info", "OperatingSystemSection", "VirtualHardwareSection"):
        if vs.find(f"ovf:{section}", NS) is None:
            problems.append(f"VirtualSystem has no {section}")
    oss = vs.find("ovf:OperatingSystemSection", NS)
    if oss is not None and not (oss.get(A + "id") or "").isdigit():
        problems.append("OperatingSystemSection: ovf:id must be a CIM OS number")
    hw = vs.find("ovf:VirtualHardwareSection", NS)
    if hw is not None:
        if hw.find("ovf:System/vssd:VirtualSystemType", NS) is None:
            problems.append("VirtualHardwareSection/System has no VirtualSystemType")
        items = hw.findall("ovf:Item", NS)
        by_id: dict[str, ET.Element] = {}
        types: list[str] = []
        for item in items:
            iid = item.findtext("rasd:InstanceID", default="", namespaces=NS)
            rtype = item.findtext("rasd:ResourceType", default="", namespaces=NS)
            if not iid or not rtype:
                problems.append("hardware Item without InstanceID or ResourceType")
                continue
            if iid in by_id:
                problems.append(f"hardware Item InstanceID {iid} is used twice")
            by_id[iid] = item
            types.append(rtype)
            names = [c.tag.split("}")[1] for c in item]
            if names != sorted(names):
                problems.append(f"Item {iid}: rasd elements not in schema (alphabetical) order")
        for rtype, what in REQUIRED_HARDWARE.items():
            if rtype not in types:
                problems.append(f"VirtualHardwareSection has no {what} (ResourceType {rtype})")
        if not any(t in CONTROLLERS for t in types):
            problems.append("VirtualHardwareSection has no disk controller")
        for item in items:
            if item.findtext("rasd:ResourceType", namespaces=NS) != "17":
                continue
            host = item.findtext("rasd:HostResource", default="", namespaces=NS)
            if host.removeprefix("ovf:/disk/") not in disk_ids:
                problems.append(f"disk Item: HostResource {host!r} names no Disk")
            parent = item.findtext("rasd:Parent", default="", namespaces=NS)
            ptype = (
                by_id[parent].findtext("rasd:ResourceType", namespaces=NS)
                if parent in by_id
                else None
            )
            if ptype not in CONTROLLERS:
                problems.append("disk Item: Parent is not a disk controller")
        for rtype, unit in (("3", None), ("4", "byte * 2^20")):
            for item in items:
                if item.findtext("rasd:ResourceType", namespaces=NS) == rtype:
                    q = item.findtext("rasd:VirtualQuantity", default="", namespaces=NS)
                    if not q.isdigit() or int(q) <= 0:
                        problems.append(
                            f"ResourceType {rtype}: VirtualQuantity missing or not positive"
                        )
                    if unit and item.findtext("rasd:AllocationUnits", namespaces=NS) != unit:
                        problems.append(f"ResourceType {rtype}: AllocationUnits should be {unit!r}")
    return problems


def ova_problems(ova: Path, extract_to: Path) -> list[str]:
    """Order and format of the tar, manifest digests, OVF structure (after extraction)."""
    problems: list[str] = []
    with tarfile.open(ova) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        if not names or not names[0].endswith(".ovf"):
            problems.append(f"the descriptor must be the first member, got {names[:1]}")
        if len(names) < 2 or not names[1].endswith(".mf"):
            problems.append("the manifest must be the second member")
        for m in members:
            if not m.isfile() or "/" in m.name:
                problems.append(f"member {m.name}: only plain files at the top level")
        if extract_to.exists():
            shutil.rmtree(extract_to)
        extract_to.mkdir(parents=True)
        tar.extractall(extract_to, filter="data")
    with ova.open("rb") as fh:
        header = fh.read(512)
    if header[257:263] != b"ustar\x00":
        problems.append("not a POSIX ustar archive")
    ovf = extract_to / names[0]
    mf = next((extract_to / n for n in names if n.endswith(".mf")), None)
    sizes = {n: (extract_to / n).stat().st_size for n in names}
    problems += ovf_problems(ovf.read_text(encoding="utf-8"), sizes)
    if mf is None:
        return [*problems, "no manifest"]
    try:
        digests = parse_manifest(mf.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [*problems, str(exc)]
    for n in names:
        if n.endswith(".mf"):
            continue
        if n not in digests:
            problems.append(f"{n} is not in the manifest")
        elif sha256_file(extract_to / n) != digests[n]:
            problems.append(f"{n}: SHA256 does not match the manifest")
    return problems


def v2v_summary(out: str) -> str:
    """The lines of ``virt-v2v --print-source`` that show what it understood."""
    keep = ("source name:", "memory:", "nr vCPUs:", "firmware:")
    rows = [r.strip() for r in out.splitlines() if r.strip().startswith(keep)]
    lines = out.splitlines()
    for header in ("disks:", "NICs:"):
        if header in (r.strip() for r in lines):
            i = [r.strip() for r in lines].index(header)
            rows.append(header + " " + (lines[i + 1].strip() if i + 1 < len(lines) else ""))
    return "; ".join(rows) or "no output"


def main(s: Settings) -> int:
    ova = s.ova_path
    if not ova.exists():
        print(f"[ova] {ova} does not exist: run 'make ova' first")
        return 1
    x = s.work_dir / "ova-check"
    failed = 0

    def step(name: str, ok: bool, detail: str = "") -> None:
        nonlocal failed
        failed += 0 if ok else 1
        print(
            f"[ova] {'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True
        )

    problems = ova_problems(ova, x)
    step(
        "OVA structure (tar order, ustar, OVF sections/references/capacity/hardware, manifest)",
        not problems,
        "; ".join(problems),
    )
    mf = next(x.glob("*.mf"))
    # sha256sum -c wants 'hex  name': translate the OVF manifest lines
    lines = "".join(
        f"{d}  {n}\n" for n, d in parse_manifest(mf.read_text(encoding="utf-8")).items()
    )
    try:
        SHA256SUM.run(["-c", "-"], input=lines.encode(), cwd=x)
        step("sha256sum -c on the manifest", True)
    except ToolError as exc:
        step("sha256sum -c on the manifest", False, str(exc))
    for name, tool, args in (
        (
            "xmllint --noout (well-formed; no DMTF XSD is packaged)",
            XMLLINT,
            ["--noout", str(next(x.glob("*.ovf")))],
        ),
        ("qemu-img check on the VMDK", QEMU_IMG, ["check", str(x / s.vmdk_name)]),
    ):
        try:
            tool.run(args)
            step(name, True)
        except ToolError as exc:
            step(name, False, str(exc))
    info = QEMU_IMG.run(["info", "--output=json", str(x / s.vmdk_name)], check=False).stdout
    step(
        "VMDK is streamOptimized",
        '"create-type": "streamOptimized"' in info or "streamOptimized" in info,
    )
    if VIRT_V2V.available():
        try:
            out = VIRT_V2V.run(
                ["-i", "ova", str(ova), "--print-source"], env={"LIBGUESTFS_BACKEND": "direct"}
            ).stdout
            step(
                "virt-v2v -i ova --print-source (parses the OVF, verifies the manifest)",
                "source name:" in out,
                v2v_summary(out),
            )
        except ToolError as exc:
            step("virt-v2v -i ova --print-source", False, str(exc))
    else:
        step(
            "virt-v2v -i ova --print-source",
            False,
            "virt-v2v is not installed (scripts/dev/ova deps)",
        )
    print(f"[ova] validation: {'all checks passed' if not failed else f'{failed} check(s) FAILED'}")
    return 0 if not failed else 1
