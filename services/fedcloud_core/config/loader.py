"""Loading the config: YAML file, then FEDCLOUD__* environment overrides, then validation,
then the secret files.

Every problem becomes a :class:`ConfigError` naming the file, the key path (and
line when known) and what is wrong.

Secret files (``x_file`` keys) are read last, and only those under the key paths the
caller names (``secrets=``, from the job's :attr:`JobSpec.secrets`): the images job's
container sees only ``appliance.yaml`` and its own credentials, not the files of
``ssm`` or ``openstack``. A secret of another section stays a
:class:`~fedcloud_core.config.base.SecretFile`, whose value cannot be used. Without
``secrets=`` (``config check``, probes) every secret file must be readable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from ..errors import ConfigError
from .base import SecretFile
from .model import AppConfig

#: which secret files to read: the key paths (``"images"``, ``"openstack"``) a command uses,
#: worked out from the validated config; None: every secret file
SecretScope = Callable[[AppConfig], Collection[str]] | None

DEFAULT_CONFIG_PATH = Path("/etc/fedcloud-appliance/appliance.yaml")
CONFIG_ENV = "FEDCLOUD_APPLIANCE_CONFIG"
ENV_PREFIX = "FEDCLOUD__"
_NAMED_KEY = re.compile(r"^([a-z_]+(?:\.[a-z_0-9]+)+): (.*)$", re.DOTALL)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file: ``--config``, else ``$FEDCLOUD_APPLIANCE_CONFIG``, else the default."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def _key_lines(node: yaml.Node | None, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map every key path of a composed YAML document to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = (*prefix, str(k.value))
            lines[path] = k.start_mark.line + 1
            lines.update(_key_lines(v, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, str(i))
            lines[path] = item.start_mark.line + 1
            lines.update(_key_lines(item, path))
    return lines


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``FEDCLOUD__SSM__HOST=x`` -> ``{"ssm": {"host": "x"}}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(result.get(k), dict):
            result[k] = _merge(result[k], v)
        else:
            result[k] = v
    return result


def format_validation_error(
    exc: ValidationError, source: str, lines: Mapping[tuple[str, ...], int] | None = None
) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        if not loc and (named := _NAMED_KEY.match(msg)):
            # a cross-section check of the model names its key at the start of the message
            key, msg = named.group(1), named.group(2)
            loc = tuple(key.split("."))
        line = None
        if lines:
            for n in range(len(loc), 0, -1):
                if loc[:n] in lines:
                    line = lines[loc[:n]]
                    break
        where = f"{source}:{line}" if line else source
        problems.append(f"{where}: {key}: {msg}")
    return "\n".join(problems)


def _secret_files(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, str]]:
    """Every unread secret below ``node``: (key path, owning model, field name)."""
    found: list[tuple[tuple[str, ...], Any, str]] = []
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if isinstance(value, SecretFile):
                found.append(((*path, name), node, name))
            else:
                found += _secret_files(value, (*path, name))
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            found += _secret_files(item, (*path, str(i)))
    elif isinstance(node, dict):
        for k, item in node.items():
            found += _secret_files(item, (*path, str(k)))
    return found


def resolve_secret_files(
    cfg: AppConfig,
    keys: Collection[str] | None = None,
    *,
    source: str = "<config>",
    lines: Mapping[tuple[str, ...], int] | None = None,
) -> None:
    """Read the secret files under the key paths ``keys`` (None: all) into ``cfg``.

    Every unreadable or empty file is reported (one :class:`ConfigError`, a line each);
    the others stay unread.
    """
    wanted = None if keys is None else tuple(keys)
    problems = []
    for path, owner, name in _secret_files(cfg):
        dotted = ".".join(path)
        if wanted is not None and not any(
            dotted == k or dotted.startswith(f"{k}.") for k in wanted
        ):
            continue
        unread: SecretFile = getattr(owner, name)
        file_key = (*path[:-1], f"{name}_file")
        line = (lines or {}).get(file_key)
        where = f"{source}:{line}" if line else source
        try:
            value = Path(unread.path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(
                f"{where}: {dotted}_file: cannot read secret file {unread.path}: "
                f"{exc.strerror or exc}"
            )
            continue
        except UnicodeDecodeError:
            problems.append(f"{where}: {dotted}_file: secret file {unread.path} is not UTF-8")
            continue
        if not value:
            problems.append(f"{where}: {dotted}_file: secret file {unread.path} is empty")
            continue
        setattr(owner, name, SecretStr(value))
    if problems:
        raise ConfigError("\n".join(problems))


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    secrets: SecretScope = None,
) -> AppConfig:
    """Validate YAML text (plus environment overrides) into an :class:`AppConfig`, then read
    the secret files ``secrets`` names (default: all of them)."""
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections, not {type(data).__name__}"
        )
    overrides = _env_overrides(os.environ if environ is None else environ)
    if overrides:
        data = _merge(data, overrides)
    try:
        cfg = AppConfig.model_validate(data, context={"defer_secret_files": True})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, lines)) from None
    resolve_secret_files(cfg, None if secrets is None else secrets(cfg), source=source, lines=lines)
    return cfg


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    secrets: SecretScope = None,
) -> AppConfig:
    """Load and validate the appliance config; raises :class:`ConfigError` (exit 2).

    ``secrets``: the key paths whose secret files the command reads (default: all)."""
    p = config_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: config file not found (use --config, ${CONFIG_ENV}, or create it from "
            "'fedcloud-appliance config sample')"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from None
    return parse_config(text, source=str(p), environ=environ, secrets=secrets)
