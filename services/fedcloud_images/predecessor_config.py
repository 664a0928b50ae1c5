"""Importers of the older replicators' config: atrope's ``hepix.yaml`` / ``sources.yaml`` and
cloudkeeper's ``image-lists.conf``.

Tokens are never copied into the appliance config: the importer notes where one was
found (``x-images-secrets``) so the operator puts it in a ``token_file``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from fedcloud_core.errors import ConfigError
from fedcloud_core.predecessor_config import LegacyImporter, is_secret

# AppDB's endorser: the default for lists that do not name one (cloudkeeper's format cannot)
APPDB_DN = "/DC=EU/DC=EGI/C=NL/O=Hosts/O=EGI.eu/CN=appdb.egi.eu"
APPDB_CA = "/DC=ORG/DC=SEE-GRID/CN=SEE-GRID CA 2013"
_VO_IN_URL = re.compile(r"/store/vo/([^/]+)/")


def _name(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw.strip()).strip("-") or "list"


def _split_token(url: str) -> tuple[str, str | None]:
    """``https://TOKEN:x-oauth-basic@host/...`` -> (``https://host/...``, TOKEN); a secret
    query parameter (``?token=...``, ``?access_token=...``) is taken out the same way."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    secrets = [v for k, v in query if is_secret(k) and v]
    if parts.username or secrets:
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        kept = urlencode([(k, v) for k, v in query if not is_secret(k)]) if secrets else parts.query
        return urlunsplit(
            (parts.scheme, netloc, parts.path, kept, parts.fragment)
        ), parts.username or secrets[0]
    return url, None


def _vo_from(url: str, fallback: str) -> str:
    m = _VO_IN_URL.search(url)
    return m.group(1) if m else fallback


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of list names to settings")
    return doc


def _atrope_entries(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    subs: list[dict[str, Any]] = []
    registries: list[dict[str, Any]] = []
    vos: dict[str, dict[str, list[str]]] = {}
    notes: list[str] = []
    sections: list[tuple[str, dict[str, Any]]] = []
    typed = {
        k: v for k, v in doc.items() if k in ("hepix", "harbor", "registry") and isinstance(v, dict)
    }
    if typed:
        for kind, entries in typed.items():
            sections += [(kind, {n: e}) for n, e in entries.items()]
    else:
        sections = [("hepix", {n: e}) for n, e in doc.items()]
    for kind, one in sections:
        ((raw_name, entry),) = one.items()
        name = _name(str(raw_name))
        if not isinstance(entry, dict) or not entry.get("url"):
            notes.append(f"{raw_name}: no url, skipped")
            continue
        url, token = _split_token(str(entry["url"]))
        vo = str(entry.get("vo") or _vo_from(url, name))
        if entry.get("project"):
            vos.setdefault(vo, {"projects": []})["projects"].append(str(entry["project"]))
        common: dict[str, Any] = {"name": name, "vo": vo, "url": url}
        if entry.get("enabled") is False:
            common["enabled"] = False
        if entry.get("prefix"):
            common["prefix"] = str(entry["prefix"])
        if entry.get("images"):
            common["images"] = [str(i) for i in entry["images"]]
        if entry.get("visibility") in ("private", "shared", "community", "public"):
            common["visibility"] = entry["visibility"]
        elif entry.get("public") is True:
            common["visibility"] = "public"
        if token or entry.get("token"):
            notes.append(f"{raw_name}: has an access token; put it in a file and set token_file")
        if kind in ("harbor", "registry"):
            common["project"] = str(
                entry.get("registry_project") or entry.get("harbor_project") or "egi_vm_images"
            )
            registries.append(common)
            continue
        endorser = entry.get("endorser") or {}
        common["endorser_dn"] = str(endorser.get("dn") or APPDB_DN)
        common["endorser_ca"] = str(endorser.get("ca") or APPDB_CA)
        subs.append(common)
    if not subs and not registries:
        raise ConfigError(f"{path}: no image list with a url found")
    out: dict[str, Any] = {"images": {}}
    if subs:
        out["images"]["subscriptions"] = subs
    if registries:
        out["images"]["registries"] = registries
    if vos:
        out["vos"] = vos
    missing = sorted({s["vo"] for s in [*subs, *registries]} - set(vos))
    if missing:
        notes.append("map these VOs to their projects under 'vos': " + ", ".join(missing))
    if notes:
        out["x-images-notes"] = notes
    return out


def convert_atrope(path: Path) -> dict[str, Any]:
    return _atrope_entries(path, _load_yaml(path))


def convert_cloudkeeper(path: Path) -> dict[str, Any]:
    subs: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(("https://", "http://")):
            raise ConfigError(f"{path}:{n}: not an image list URL: {line[:40]!r}")
        url, token = _split_token(line)
        vo = _vo_from(url, f"list-{n}")
        subs.append(
            {
                "name": _name(vo),
                "url": url,
                "vo": vo,
                "endorser_dn": APPDB_DN,
                "endorser_ca": APPDB_CA,
            }
        )
        if token:
            notes.append(
                f"line {n} ({vo}): has an AppDB token; put it in a file and set token_file"
            )
    if not subs:
        raise ConfigError(f"{path}: no image list URL found")
    out: dict[str, Any] = {"images": {"subscriptions": subs}}
    notes.append(
        "map these VOs to their projects under 'vos': " + ", ".join(sorted({s["vo"] for s in subs}))
    )
    out["x-images-notes"] = notes
    return out


IMPORTERS: list[LegacyImporter] = [
    LegacyImporter(
        name="hepix.yaml",
        description="atrope's image list sources (hepix.yaml / sources.yaml)",
        matches=lambda p: p.name in ("hepix.yaml", "sources.yaml", "lists.yaml"),
        convert=convert_atrope,
    ),
    LegacyImporter(
        name="image-lists.conf",
        description="cloudkeeper's list of image list URLs (one per line)",
        matches=lambda p: p.name == "image-lists.conf",
        convert=convert_cloudkeeper,
    ),
]
