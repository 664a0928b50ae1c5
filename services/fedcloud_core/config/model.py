"""The appliance configuration: one YAML file, one typed model."""

from __future__ import annotations

from pydantic import Field, model_validator

from .accounting import AccountingConfig
from .base import Section
from .bdii import BdiiConfig
from .cloud_info import CloudInfoConfig
from .images import ImagesConfig
from .openstack import OpenStackConfig
from .paths import PathsConfig
from .scheduler import SchedulerConfig
from .site import SiteConfig
from .site_bdii import SiteBdiiConfig
from .ssm import SsmConfig
from .vos import VOConfig


class AppConfig(Section):
    """/etc/fedcloud-appliance/appliance.yaml"""

    site: SiteConfig = Field(..., description="the site as registered in GOCDB")
    openstack: OpenStackConfig = Field(
        default_factory=OpenStackConfig, description="access to OpenStack"
    )
    vos: dict[str, VOConfig] = Field(
        default_factory=dict,
        description="VO name -> the OpenStack projects of that VO",
        examples=[{"ops": {"projects": ["0123456789abcdef0123456789abcdef"]}}],
    )
    paths: PathsConfig = Field(
        default_factory=PathsConfig, description="state, spool and cache directories"
    )
    cloud_info: CloudInfoConfig = Field(
        default_factory=CloudInfoConfig, description="cloud-info job"
    )
    bdii: BdiiConfig = Field(default_factory=BdiiConfig, description="resource BDII (bdii-update)")
    site_bdii: SiteBdiiConfig = Field(default_factory=SiteBdiiConfig, description="site BDII")
    accounting: AccountingConfig = Field(
        default_factory=AccountingConfig, description="accounting extract job"
    )
    ssm: SsmConfig = Field(default_factory=SsmConfig, description="ssm send job")
    images: ImagesConfig = Field(default_factory=ImagesConfig, description="images sync job")
    scheduler: SchedulerConfig = Field(
        default_factory=SchedulerConfig, description="built-in scheduler"
    )

    @model_validator(mode="after")
    def _project_in_one_vo(self) -> AppConfig:
        seen: dict[str, str] = {}
        for vo, cfg in self.vos.items():
            for project in cfg.projects:
                if project in seen:
                    raise ValueError(
                        f"project {project} is mapped to two VOs: {seen[project]} and {vo}"
                    )
                seen[project] = vo
        known = set(self.vos)
        for sub in [*self.images.subscriptions, *self.images.registries]:
            if sub.vo not in known:
                raise ValueError(
                    f"images subscription '{sub.name}' names VO '{sub.vo}', which is not in 'vos'"
                )
        return self

    def project_vo(self) -> dict[str, str]:
        """project id/name -> VO."""
        return {p: vo for vo, cfg in self.vos.items() for p in cfg.projects}
