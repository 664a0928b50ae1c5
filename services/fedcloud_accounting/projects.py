"""Which projects are accounted, and for which VO.

The config's ``vos`` maps VOs to project ids or names; optionally every Keystone
project carrying a property (EGI convention ``egi.VO``) or a tag with a prefix
(``VO:ops``) is added with the property's value (the rest of the tag) as its VO. A configured project Keystone does not know, or a
tagged project without a usable VO, is reported and skipped: the others go on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fedcloud_core.config import AppConfig
from fedcloud_core.errors import OpenStackError
from fedcloud_core.report import RunReport

from .extract.facts import Project
from .extract.source import UsageSource

log = logging.getLogger(__name__)
_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Target:
    id: str
    name: str
    vo: str


def resolve(config: AppConfig, source: UsageSource, report: RunReport) -> list[Target]:
    mapping = config.project_vo()
    prop = config.accounting.discover_vo_property
    needs_keystone = bool(prop or config.accounting.discover_vo_tag_prefix) or any(
        not _ID.match(k) for k in mapping
    )
    projects: Sequence[Project] | None
    try:
        projects = source.projects()
    except OpenStackError as exc:
        projects = None
        if needs_keystone:
            report.error(
                f"cannot list Keystone projects ({exc}): projects given by name and "
                "VO-property discovery are skipped this run"
            )
        else:
            report.warn(f"cannot list Keystone projects ({exc}); using the configured project ids")
    by_id = {p.id: p for p in projects or ()}
    by_name: dict[str, list[Project]] = {}
    for p in projects or ():
        by_name.setdefault(p.name, []).append(p)

    targets: dict[str, Target] = {}
    for key, vo in mapping.items():
        if key in by_id:
            targets[key] = Target(key, by_id[key].name, vo)
        elif len(by_name.get(key, [])) == 1:
            p = by_name[key][0]
            targets[p.id] = Target(p.id, p.name, vo)
        elif len(by_name.get(key, [])) > 1:
            report.error(
                f"vos.{vo}.projects: the name {key!r} matches several projects "
                f"({', '.join(sorted(p.id for p in by_name[key]))}); give the project id"
            )
        elif projects is None and _ID.match(key):
            targets[key] = Target(key, key, vo)
        elif projects is not None:
            report.error(f"vos.{vo}.projects: project {key!r} does not exist in Keystone; skipped")
    prefix = config.accounting.discover_vo_tag_prefix
    for p in projects or ():
        found = _discovered_vo(p, prop, prefix)
        if found is None:
            continue
        how, vo = found
        if p.id in targets:
            if targets[p.id].vo != vo:
                report.warn(
                    f"project {p.id} ({p.name}): Keystone says {how}={vo!r}, the config "
                    f"says {targets[p.id].vo!r}; the config wins"
                )
            continue
        if not vo or any(c in vo for c in "\n%") or not vo.isascii():
            report.error(
                f"project {p.id} ({p.name}) has {how}={vo!r}, which is not a usable VO "
                "name: the project is not accounted (unmapped)"
            )
            continue
        targets[p.id] = Target(p.id, p.name, vo)
    return [targets[k] for k in sorted(targets)]


def _discovered_vo(p: Project, prop: str | None, prefix: str | None) -> tuple[str, str] | None:
    """(where it was found, VO) from the project's property or tag, if it has one."""
    if prop and prop in p.properties:
        return prop, p.properties[prop].strip()
    if prefix:
        for tag in p.tags:
            if tag.startswith(prefix):
                return f"tag {prefix}", tag[len(prefix) :].strip()
    return None
