"""``openstack.rc`` (the original appliance's ``export OS_*=...`` file) -> a clouds.yaml hint.

Credentials are not copied into the appliance config: the importer writes the
auth settings to the ``openstack`` section only as a pointer to clouds.yaml, and
returns the entry that belongs into clouds.yaml under ``x-clouds-yaml``. Secrets
(``OS_PASSWORD``, ``OS_APPLICATION_CREDENTIAL_SECRET``, ``OS_ACCESS_TOKEN``, any other
``OS_*`` password/secret/token) are never copied, not even into that hint: their place
holds :data:`~fedcloud_core.predecessor_config.SECRET_PLACEHOLDER` and ``x-secrets-not-copied``
names them, so the operator writes them into clouds.yaml (mode 0600) by hand.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import SECRET_PLACEHOLDER, LegacyImporter, is_secret

_EXPORT = re.compile(r"^\s*(?:export\s+)?(OS_[A-Z_]+)=(.*)$")

_AUTH = {
    "OS_AUTH_URL": "auth_url",
    "OS_USERNAME": "username",
    "OS_PASSWORD": "password",
    "OS_PROJECT_NAME": "project_name",
    "OS_PROJECT_ID": "project_id",
    "OS_USER_DOMAIN_NAME": "user_domain_name",
    "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
    "OS_PROJECT_DOMAIN_ID": "project_domain_id",
    "OS_USER_DOMAIN_ID": "user_domain_id",
    "OS_APPLICATION_CREDENTIAL_ID": "application_credential_id",
    "OS_APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
    "OS_ACCESS_TOKEN": "access_token",
    "OS_IDENTITY_PROVIDER": "identity_provider",
    "OS_PROTOCOL": "protocol",
}


def parse_rc(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _EXPORT.match(line)
        if not m:
            continue
        try:
            parts = shlex.split(m.group(2), comments=True)
        except ValueError as exc:
            raise ConfigError(f"{path}:{n}: cannot parse value of {m.group(1)}: {exc}") from None
        env[m.group(1)] = parts[0] if parts else ""
    return env


def convert(path: Path) -> dict[str, Any]:
    env = parse_rc(path)
    if "OS_AUTH_URL" not in env:
        raise ConfigError(f"{path}: no OS_AUTH_URL found; not an OpenStack rc file")
    auth = {v: SECRET_PLACEHOLDER if is_secret(k) else env[k] for k, v in _AUTH.items() if k in env}
    entry: dict[str, Any] = {"auth": auth}
    left_out = sorted(k for k, v in env.items() if is_secret(k) and v)
    if left_out:
        entry["x-secrets-not-copied"] = left_out
    if env.get("OS_AUTH_TYPE"):
        entry["auth_type"] = env["OS_AUTH_TYPE"]
    if env.get("OS_REGION_NAME"):
        entry["region_name"] = env["OS_REGION_NAME"]
    if env.get("OS_CACERT"):
        entry["cacert"] = env["OS_CACERT"]
    return {"openstack": {"cloud": "fedcloud"}, "x-clouds-yaml": {"clouds": {"fedcloud": entry}}}


IMPORTER = LegacyImporter(
    name="openstack.rc",
    description="shell file exporting OS_* variables (original appliance)",
    matches=lambda p: p.name.endswith(".rc") or p.name.endswith("rc.sh") or p.name == "openrc",
    convert=convert,
)
