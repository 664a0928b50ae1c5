"""Importers of the classic site BDII's files into appliance config fragments.

- ``site.cfg`` (``/etc/glite-info-static/site/site.cfg``): ``KEY = value`` lines with
  the site name, description, web page, location, coordinates and e-mails.
- ``glite-info-site-defaults.conf`` (``/etc/bdii/gip/``): ``SITE_NAME=...`` and
  ``SITE_BDII_HOST=...``.
- ``site-urls.conf`` (``/etc/bdii/gip/``): ``<name> <ldap URL>`` per resource BDII;
  GLUE 1.3 bases (``mds-vo-name=...,o=grid``) are dropped from the URLs (the site
  BDII reads the GLUE 2 tree).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fedcloud_core.errors import ConfigError
from fedcloud_core.predecessor_config import LegacyImporter

_KV = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _read_kv(path: Path) -> list[tuple[int, str, str]]:
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KV.match(line)
        if not m:
            raise ConfigError(f"{path}:{n}: expected 'KEY = value', got {line.strip()[:60]!r}")
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out.append((n, m.group(1).upper(), value))
    return out


def _float(path: Path, n: int, key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{path}:{n}: {key} must be a number, got {value!r}") from None


_CONTACTS = {
    "SITE_EMAIL": "general",
    "SITE_SECURITY_EMAIL": "security",
    "SITE_SYSADMIN_EMAIL": "sysadmin",
    "SITE_SUPPORT_EMAIL": "usersupport",
}


def convert_site_cfg(path: Path) -> dict[str, Any]:
    site: dict[str, Any] = {}
    contacts: dict[str, str] = {}
    for n, key, value in _read_kv(path):
        if not value:
            continue
        if key == "SITE_NAME":
            site["name"] = value
        elif key == "SITE_DESC":
            site["description"] = value
        elif key == "SITE_WEB":
            site["url"] = value
        elif key == "SITE_COUNTRY":
            site["country"] = value
        elif key == "SITE_LOC":
            site["city"] = value.split(",")[0].strip()
        elif key == "SITE_LAT":
            site["latitude"] = _float(path, n, key, value)
        elif key == "SITE_LONG":
            site["longitude"] = _float(path, n, key, value)
        elif key in _CONTACTS:
            contacts[_CONTACTS[key]] = value.split(",")[0].strip().removeprefix("mailto:")
    if "name" not in site:
        raise ConfigError(f"{path}: no SITE_NAME; not a site.cfg file")
    if "general" in contacts and "sysadmin" not in contacts:
        contacts["sysadmin"] = contacts["general"]
    if contacts:
        site["contacts"] = contacts
    return {"site": site}


def convert_site_defaults(path: Path) -> dict[str, Any]:
    values = {key: value for _n, key, value in _read_kv(path)}
    out: dict[str, Any] = {}
    if values.get("SITE_NAME"):
        out["site"] = {"name": values["SITE_NAME"]}
    if values.get("SITE_BDII_HOST"):
        out["site_bdii"] = {"public_hostname": values["SITE_BDII_HOST"]}
    if not out:
        raise ConfigError(f"{path}: neither SITE_NAME nor SITE_BDII_HOST found")
    return out


_GLUE1_BASE = re.compile(r"/(mds-vo-name=[^/]*,o=grid)$", re.IGNORECASE)


def convert_site_urls(path: Path) -> dict[str, Any]:
    urls = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lower().startswith(("ldap://", "ldaps://")):
            raise ConfigError(
                f"{path}:{n}: expected '<name> ldap://host:port/base', got {line.strip()[:60]!r}"
            )
        urls.append(_GLUE1_BASE.sub("", parts[1]))
    if not urls:
        raise ConfigError(f"{path}: no resource BDII URLs")
    return {"site_bdii": {"resource_bdiis": urls}}


IMPORTERS: list[LegacyImporter] = [
    LegacyImporter(
        name="site.cfg",
        description="static site information of the classic site BDII",
        matches=lambda p: p.name == "site.cfg",
        convert=convert_site_cfg,
    ),
    LegacyImporter(
        name="glite-info-site-defaults.conf",
        description="site name and site BDII host of the classic site BDII",
        matches=lambda p: p.name == "glite-info-site-defaults.conf",
        convert=convert_site_defaults,
    ),
    LegacyImporter(
        name="site-urls.conf",
        description="the resource BDII URLs the classic site BDII aggregates",
        matches=lambda p: p.name == "site-urls.conf",
        convert=convert_site_urls,
    ),
]
