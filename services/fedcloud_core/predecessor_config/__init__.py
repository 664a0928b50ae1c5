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


#: what stands in an imported clouds.yaml hint where the legacy file had a secret
SECRET_PLACEHOLDER = "<not copied: put the secret into clouds.yaml (mode 0600) or a *_file>"  # noqa: S105
_SECRET_WORDS = ("password", "secret", "token", "passwd", "credential_key", "private_key")


def is_secret(key: str) -> bool:
    """Does this setting name hold a secret (a password, an application credential secret,
    a token, ...)? ``OS_PASSWORD``, ``application_credential_secret``, ``access_token``, ...;
    not ``*_file``/``*_id``/``*_name`` settings, which only point at or name one."""
    low = key.lower()
    if low.endswith(("_file", "_id", "_name", "_type", "_url", "_endpoint")):
        return False
    return any(w in low for w in _SECRET_WORDS)


def scrub_secrets(value: Any) -> Any:
    """A copy of ``value`` with every non-empty string under a secret-named key replaced by
    :data:`SECRET_PLACEHOLDER` (the CLI's last guard, whatever an importer returned)."""
    if isinstance(value, Mapping):
        return {
            k: SECRET_PLACEHOLDER
            if isinstance(k, str)
            and not k.startswith("x-")
            and is_secret(k)
            and isinstance(v, str)
            and v
            else scrub_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub_secrets(v) for v in value]
    return value


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
