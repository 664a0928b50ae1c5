"""Every job, tool and legacy importer of the appliance, collected from the service packages.

This is the only place that imports the services; the services import only the core.
"""

from __future__ import annotations

import importlib

from fedcloud_core.jobs import JobSpec
from fedcloud_core.legacy import LegacyImporter, openstack_rc
from fedcloud_core.tools import ToolSpec

SERVICES = (
    "fedcloud_cloudinfo",
    "fedcloud_sitebdii",
    "fedcloud_accounting",
    "fedcloud_ssm",
    "fedcloud_images",
)


def jobs() -> list[JobSpec]:
    out: list[JobSpec] = []
    for svc in SERVICES:
        out.extend(importlib.import_module(f"{svc}.jobs").JOBS)
    return out


def tools() -> list[ToolSpec]:
    out: list[ToolSpec] = []
    for svc in SERVICES:
        out.extend(getattr(importlib.import_module(f"{svc}.jobs"), "TOOLS", []))
    return out


def importers() -> list[LegacyImporter]:
    out: list[LegacyImporter] = [openstack_rc.IMPORTER]
    for svc in SERVICES:
        out.extend(importlib.import_module(f"{svc}.legacy").IMPORTERS)
    return out


def job(name: str) -> JobSpec:
    for spec in jobs():
        if spec.name == name or spec.key == name:
            return spec
    raise KeyError(name)
