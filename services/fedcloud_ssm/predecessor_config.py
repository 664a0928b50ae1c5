"""Importer of APEL ssmsend's ``sender.cfg`` (INI: [sender] [broker] [certificates] [messaging] [logging]).

Mapping: protocol, host/port/use_ssl, certificate/key/capath/server_cert, destination
(a STOMP destination, or the AMS topic of the cloud queue), ams_project, path (the
outgoing queue directory) and token (left out: secrets never go into the YAML; the
importer says where to put it). BDII broker discovery (bdii/network) is gone from
current ssm and is reported, not converted.
"""

from __future__ import annotations

import configparser
import logging
from pathlib import Path
from typing import Any

from fedcloud_core.errors import ConfigError
from fedcloud_core.predecessor_config import LegacyImporter, parse_bool

log = logging.getLogger(__name__)


def convert(path: Path) -> dict[str, Any]:
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable sender.cfg: {exc}") from None
    if not cp.has_section("broker") and not cp.has_section("messaging"):
        raise ConfigError(f"{path}: no [broker] or [messaging] section; not an ssmsend sender.cfg")

    ssm: dict[str, Any] = {}
    notes: list[str] = []
    protocol = cp.get("sender", "protocol", fallback="STOMP").strip().upper()
    if protocol not in ("STOMP", "AMS"):
        raise ConfigError(f"{path}: [sender] protocol: {protocol!r} is neither STOMP nor AMS")
    ssm["protocol"] = protocol
    if cp.has_option("broker", "host"):
        ssm["host"] = cp.get("broker", "host").strip()
    elif cp.has_option("broker", "bdii"):
        notes.append("[broker] bdii/network discovery is not supported: set ssm.host and ssm.port")
    if cp.has_option("broker", "port"):
        try:
            ssm["port"] = int(cp.get("broker", "port"))
        except ValueError:
            raise ConfigError(
                f"{path}: [broker] port: not a number: {cp.get('broker', 'port')!r}"
            ) from None
    elif protocol == "AMS":
        ssm["port"] = 443
    if cp.has_option("broker", "use_ssl"):
        ssm["use_ssl"] = parse_bool(cp.get("broker", "use_ssl"), f"{path}: [broker] use_ssl")
    for key in ("certificate", "key", "capath", "server_cert"):
        if cp.has_option("certificates", key) and cp.get("certificates", key).strip():
            ssm[key] = cp.get("certificates", key).strip()
    dest = cp.get("messaging", "destination", fallback="").strip()
    if dest:
        if protocol == "AMS":
            ssm["ams_topics"] = {"cloud": dest}
            notes.append(
                f"AMS topic {dest!r} used for the cloud queue; add others under ssm.ams_topics"
            )
        else:
            ssm["destination"] = dest
    if cp.has_option("messaging", "ams_project"):
        ssm["ams_project"] = cp.get("messaging", "ams_project").strip()
    if cp.get("messaging", "token", fallback="").strip():
        notes.append(
            "an AMS token was found and left out: put it in a file and set ssm.ams_token_file"
        )
    paths: dict[str, Any] = {}
    qpath = cp.get("messaging", "path", fallback="").strip()
    if qpath:
        p = Path(qpath)
        if cp.get("messaging", "path_type", fallback="dirq").strip() != "dirq":
            notes.append("path_type 'directory' is not supported; the appliance reads dirq queues")
        # ssmsend's path is one queue; the appliance keeps queues below <spool_dir>/outgoing/<name>
        if p.parent.name == "outgoing":
            paths["spool_dir"] = str(p.parent.parent)
            ssm["queues"] = [p.name]
        elif p.name == "outgoing":
            paths["spool_dir"] = str(p.parent)
            notes.append(
                f"{qpath} is the outgoing root: the appliance reads <spool_dir>/outgoing/<queue>"
            )
        else:
            notes.append(
                f"queue path {qpath} does not end in .../outgoing[/<queue>]: set paths.spool_dir"
            )
    for n in notes:
        log.warning("%s: %s", path, n)
    out: dict[str, Any] = {"ssm": ssm}
    if paths:
        out["paths"] = paths
    if notes:
        out["x-ssm-import-notes"] = notes
    return out


IMPORTERS: list[LegacyImporter] = [
    LegacyImporter(
        name="sender.cfg",
        description="APEL ssmsend configuration (INI)",
        matches=lambda p: p.name == "sender.cfg" or p.name.endswith("-sender.cfg"),
        convert=convert,
    )
]
