"""Packaging: qcow2 for Glance, streamOptimized VMDK + OVF 1.0 + SHA256 manifest -> .ova (ustar)."""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .build_tools import QEMU_IMG
from .settings import Settings

log = logging.getLogger(__name__)

OVF_TEMPLATE = "ova/appliance.ovf.j2"


@dataclass(frozen=True)
class OvfParams:
    """Every value the OVF template uses (StrictUndefined: a missing one is an error)."""

    name: str
    version: str
    disk_file: str
    disk_file_size: int
    capacity: int
    populated_size: int
    cpus: int
    memory_mb: int
    product: str = "EGI Federated Cloud appliance"
    vendor: str = "EGI Foundation"
    product_url: str = "https://www.egi.eu/service/cloud-compute/"
    annotation: str = (
        "Publishes the site's information (BDII), accounts usage (APEL) and replicates VO images "
        "for an OpenStack site. Configure it with cloud-init user data: see docs/ova.md."
    )
    network: str = "VM Network"
    os_cim_id: int = 96  # CIM_OperatingSystem: Debian 64-bit
    os_description: str = "Debian GNU/Linux 12 (bookworm) 64-bit"
    vmware_os_type: str = "debian11_64Guest"
    hardware_family: str = "vmx-13"


def template_environment(templates_dir: Path) -> Environment:
    """The builder's Jinja2 environment: a value the template uses but is not given is an error."""
    return Environment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=True,
        keep_trailing_newline=True,
    )


def render_ovf(params: OvfParams, templates_dir: Path) -> str:
    env = template_environment(templates_dir)
    return env.get_template(OVF_TEMPLATE).render(**asdict(params))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_text(files: list[Path]) -> str:
    """``SHA256(name)= hex`` lines: no space before '(' nor around '=' (ESXi and VirtualBox parse it so)."""
    return "".join(f"SHA256({p.name})= {sha256_file(p)}\n" for p in files)


def parse_manifest(text: str) -> dict[str, str]:
    """name -> hex digest; raises ValueError naming the bad line."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        head, sep, digest = line.partition(")= ")
        if not sep or not head.startswith("SHA256(") or len(digest) != 64:
            raise ValueError(f"manifest line {n}: not 'SHA256(file)= <64 hex>': {line!r}")
        try:
            int(digest, 16)
        except ValueError:
            raise ValueError(f"manifest line {n}: digest is not hex: {digest!r}") from None
        out[head.removeprefix("SHA256(")] = digest
    return out


def write_ova(ova: Path, members: list[Path]) -> None:
    """POSIX ustar, members in the given order (descriptor, manifest, disk), owner root, no dirs."""
    tmp = ova.with_suffix(".ova.tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in members:
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o644
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    tmp.replace(ova)


def populated_bytes(raw: Path) -> int:
    """Bytes of the raw disk that hold data (qemu-img map; holes are not counted)."""
    out = QEMU_IMG.run(["map", "-f", "raw", "--output=json", str(raw)]).stdout
    return sum(int(e["length"]) for e in json.loads(out) if e.get("data"))


@dataclass(frozen=True)
class Outputs:
    qcow2: Path
    ova: Path
    ovf: Path
    manifest: Path
    vmdk: Path


def package(s: Settings) -> Outputs:
    raw = s.raw_disk
    out = s.out_dir
    out.mkdir(parents=True, exist_ok=True)
    stage = s.work_dir / "ova"
    stage.mkdir(parents=True, exist_ok=True)
    for old in stage.iterdir():
        old.unlink()
    qcow2 = s.qcow2_path
    qcow2_tmp = qcow2.with_suffix(".qcow2.tmp")
    vmdk = stage / s.vmdk_name
    # both conversions are single-threaded deflate: run them side by side (2 cores)
    jobs = [
        ["convert", "-f", "raw", "-O", "qcow2", "-c", "-o", "compat=1.1", str(raw), str(qcow2_tmp)],
        [
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized,adapter_type=ide",
            str(raw),
            str(vmdk),
        ],
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(QEMU_IMG.run, args) for args in jobs]:
            future.result()
    qcow2_tmp.replace(qcow2)
    params = OvfParams(
        name=s.name,
        version=s.version,
        disk_file=vmdk.name,
        disk_file_size=vmdk.stat().st_size,
        capacity=raw.stat().st_size,
        populated_size=populated_bytes(raw),
        cpus=s.cpus,
        memory_mb=s.memory_mb,
    )
    ovf = stage / f"{s.name}.ovf"
    ovf.write_text(render_ovf(params, s.templates_dir), encoding="utf-8")
    mf = stage / f"{s.name}.mf"
    mf.write_text(manifest_text([ovf, vmdk]), encoding="utf-8")
    write_ova(s.ova_path, [ovf, mf, vmdk])
    return Outputs(qcow2=qcow2, ova=s.ova_path, ovf=ovf, manifest=mf, vmdk=vmdk)
