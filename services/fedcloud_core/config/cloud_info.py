"""cloud-info: OpenStack -> GLUE2 snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .base import Section


class CloudInfoAmsConfig(Section):
    """Where ``cloud-info --publish ams`` sends the GLUE 2.1 JSON (as EGI's cloud-info-provider)."""

    host: str = Field("msg.argo.grnet.gr", description="AMS host")
    port: int = Field(443, ge=1, le=65535, description="AMS HTTPS port")
    auth_port: int = Field(
        8443, ge=1, le=65535, description="AMS port of the X.509 token exchange (authn service)"
    )
    project: str = Field("egi_cloud_info", description="AMS project of the cloud-info documents")
    topic: str | None = Field(
        None,
        description="AMS topic; default: SITE_<site.name>_ENDPOINT_<cloud_info.gocdb_id>, "
        "the EGI convention (the topic must exist in AMS)",
        examples=["SITE_EXAMPLE-SITE_ENDPOINT_12345G0"],
    )
    token: SecretStr | None = Field(
        None, description="AMS token, skipping the X.509 exchange (or token_file)"
    )
    certificate: Path = Field(
        Path("/etc/grid-security/hostcert.pem"),
        description="host certificate for the AMS token exchange",
    )
    key: Path = Field(Path("/etc/grid-security/hostkey.pem"), description="host key")
    capath: Path = Field(
        Path("/etc/grid-security/certificates"),
        description="CA directory (hashed, 'openssl rehash'): verifies the AMS certificate",
    )
    timeout: float = Field(60.0, gt=0, description="seconds to wait for an AMS answer")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")
    retries: int = Field(
        3, ge=0, le=20, description="retries on connection errors and HTTP 408/502/503/504"
    )
    backoff: float = Field(
        2.0, ge=0, description="first backoff delay in seconds (doubles each time)"
    )


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

    def gocdb_id_needed_by(self) -> list[str]:
        """The settings that send the GLUE 2.1 JSON to EGI's cloud-info-api, which drops a
        site without ``OtherInfo.gocdb_id``. Extend here when another JSON output is added."""
        needs = []
        if self.format == "glue21-json":
            needs.append("format is 'glue21-json'")
        if self.publish == "ams":
            needs.append("publish is 'ams'")
        return needs

    @model_validator(mode="after")
    def _gocdb_id_for_egi(self) -> CloudInfoConfig:
        needs = self.gocdb_id_needed_by()
        if needs and not (self.gocdb_id or "").strip():
            # reported under the key itself: "cloud_info.gocdb_id: required when ..."
            raise ValidationError.from_exception_data(
                "CloudInfoConfig",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "gocdb_id_required",
                            "required when {needs} (EGI's cloud-info-api reads "
                            "OtherInfo.gocdb_id: the GOCDB id of the cloud compute service)",
                            {"needs": " and ".join(needs)},
                        ),
                        loc=("gocdb_id",),
                        input=self.gocdb_id,
                    )
                ],
            )
        return self

    platform: str = Field(
        "x86_64", description="CPU platform of the flavors (GLUE2ExecutionEnvironmentPlatform)"
    )
    publish: Literal["none", "ams"] = Field(
        "none",
        description="also publish the GLUE 2.1 JSON on every run ('ams': to cloud_info.ams, as "
        "EGI's cloud-info-provider; needs gocdb_id); 'cloud-info --publish ams' does it once",
    )
    ams: CloudInfoAmsConfig = Field(
        default_factory=CloudInfoAmsConfig, description="AMS publisher of the cloud-info JSON"
    )
