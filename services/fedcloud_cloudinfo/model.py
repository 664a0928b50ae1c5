"""The typed site model: what one collection found, ready for the pure renderers.

Everything here is plain data (frozen dataclasses, tuples sorted by id), so that
rendering the same model twice gives byte-identical output. IDs follow the GLUE2
conventions of the EGI Federated Cloud (see ``shared/spec/infosys.md`` section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Accelerator:
    """A virtual accelerator attached to a flavor (extra specs ``Accelerator:*``)."""

    type: str
    number: int
    vendor: str | None = None
    model: str | None = None
    memory: int | None = None  # MiB


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB
    ephemeral: int = 0
    is_public: bool = True
    accelerator: Accelerator | None = None
    infiniband: bool = False
    benchmarks: tuple[tuple[str, str], ...] = ()  # (type, value), sorted


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    visibility: str  # public | community | shared | private
    owner: str | None = None
    version: str | None = None
    marketplace_url: str | None = None
    description: str | None = None
    os_family: str = "linux"
    os_name: str | None = None
    os_version: str | None = None
    platform: str | None = None
    min_ram: int = 0  # MiB
    disk_size: int | None = None  # GiB, rounded up
    other_info: tuple[tuple[str, str], ...] = ()  # (key, value), sorted


@dataclass(frozen=True)
class Share:
    """One Keystone project of one VO."""

    vo: str
    project_id: str
    project_name: str | None = None
    domain_name: str | None = None
    max_instances: int | None = None  # None: unknown; -1 unlimited
    max_cores: int | None = None
    max_ram: int | None = None
    used_cores: int | None = None  # vCPUs in use (Nova quota usage); None: unknown
    # server counts by GLUE2 state (the Nova status mapping is in collect.STATE_OF_STATUS)
    running: int = 0
    waiting: int = 0
    suspended: int = 0
    halted: int = 0
    flavor_ids: tuple[str, ...] = ()
    image_ids: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Every counted server: always the sum of the per-state counts (never more)."""
        return self.running + self.waiting + self.suspended + self.halted

    @property
    def free_cores(self) -> int | None:
        """vCPUs left in the cores quota; None when the quota or the usage is unknown or unlimited."""
        if self.max_cores is None or self.max_cores < 0 or self.used_cores is None:
            return None
        return max(0, self.max_cores - self.used_cores)


@dataclass(frozen=True)
class Endpoint:
    url: str  # the public Keystone URL
    authentication: str = "oidc"
    nova_version: str = "2.1"  # the interface (API) version
    nova_microversion: str | None = None  # the max microversion = implementation version
    glance_version: str | None = None
    keystone_version: str | None = None
    issuer_ca: str | None = None
    trusted_cas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Site:
    name: str  # GOCDB site name
    endpoint: Endpoint
    creation_time: datetime  # UTC
    validity: int = 3600
    production_level: str = "production"
    platform: str = "x86_64"
    gocdb_id: str | None = None
    provider_name: str = "fedcloud-appliance"
    provider_version: str = "0"
    total_logical_cpus: int | None = None  # hypervisor totals; None: not readable (placeholder)
    total_physical_cpus: int | None = None
    flavors: tuple[Flavor, ...] = ()
    images: tuple[Image, ...] = ()
    shares: tuple[Share, ...] = ()
    vos: tuple[str, ...] = field(default=())

    # --- GLUE2 identifiers ---------------------------------------------------------------

    @property
    def service_id(self) -> str:
        return f"{self.endpoint.url}_cloud.compute"

    @property
    def endpoint_id(self) -> str:
        return f"{self.endpoint.url}_OpenStack_v3_{self.endpoint.authentication}"

    @property
    def manager_id(self) -> str:
        return f"{self.service_id}_manager"

    def share_id(self, share: Share) -> str:
        return f"{self.service_id}_share_{share.vo}_{share.project_id}"

    @property
    def all_vos(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.vos) | {s.vo for s in self.shares}))

    def flavor(self, flavor_id: str) -> Flavor | None:
        for f in self.flavors:
            if f.id == flavor_id:
                return f
        return None
