"""Every job, command and predecessor-config importer of the appliance, collected from the
service packages (``<service>.jobs``: ``JOBS``, ``COMMANDS``; ``<service>.predecessor_config``:
``IMPORTERS``, for the services that have one).

This is the only place that imports the services; the services import only the core.
"""

from __future__ import annotations

import importlib

from fedcloud_core.commands import CommandSpec
from fedcloud_core.jobs import JobSpec
from fedcloud_core.predecessor_config import LegacyImporter, openstack_rc

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


def commands() -> list[CommandSpec]:
    out: list[CommandSpec] = []
    for svc in SERVICES:
        out.extend(importlib.import_module(f"{svc}.jobs").COMMANDS)
    return out


def importers() -> list[LegacyImporter]:
    out: list[LegacyImporter] = [openstack_rc.IMPORTER]
    for svc in SERVICES:
        try:
            module = importlib.import_module(f"{svc}.predecessor_config")
        except ModuleNotFoundError as exc:
            if exc.name != f"{svc}.predecessor_config":
                raise
            continue  # this service replaces no predecessor with a config file of its own
        out.extend(module.IMPORTERS)
    return out


def job(name: str) -> JobSpec:
    for spec in jobs():
        if spec.name == name or spec.key == name:
            return spec
    raise KeyError(name)
