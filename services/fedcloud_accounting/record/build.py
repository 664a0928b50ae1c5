"""Usage facts -> typed records (pure functions, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..extract.facts import Flavor, FloatingIP, Image, Server, Volume, epoch
from ..extract.timeline import Usage
from .cloud import CloudRecord, Status
from .extra import AcceleratorRecord, IPRecord
from .storage import StorageRecord

BENCHMARK_TYPE_SPEC = "accounting:benchmark_type"
BENCHMARK_VALUE_SPEC = "accounting:benchmark_value"
_STATE_STATUS: dict[str, Status] = {
    "running": "started",
    "paused": "paused",
    "stopped": "suspended",
    "suspended": "suspended",
    "shelved": "suspended",
}


@dataclass(frozen=True)
class SiteInfo:
    site_name: str
    service_name: str
    cloud_type: str


@dataclass
class Lookups:
    """What is read once per run and shared by every project."""

    flavors: Sequence[Flavor] = ()
    images: Mapping[str, Image] = field(default_factory=dict)
    users: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {f.id: f for f in self.flavors if f.id}
        self._by_name = {f.name: f for f in self.flavors if f.name}

    def flavor(self, server: Server) -> Flavor | None:
        """The embedded flavor (survives the flavor's deletion), else the catalog's."""
        if server.flavor is not None:
            if not server.flavor.extra_specs and server.flavor_ref:
                known = self._by_name.get(server.flavor_ref)
                if known is not None and known.extra_specs:
                    return Flavor(
                        server.flavor.id,
                        server.flavor.name,
                        server.flavor.vcpus,
                        server.flavor.ram_mb,
                        server.flavor.disk_gb,
                        server.flavor.ephemeral_gb,
                        dict(known.extra_specs),
                    )
            return server.flavor
        if server.flavor_ref:
            return self._by_id.get(server.flavor_ref) or self._by_name.get(server.flavor_ref)
        return None

    def image_id(self, image_id: str | None) -> str | None:
        """The marketplace URI of the image when it has one, else its id."""
        if not image_id:
            return None
        img = self.images.get(image_id)
        return img.mpuri if img is not None and img.mpuri else image_id


def status_of(server: Server, use: Usage) -> Status:
    """APEL status at the window end (from the state history, so a re-run gives the same)."""
    if use.ended:
        return "completed"
    if server.status == "ERROR":
        return "error"
    if server.status == "UNKNOWN":
        return "unknown"
    return _STATE_STATUS.get(use.state, "unknown")


def benchmark(flavor: Flavor) -> tuple[str | None, float | None]:
    kind = flavor.extra_specs.get(BENCHMARK_TYPE_SPEC)
    raw = flavor.extra_specs.get(BENCHMARK_VALUE_SPEC)
    if raw is None:
        return kind, None
    try:
        return kind, float(raw)
    except ValueError:
        raise ValueError(
            f"flavor {flavor.name}: {BENCHMARK_VALUE_SPEC}={raw!r} is not a number"
        ) from None


def public_ips_by_server(ips: Iterable[FloatingIP]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ip in ips:
        if ip.device_id:
            out[ip.device_id] = out.get(ip.device_id, 0) + 1
    return out


def cloud_record(
    server: Server,
    use: Usage,
    flavor: Flavor,
    vo: str,
    site: SiteInfo,
    lookups: Lookups,
    public_ips: int | None,
) -> CloudRecord:
    bench_type, bench = benchmark(flavor)
    return CloudRecord(
        vm_uuid=server.id,
        site_name=site.site_name,
        cloud_compute_service=site.service_name,
        machine_name=server.name or None,
        local_user_id=server.user_id,
        local_group_id=server.project_id,
        global_user_name=lookups.users.get(server.user_id or "") or None,
        fqan=vo,
        status=status_of(server, use),
        start_time=server.created,
        end_time=use.horizon if use.ended else None,
        suspend_duration=use.suspended,
        wall_duration=use.wall,
        cpu_duration=use.wall * flavor.vcpus,
        cpu_count=flavor.vcpus,
        public_ip_count=public_ips,
        memory=flavor.ram_mb,
        disk=flavor.disk_gb + flavor.ephemeral_gb,
        benchmark_type=bench_type,
        benchmark=bench,
        image_id=lookups.image_id(server.image_id),
        cloud_type=site.cloud_type,
    )


def storage_record(
    volume: Volume, vo: str, site: SiteInfo, users: Mapping[str, str], end: datetime
) -> StorageRecord:
    return StorageRecord(
        record_id=volume.id,
        create_time=end,
        storage_system=site.service_name,
        site=site.site_name,
        local_user=volume.user_id,
        local_group=volume.project_id,
        user_identity=users.get(volume.user_id or "") or None,
        group=vo,
        start_time=volume.created,
        end_time=end,
        capacity_bytes=volume.size_gb * 1024**3,
    )


def ip_records(
    project_id: str, vo: str, ips: Sequence[FloatingIP], site: SiteInfo, end: datetime
) -> list[IPRecord]:
    """One record per IP version in use (an IPv6 count never overwrites the IPv4 one)."""
    out = []
    for version in (4, 6):
        n = sum(1 for ip in ips if ip.version == version)
        if n or version == 4:
            out.append(
                IPRecord(
                    measurement_time=epoch(end),
                    site_name=site.site_name,
                    cloud_compute_service=site.service_name,
                    cloud_type=site.cloud_type,
                    local_group=project_id,
                    fqan=vo,
                    ip_version=version,
                    ip_count=n,
                )
            )
    return out


def _count(value: str, what: str, flavor: Flavor) -> int:
    """A whole number of devices from a flavor extra spec; ValueError naming the flavor otherwise."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(
            f"flavor {flavor.name or flavor.id!r}: {what} {value!r} is not a whole number of devices"
        )
    return int(text)


def accelerators(flavor: Flavor) -> tuple[int, str, str | None, str | None]:
    """(count, type, model, vendor) from ``Accelerator:*`` or ``pci_passthrough:alias`` specs.

    Raises ValueError (naming the flavor and the spec) for a count that is not a whole number.
    """
    specs = flavor.extra_specs
    if specs.get("Accelerator:Number"):
        return (
            _count(specs["Accelerator:Number"], "Accelerator:Number", flavor),
            specs.get("Accelerator:Type", "GPU"),
            specs.get("Accelerator:Model"),
            specs.get("Accelerator:Vendor"),
        )
    alias = specs.get("pci_passthrough:alias")
    if alias:
        count, model = 0, []
        for part in alias.split(","):
            name, _, n = part.partition(":")
            count += (
                _count(n, f"pci_passthrough:alias count of {name.strip()!r}", flavor) if n else 1
            )
            model.append(name.strip())
        return count, "GPU", ",".join(model) or None, None
    return 0, "GPU", None, None


def accelerator_record(
    record: CloudRecord, flavor: Flavor, end: datetime
) -> AcceleratorRecord | None:
    count, kind, model, vendor = accelerators(flavor)
    if count <= 0:
        return None
    return AcceleratorRecord(
        measurement_month=end.month,
        measurement_year=end.year,
        associated_record=record.vm_uuid,
        global_user_name=record.global_user_name,
        fqan=record.fqan or "",
        site_name=record.site_name,
        count=count,
        type=kind,
        model=model,
        vendor=vendor,
        active_duration=record.wall_duration * count,
        available_duration=record.wall_duration * count,
        benchmark_type=record.benchmark_type,
        benchmark=record.benchmark,
    )
