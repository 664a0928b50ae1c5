"""How the appliance reaches OpenStack: a clouds.yaml entry or the OS_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


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
