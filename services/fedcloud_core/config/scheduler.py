"""The built-in scheduler: how often each job runs (minutes; 0 disables a job)."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class SchedulerConfig(Section):
    cloud_info: int = Field(10, ge=0, description="cloud-info + bdii-update every N minutes")
    site_bdii: int = Field(10, ge=0, description="site-bdii every N minutes")
    accounting: int = Field(60, ge=0, description="accounting extract every N minutes")
    ssm: int = Field(360, ge=0, description="ssm send every N minutes")
    images: int = Field(240, ge=0, description="images sync every N minutes")
    jitter: int = Field(30, ge=0, description="random start delay in seconds, to spread load")
    retries: int = Field(
        3,
        ge=0,
        le=10,
        description="re-runs of a scheduled run that failed transient (exit 75), before the "
        "job's next regular run; 0: none",
    )
    retry_backoff: int = Field(
        60,
        ge=1,
        description="seconds before the first re-run of a run that failed transient; "
        "doubled for each next one (60: after 1, 2, 4 minutes)",
    )
    max_partial_runs: int = Field(
        3,
        ge=0,
        description="'status --check' reports a job unhealthy after this many partial runs "
        "(some items failed) in a row; 0: never",
    )
