"""Importers of cASO's config: ``caso.conf`` (oslo ini) and ``voms.json`` (VO -> projects).

Secrets (``[keystone_auth] password``, application credential secrets, tokens) are
never copied: the Keystone settings without them are returned under ``x-clouds-yaml``
(printed as a comment, for clouds.yaml), with the secret left for the operator.
"""

from __future__ import annotations

import configparser
import json
import logging
from pathlib import Path, PurePosixPath
from typing import Any

from fedcloud_core.errors import ConfigError
from fedcloud_core.predecessor_config import LegacyImporter

log = logging.getLogger(__name__)

_SECRETS = {"password", "application_credential_secret", "token", "access_token", "client_secret"}
_AUTH_KEYS = {
    "auth_url",
    "username",
    "user_id",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "project_domain_name",
    "project_domain_id",
    "application_credential_id",
    "application_credential_name",
    "identity_provider",
    "protocol",
}


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]


def convert_voms_json(path: Path) -> dict[str, Any]:
    """``{"<VO>": {"projects": [...]}}`` (older files say ``tenants``) -> ``vos``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the VO mapping: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must map VO names to {{'projects': [...]}}")
    vos: dict[str, Any] = {}
    for vo, entry in doc.items():
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{path}: {vo}: expected {{'projects': [...]}}, got {type(entry).__name__}"
            )
        projects = entry.get("projects", entry.get("tenants"))
        if isinstance(projects, str):
            projects = [projects]
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            raise ConfigError(f"{path}: {vo}: 'projects' must be a list of project ids or names")
        if projects:
            vos[vo] = {"projects": list(dict.fromkeys(projects))}
        else:
            log.warning("%s: VO %s has no projects; left out", path, vo)
    return {"vos": vos}


def convert_caso_conf(path: Path) -> dict[str, Any]:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse caso.conf: {exc}") from None
    d = parser.defaults()
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if d.get("site_name"):
        out["site"] = {"name": d["site_name"].strip()}
        if d.get("service_name") and d["service_name"].strip() != d["site_name"].strip():
            out["site"]["service_name"] = d["service_name"].strip()
    acct: dict[str, Any] = {}
    messengers = _list(d.get("messengers", "ssm"))
    if not any(m.startswith("ssm") for m in messengers):
        log.warning(
            "%s: messengers = %s: none writes the APEL queue; the appliance always does",
            path,
            ", ".join(messengers) or "(none)",
        )
    if parser.has_section("ssm"):
        ssm = dict(parser.items("ssm"))
        if ssm.get("output_path"):
            queue = PurePosixPath(ssm["output_path"].strip().rstrip("/"))
            acct["outgoing_dir"] = str(queue.parent)
            acct["queues"] = {"cloud": queue.name}
        if ssm.get("max_size"):
            try:
                acct["records_per_message"] = int(ssm["max_size"])
            except ValueError:
                raise ConfigError(
                    f"{path}: [ssm] max_size: not an integer: {ssm['max_size']!r}"
                ) from None
    if d.get("vo_property"):
        acct["discover_vo_property"] = d["vo_property"].strip()
    record_types = _list(d.get("record_types", ""))
    if record_types:
        acct["storage_records"] = "storage" in record_types
        acct["ip_records"] = "ip" in record_types
        acct["accelerator_records"] = "accelerator" in record_types
    if acct:
        out["accounting"] = acct
    projects = _list(d.get("projects", ""))
    mapping_file = d.get("mapping_file")
    mapped: set[str] = set()
    if mapping_file:
        mp = Path(mapping_file.strip())
        mp = mp if mp.is_absolute() else path.parent / mp
        if mp.is_file():
            out.update(convert_voms_json(mp))
            mapped = {p for v in out["vos"].values() for p in v["projects"]}
        else:
            log.warning("%s: mapping_file %s not found; import it with its own path", path, mp)
    unmapped = [p for p in projects if p not in mapped]
    if unmapped:
        log.warning(
            "%s: projects without a VO mapping (add them under 'vos'): %s",
            path,
            ", ".join(unmapped),
        )
        extra["x-unmapped-projects"] = unmapped
    if parser.has_section("keystone_auth"):
        auth_items = dict(parser.items("keystone_auth"))
        auth = {k: v.strip() for k, v in auth_items.items() if k in _AUTH_KEYS and k not in d}
        left_out = sorted(k for k in auth_items if k in _SECRETS)
        entry: dict[str, Any] = {"auth": auth}
        if auth_items.get("auth_type"):
            entry["auth_type"] = auth_items["auth_type"].strip()
        if d.get("region_name"):
            entry["region_name"] = d["region_name"].strip()
        if left_out:
            entry["x-secrets-not-copied"] = left_out
        out["openstack"] = {"cloud": "fedcloud"}
        extra["x-clouds-yaml"] = {"clouds": {"fedcloud": entry}}
    return {**out, **extra}


IMPORTERS: list[LegacyImporter] = [
    LegacyImporter(
        name="caso.conf",
        description="cASO configuration (site, projects, [ssm] queue, [keystone_auth])",
        matches=lambda p: p.name.startswith("caso") and p.suffix == ".conf",
        convert=convert_caso_conf,
    ),
    LegacyImporter(
        name="voms.json",
        description='cASO VO mapping: {"<VO>": {"projects": [...]}}',
        matches=lambda p: p.name.endswith("voms.json"),
        convert=convert_voms_json,
    ),
]
