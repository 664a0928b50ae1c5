"""Importers of the older tools' config files into appliance config fragments.

Each service ships the importers of its own legacy files (caso.conf, sender.cfg,
site.cfg, hepix.yaml, ...) as :class:`LegacyImporter` objects; the umbrella CLI
collects them. An importer turns one file into a partial config mapping; the CLI
merges the fragments, validates the result and prints YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class LegacyImporter:
    name: str  # the format's usual file name, e.g. "caso.conf"
    description: str
    matches: Callable[[Path], bool]  # does this file look like this format?
    convert: Callable[[Path], dict[str, Any]]  # -> partial appliance config


_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def parse_bool(value: str, where: str) -> bool:
    """An ini-style boolean (true/yes/1/on, false/no/0/off); ``where`` names the key in errors."""
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{where}: not a boolean: {value!r}")


def merge_fragments(fragments: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Deep-merge partial configs; lists are concatenated, later scalars win."""
    out: dict[str, Any] = {}
    for frag in fragments:
        _merge_into(out, frag)
    return out


def _merge_into(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, Mapping) and isinstance(dst.get(k), dict):
            _merge_into(dst[k], v)
        elif isinstance(v, list) and isinstance(dst.get(k), list):
            dst[k] = dst[k] + [i for i in v if i not in dst[k]]
        elif isinstance(v, Mapping):
            dst[k] = {}
            _merge_into(dst[k], v)
        else:
            dst[k] = v
