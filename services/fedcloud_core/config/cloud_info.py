"""cloud-info: OpenStack -> GLUE2 snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from .base import Section


class CloudInfoConfig(Section):
    format: Literal["glue20-ldif", "glue21-ldif", "glue21-json"] = Field(
        "glue20-ldif", description="snapshot format written by cloud-info"
    )
    output: Path | None = Field(
        None,
        description="also write the snapshot in 'format' to this file (the resource BDII always "
        "reads <state_dir>/cloud-info/snapshot.ldif)",
    )
    publish_all_images: bool = Field(
        False, description="publish every active image, not only those with marketplace metadata"
    )
    validity: int = Field(3600, gt=0, description="GLUE2EntityValidity in seconds")
    timeout: float = Field(300.0, gt=0, description="seconds the whole collection may take")
    workers: int = Field(
        4, ge=1, le=32, description="parallel API calls for per-project and per-item lookups"
    )
    authentication: str = Field(
        "oidc",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="authentication method of the public endpoint (part of GLUE2EndpointID)",
    )
    endpoint_url: str | None = Field(
        None,
        description="public Keystone URL to publish; default: the auth URL of the OpenStack session",
        examples=["https://keystone.example.org:5000/v3"],
    )
    issuer_ca: str | None = Field(
        None,
        description="DN of the CA that issued the endpoint's TLS certificate (GLUE2EndpointIssuerCA)",
        examples=["/C=NL/O=GEANT Vereniging/CN=GEANT OV RSA CA 4"],
    )
    trusted_cas: list[str] = Field(
        default_factory=lambda: ["IGTF"], description="GLUE2EndpointTrustedCA values"
    )
    gocdb_id: str | None = Field(
        None,
        description="GOCDB id of the cloud compute service (OtherInfo.gocdb_id in the JSON)",
        examples=["12345G0"],
    )
    platform: str = Field(
        "x86_64", description="CPU platform of the flavors (GLUE2ExecutionEnvironmentPlatform)"
    )
