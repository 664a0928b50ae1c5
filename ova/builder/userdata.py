"""cloud-init user data that configures the appliance: config file, host certificate, SSH keys."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .settings import Settings

TEMPLATE = "cloud-init/user-data.yaml.j2"
CONFIG_PATH = "/etc/fedcloud-appliance/appliance.yaml"
HOSTCERT_PATH = "/etc/grid-security/hostcert.pem"
HOSTKEY_PATH = "/etc/grid-security/hostkey.pem"
FIRSTBOOT_ENV_PATH = "/etc/fedcloud-appliance/firstboot.env"


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: str
    permissions: str = "0644"
    owner: str = "root:root"


def appliance_files(
    config_yaml: str, hostcert: str | None = None, hostkey: str | None = None
) -> list[WriteFile]:
    """The write_files entries: the config (0640 root:fedcloud) and, when given, the host certificate and key (0600)."""
    # group 'fedcloud' (the containers' group, made by the OVA build) may read the config
    files = [WriteFile(CONFIG_PATH, config_yaml, "0640", "root:fedcloud")]
    if (hostcert is None) != (hostkey is None):
        raise ValueError("give both the host certificate and its key, or neither")
    if hostcert is not None and hostkey is not None:
        if "BEGIN CERTIFICATE" not in hostcert:
            raise ValueError("the host certificate is not PEM (no 'BEGIN CERTIFICATE')")
        if "PRIVATE KEY" not in hostkey:
            raise ValueError("the host key is not a PEM private key")
        files += [
            WriteFile(HOSTCERT_PATH, hostcert, "0644"),
            WriteFile(HOSTKEY_PATH, hostkey, "0600"),
        ]
    return files


def firstboot_selection(units: list[str]) -> WriteFile:
    """firstboot.env: the first-boot unit starts only these units (e.g. only the BDII)."""
    bad = [u for u in units if not u.endswith(".service") or any(c.isspace() for c in u)]
    if not units or bad:
        raise ValueError(
            f"firstboot selection: unit names ending in .service expected, got {units}"
        )
    body = "# units the first-boot check starts (others are not started)\n"
    return WriteFile(FIRSTBOOT_ENV_PATH, body + f'FEDCLOUD_SERVICES="{" ".join(units)}"\n')


def render_user_data(
    *, hostname: str, ssh_keys: list[str], files: list[WriteFile], templates_dir: Path | None = None
) -> str:
    if not ssh_keys:
        raise ValueError("at least one SSH public key is needed: the appliance has no passwords")
    env = Environment(
        loader=FileSystemLoader(str(templates_dir or Settings().templates_dir)),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML, every value goes through tojson
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(TEMPLATE).render(
        hostname=hostname, ssh_keys=[k.strip() for k in ssh_keys], files=[asdict(f) for f in files]
    )
