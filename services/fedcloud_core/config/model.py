"""The appliance configuration: one YAML file, one typed model."""

from __future__ import annotations

from pathlib import Path

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
        self._ssm_queues()
        return self

    def _ssm_queues(self) -> None:
        """Default ``ssm.queues`` to the extracted record types' queues; refuse a queue nobody sends."""
        extracted = self.accounting.extracted_queues()
        if self.ssm.queues is None:
            self.ssm.queues = list(dict.fromkeys(extracted.values()))
            try:
                self.ssm.check_topics(self.ssm.queues)
            except ValueError as exc:
                kinds = [
                    f"accounting.{k}_records"
                    for k, q in extracted.items()
                    if k != "cloud" and q not in self.ssm.ams_topics
                ]
                off = f", or set {' and '.join(kinds)} to false" if kinds else ""
                raise ValueError(
                    f"ssm.ams_topics: {exc} (ssm.queues defaults to the queues of the record types "
                    f"the accounting job extracts): add the topic{off}"
                ) from None
            return
        if self.scheduler.ssm <= 0 or self.scheduler.accounting <= 0:
            return  # nothing extracted here, or another sender empties the queues
        unsent = {k: q for k, q in extracted.items() if q not in self.ssm.queues}
        if unsent:
            what = ", ".join(f"{k} records into queue '{q}'" for k, q in unsent.items())
            types = ", ".join(f"accounting.{k}_records" for k in unsent if k != "cloud")
            raise ValueError(
                f"ssm.queues: the accounting job extracts {what}, which ssm.queues "
                f"({', '.join(self.ssm.queues) or 'empty'}) does not send: the queue would grow "
                f"forever. Add it to ssm.queues, or leave ssm.queues out (default: every extracted "
                f"type){', or set ' + types + ' to false' if types else ''}"
            )

    @property
    def outgoing_dir(self) -> Path:
        """The root of the outgoing dirq queues (one directory per queue below it): what the
        accounting job writes, ssm send reads, and the status page and probes count."""
        return self.accounting.outgoing_dir or self.paths.spool_dir / "outgoing"

    def project_vo(self) -> dict[str, str]:
        """project id/name -> VO."""
        return {p: vo for vo, cfg in self.vos.items() for p in cfg.projects}
