"""How the appliance reaches OpenStack: a clouds.yaml entry or the OS_* variables."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from .base import Section


class OidcConfig(Section):
    """A fresh access token for the v3oidcaccesstoken login (EGI Check-in), before each run."""

    token_endpoint: str | None = Field(
        None,
        description="OIDC token endpoint for the refresh-token grant (https; http only on "
        "loopback)",
        examples=["https://aai.egi.eu/auth/realms/egi/protocol/openid-connect/token"],
    )
    client_id: str | None = Field(
        None, description="OIDC client id of the refresh token", examples=["token-portal"]
    )
    client_secret: SecretStr | None = Field(
        None, description="OIDC client secret, if the client has one (or client_secret_file)"
    )
    refresh_token: SecretStr | None = Field(
        None, description="the refresh token (or refresh_token_file, the better way)"
    )
    scope: str = Field(
        "openid email profile voperson_id eduperson_entitlement",
        description="scopes asked for with the refresh-token grant (empty: the token's own)",
    )
    token_command: list[str] = Field(
        default_factory=list,
        description="instead of a refresh token: a command printing an access token, as an "
        "argument list (no shell)",
        examples=[["oidc-token", "egi"]],
    )
    token_command_timeout: float = Field(
        30.0, gt=0, description="seconds the token command may take"
    )
    timeout: float = Field(30.0, gt=0, description="seconds to wait for the token endpoint")
    cacert: Path | None = Field(
        None, description="CA bundle for the token endpoint (default: openstack.cacert / system)"
    )
    min_validity: float = Field(
        60.0,
        ge=0,
        description="seconds an access token must still be valid to be reused within a run",
    )

    @model_validator(mode="after")
    def _one_way(self) -> OidcConfig:
        refresh = {
            "token_endpoint": self.token_endpoint,
            "client_id": self.client_id,
            "refresh_token": self.refresh_token,
        }
        given = [k for k, v in refresh.items() if v]
        if self.token_command and (given or self.client_secret):
            raise ValueError("give either token_command or a refresh token, not both")
        if given and len(given) < len(refresh):
            missing = ", ".join(k for k in refresh if k not in given)
            raise ValueError(f"the refresh-token grant also needs: {missing}")
        if self.client_secret and not given:
            raise ValueError("client_secret without refresh_token, token_endpoint and client_id")
        if self.token_endpoint:
            url = urlsplit(self.token_endpoint)
            loopback = url.hostname in ("localhost", "127.0.0.1", "::1")
            if url.scheme != "https" and not (url.scheme == "http" and loopback):
                raise ValueError(f"token_endpoint {self.token_endpoint!r} must be an https:// URL")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.token_command or self.refresh_token)


class OpenStackConfig(Section):
    cloud: str | None = Field(
        None,
        description=(
            "name of the clouds.yaml entry to use (searched in clouds_yaml, $OS_CLIENT_CONFIG_FILE, "
            "./clouds.yaml, ~/.config/openstack/, /etc/openstack/); empty: use the OS_* environment "
            "variables. Password, v3applicationcredential and v3oidcaccesstoken auth types work."
        ),
        examples=["fedcloud"],
    )
    clouds_yaml: Path | None = Field(None, description="explicit path of clouds.yaml")
    region_name: str | None = Field(
        None, description="region (overrides clouds.yaml / OS_REGION_NAME)"
    )
    interface: str = Field(
        "public", pattern=r"^(public|internal|admin)$", description="endpoint interface"
    )
    cacert: Path | None = Field(
        None, description="CA bundle for TLS verification of the APIs (default: system CAs)"
    )
    timeout: float = Field(60.0, gt=0, description="seconds before an API call times out")
    oidc: OidcConfig = Field(
        default_factory=OidcConfig,
        description="keep the v3oidcaccesstoken login fresh: an EGI Check-in refresh token or "
        "an oidc-agent token command (a fresh access token before each run and on a 401)",
    )
