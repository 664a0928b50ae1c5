"""images sync: signed image lists -> verified cache -> Glance."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from ..x509names import parse_dn
from .base import Section
from .openstack import OpenStackConfig

_NAME = r"^[A-Za-z0-9._-]+$"
_DISK_FORMATS = {"qcow2", "raw", "vmdk", "vdi", "vhd", "vhdx", "iso", "ploop"}


class _Target(Section):
    """What every source shares: where its images go in Glance."""

    name: str = Field(
        ...,
        pattern=_NAME,
        description="subscription name (scope of cleanup)",
        examples=["fedcloud.egi.eu"],
    )
    vo: str = Field(
        ..., description="VO whose project(s) receive the images", examples=["fedcloud.egi.eu"]
    )
    images: list[str] = Field(
        default_factory=list, description="allow-list of image identifiers (empty: all)"
    )
    prefix: str = Field("", description="name prefix for this list's images")
    visibility: Literal["private", "shared", "community", "public"] = Field(
        "shared", description="Glance visibility of the replicated images"
    )
    member_cloud: str | None = Field(
        None,
        description="clouds.yaml entry scoped to the VO project, used to accept the image membership "
        "(default: the appliance's own credentials, which works where Glance policy lets them)",
    )
    enabled: bool = Field(True, description="set false to pause this subscription")


class Subscription(_Target):
    """A HEPiX image list (AppDB / vmcaster style), S/MIME signed."""

    url: HttpUrl = Field(
        ..., description="image list URL", examples=["https://lists.example.org/fedcloud.list"]
    )
    token: SecretStr | None = Field(
        None, description="access token (HTTP basic user; or token_file)"
    )
    endorser_dn: str = Field(
        ...,
        description="expected signer DN (/K=V form)",
        examples=["/DC=EU/DC=EGI/C=NL/O=Hosts/O=EGI.eu/CN=appdb.egi.eu"],
    )
    endorser_ca: str = Field(
        ...,
        description="expected signer issuer DN",
        examples=["/DC=ORG/DC=SEE-GRID/CN=SEE-GRID CA 2013"],
    )

    @field_validator("endorser_dn", "endorser_ca")
    @classmethod
    def _readable_dn(cls, v: str) -> str:
        parse_dn(v)  # AmbiguousDN (a ValueError) names what cannot be read for certain
        return v


class RegistrySource(_Target):
    """An OCI registry with the Harbor API v2 (EGI's registry of VM images)."""

    url: HttpUrl = Field(..., description="registry base URL", examples=["https://registry.egi.eu"])
    project: str = Field(
        ...,
        pattern=_NAME,
        description="Harbor project holding the images",
        examples=["egi_vm_images"],
    )
    repositories: list[str] = Field(
        default_factory=list, description="only these repositories of the project (empty: all)"
    )
    tags: list[str] = Field(
        default_factory=list, description="only artifacts with these tags (empty: all)"
    )
    username: str | None = Field(None, description="registry user (anonymous pulls without)")
    password: SecretStr | None = Field(
        None, description="registry password or robot secret (or password_file)"
    )


class ImagesConfig(Section):
    subscriptions: list[Subscription] = Field(
        default_factory=list, description="image lists to replicate"
    )
    openstack: OpenStackConfig | None = Field(
        None,
        description="the images job's own OpenStack access, same keys as 'openstack' (nothing "
        "inherited from it). In the bundle its clouds.yaml and secret files go in "
        "/etc/fedcloud-appliance/images/, all the images containers see of the config directory "
        "besides appliance.yaml. member_cloud entries are read from its clouds_yaml. Empty: "
        "the job uses 'openstack'",
        examples=[
            {
                "cloud": "fedcloud-images",
                "clouds_yaml": "/etc/fedcloud-appliance/images/clouds.yaml",
            }
        ],
    )
    registries: list[RegistrySource] = Field(
        default_factory=list, description="OCI registries (Harbor API v2) to replicate"
    )
    capath: str = Field("/etc/grid-security/certificates", description="trusted CA directory")
    crl_check: bool | None = Field(
        None,
        description="check the signer against the CRLs in capath (default: on when capath holds "
        "CRLs, as fetch-crl leaves them: <hash>.r0 or *.crl)",
    )
    max_list_age_days: float = Field(
        30.0,
        gt=0,
        description="a signed list without dc:date:expires is refused once its dc:date:created is "
        "older than this",
    )
    ca_bundle: Path | None = Field(
        None, description="CA bundle for HTTPS downloads (default: system CAs)"
    )
    formats: list[str] = Field(
        default_factory=lambda: ["qcow2"], description="preferred disk formats, in order"
    )
    name_prefix: str = Field("", description="global image name prefix")
    tag: str = Field("fedcloud-appliance", description="Glance tag marking managed images")
    concurrency: int = Field(2, ge=1, le=16, description="parallel downloads")
    upload_workers: int = Field(
        3,
        ge=1,
        le=16,
        description="images created, uploaded and shared in Glance at once (Glance's side is "
        "I/O-bound; one failing image never stops the others)",
    )
    members_recheck_hours: float = Field(
        24.0,
        ge=0,
        description="an unchanged run lists a shared image's members only when the state says "
        "they may differ from the wanted projects, or its last check is older than this "
        "(members changed by hand are corrected then; 0: list them every run)",
    )
    glance_full_scan_hours: float = Field(
        24.0,
        ge=0,
        description="a run lists only the project's images changed in Glance since the last "
        "run (updated_at), on top of what that run saw, and lists every source in full when "
        "the last complete listing is older than this (images deleted by hand are re-created "
        "then; 0: list in full every run)",
    )
    retries: int = Field(
        3, ge=0, le=10, description="retries after a failed download attempt (then reported)"
    )
    backoff: float = Field(
        2.0, ge=0, le=300, description="seconds before the first retry (doubles each time)"
    )
    connect_timeout: float = Field(
        10.0, gt=0, description="seconds to connect to a list/image server"
    )
    read_timeout: float = Field(
        60.0, gt=0, description="seconds without data before a download is retried"
    )
    min_free_mb: int = Field(
        1024, ge=0, description="MB that must stay free in the cache after a download"
    )
    max_image_gb: int = Field(
        64,
        ge=1,
        description="largest image accepted, in GiB: download, OVA disk, virtual size and "
        "converted file (larger ones are refused and reported)",
    )
    max_list_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="largest image list accepted"
    )
    convert_timeout: float = Field(
        3600.0, gt=0, description="seconds one qemu-img conversion may take"
    )
    progress: Literal["auto", "never"] = Field(
        "auto", description="progress bar when stderr is a terminal"
    )
    in_use: Literal["deactivate", "keep"] = Field(
        "deactivate",
        description="dropped images still used by servers: deactivate + make private, or keep untouched",
    )
    max_retire_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="most of a source's images one run may retire; more is refused and reported "
        "(an empty or truncated answer must not wipe the site's images)",
    )
    mass_retire_min_images: int = Field(
        4, ge=1, description="max_retire_fraction applies to sources with at least this many images"
    )
    allow_mass_retire: bool = Field(
        False,
        description="let every run retire any fraction (prefer a one-off `images sync --allow-mass-retire`)",
    )

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        out = [f.lower() for f in v]
        bad = [f for f in out if f not in _DISK_FORMATS]
        if bad or not out:
            raise ValueError(
                f"unknown disk format(s) {bad or '(empty list)'}; use {sorted(_DISK_FORMATS)}"
            )
        return out

    @model_validator(mode="after")
    def _unique_names(self) -> ImagesConfig:
        seen: set[str] = set()
        for s in [*self.subscriptions, *self.registries]:
            if s.name in seen:
                raise ValueError(f"image source name '{s.name}' is used twice (it scopes cleanup)")
            seen.add(s.name)
        return self
