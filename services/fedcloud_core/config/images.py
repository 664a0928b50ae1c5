"""images sync: signed image lists -> verified cache -> Glance."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, SecretStr

from .base import Section


class Subscription(Section):
    name: str = Field(..., pattern=r"^[A-Za-z0-9._-]+$", description="subscription name (scope of cleanup)",
                      examples=["fedcloud.egi.eu"])
    url: HttpUrl = Field(..., description="image list URL", examples=["https://lists.example.org/fedcloud.list"])
    vo: str = Field(..., description="VO whose project receives the images", examples=["fedcloud.egi.eu"])
    token: SecretStr | None = Field(None, description="access token (HTTP basic user; or token_file)")
    endorser_dn: str = Field(..., description="expected signer DN (/K=V form)",
                             examples=["/DC=EU/DC=EGI/C=NL/O=Hosts/O=EGI.eu/CN=appdb.egi.eu"])
    endorser_ca: str = Field(..., description="expected signer issuer DN",
                             examples=["/DC=ORG/DC=SEE-GRID/CN=SEE-GRID CA 2013"])
    images: list[str] = Field(default_factory=list, description="allow-list of dc:identifier (empty: all)")
    prefix: str = Field("", description="name prefix for this list's images")
    visibility: Literal["private", "shared", "community", "public"] = Field(
        "shared", description="Glance visibility of the replicated images"
    )
    enabled: bool = Field(True, description="set false to pause this subscription")


class ImagesConfig(Section):
    subscriptions: list[Subscription] = Field(default_factory=list, description="image lists to replicate")
    capath: str = Field("/etc/grid-security/certificates", description="trusted CA directory")
    formats: list[str] = Field(default_factory=lambda: ["qcow2"], description="preferred disk formats, in order")
    name_prefix: str = Field("", description="global image name prefix")
    tag: str = Field("fedcloud-appliance", description="Glance tag marking managed images")
    concurrency: int = Field(2, ge=1, le=16, description="parallel downloads")
    retries: int = Field(3, ge=0, le=10, description="attempts per download")
