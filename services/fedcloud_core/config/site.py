"""The site: its GOCDB identity and the static facts the site BDII publishes."""

from __future__ import annotations

from pydantic import Field, field_validator

from .base import Section


class Contacts(Section):
    general: str | None = Field(
        None, description="general contact e-mail", examples=["grid-admin@example.org"]
    )
    security: str | None = Field(
        None, description="security contact e-mail", examples=["security@example.org"]
    )
    sysadmin: str | None = Field(
        None, description="system administrators' e-mail", examples=["sysadmin@example.org"]
    )
    usersupport: str | None = Field(
        None, description="user support e-mail", examples=["support@example.org"]
    )

    @field_validator("*")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None:
            v = v.removeprefix("mailto:")
            if "@" not in v or " " in v:
                raise ValueError(f"not an e-mail address: {v!r}")
        return v


class SiteConfig(Section):
    name: str = Field(
        ...,
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="GOCDB site name (appears in every record and GLUE2 entry)",
        examples=["TEST-SITE"],
    )
    service_name: str | None = Field(
        None,
        description="cloud compute service name (APEL CloudComputeService); default: the site name",
    )
    description: str = Field("", description="one-line description of the site")
    url: str | None = Field(
        None, description="site web page", examples=["https://cloud.example.org"]
    )
    country: str | None = Field(None, description="ISO 3166 country code", examples=["NL"])
    city: str | None = Field(None, description="place of the site", examples=["Amsterdam"])
    latitude: float | None = Field(
        None, ge=-90, le=90, description="latitude in degrees", examples=[52.37]
    )
    longitude: float | None = Field(
        None, ge=-180, le=180, description="longitude in degrees", examples=[4.9]
    )
    production_level: str = Field(
        "production",
        pattern=r"^(production|pre-production|testing|development)$",
        description="quality level published for the services",
    )
    contacts: Contacts = Field(
        default_factory=Contacts, description="contacts published by the site BDII"
    )

    @property
    def compute_service_name(self) -> str:
        return self.service_name or self.name
