"""One job, one cycle, in a throw-away container: what the host cron files run.

``fedcloud-appliance run-container accounting`` is the Docker SDK equivalent of::

    docker run --rm --user 10001:10001 --read-only --tmpfs /tmp --cap-drop ALL \\
      --security-opt no-new-privileges \\
      -v /etc/fedcloud-appliance:/etc/fedcloud-appliance:ro \\
      -v fedcloud-state:/var/lib/fedcloud-appliance -v fedcloud-spool:/var/spool/apel \\
      fedcloud-appliance:latest fedcloud-appliance accounting extract \\
      --config /etc/fedcloud-appliance/appliance.yaml --once

(the images job mounts only ``appliance.yaml`` and ``images/`` of the config directory,
and only ``certificates/`` of ``/etc/grid-security``) with the same named volumes as the
compose bundle, so a cron run and the
``scheduler`` container share state, spool, cache and the per-job run lock (a run
while the other holds the lock exits 4). :func:`container_spec` builds the
arguments (unit-tested without an engine); :func:`run_oneshot` creates, starts,
follows, waits and always removes the container; its exit code is the job's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fedcloud_core.errors import ExitCode, PermanentError

log = logging.getLogger(__name__)

CONFIG_DIR = "/etc/fedcloud-appliance"
CONFIG_FILE = f"{CONFIG_DIR}/appliance.yaml"
#: the images job's part of the config directory: its clouds.yaml and secret files
IMAGES_CREDENTIALS = "images"
GRID_SECURITY = "/etc/grid-security"
CA_DIR = f"{GRID_SECURITY}/certificates"
JOB_UID_GID = "10001:10001"

#: named volumes of the bundle (compose/docker-compose.yml) -> where they are mounted; the
#: BDIIs' own volume (bdii) is never mounted by a job, and infosys (the snapshot the resource
#: BDII reads) sits on its own volume inside the state directory
VOLUME_TARGETS = {
    "state": "/var/lib/fedcloud-appliance",
    "infosys": "/var/lib/fedcloud-appliance/cloud-info",
    "spool": "/var/spool/apel",
    "images": "/image_data",
}


@dataclass(frozen=True)
class JobMounts:
    """What one job needs: named volumes, whether it reads certificates/CAs, and which part
    of the config directory it sees."""

    command: tuple[str, ...]
    volumes: tuple[str, ...]
    grid_security: bool
    ca_only: bool = False  # only the CA directory of grid_security, not the host key/certificate
    # only these entries of the config directory (files or directories), each mounted on its
    # own; empty: the whole directory (clouds.yaml and every secret file)
    config_only: tuple[str, ...] = ()


#: the jobs cron can run one-shot (the BDIIs are long-running slapd containers)
JOBS: dict[str, JobMounts] = {
    "cloud-info": JobMounts(("cloud-info",), ("state", "infosys"), False),
    "accounting-extract": JobMounts(("accounting", "extract"), ("state", "spool"), False),
    "ssm-send": JobMounts(("ssm", "send"), ("state", "spool"), True),
    # untrusted images: appliance.yaml and its own credentials, the CAs, not the host key
    "images-sync": JobMounts(
        ("images", "sync"),
        ("state", "images"),
        True,
        ca_only=True,
        config_only=("appliance.yaml", IMAGES_CREDENTIALS),
    ),
}
ALIASES = {"accounting": "accounting-extract", "ssm": "ssm-send", "images": "images-sync"}


def job_key(name: str) -> str:
    """``accounting``, ``accounting extract`` or ``accounting-extract`` -> ``accounting-extract``."""
    key = name.strip().replace(" ", "-")
    key = ALIASES.get(key, key)
    if key not in JOBS:
        raise PermanentError(
            f"run-container: unknown job {name!r}; one of: {', '.join(sorted(JOBS))}"
        )
    return key


@dataclass(frozen=True)
class OneshotSettings:
    """Where the bundle lives on this host. Defaults match compose/docker-compose.yml."""

    image: str = "fedcloud-appliance:latest"
    config_dir: str = CONFIG_DIR
    grid_security: str = GRID_SECURITY
    volume_prefix: str = "fedcloud"
    network: str | None = None  # None: the engine's default bridge; "host" for host-only services
    user: str = JOB_UID_GID
    timeout: float = 6 * 3600.0
    environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> OneshotSettings:
        """Settings from ``FEDCLOUD_IMAGE``, ``FEDCLOUD_CONFIG_DIR``, ``FEDCLOUD_GRID_SECURITY``,
        ``FEDCLOUD_VOLUME_PREFIX``, ``FEDCLOUD_NETWORK`` (as in compose.env), then ``overrides``."""
        env = os.environ if environ is None else environ
        base: dict[str, Any] = {}
        for name, attr in (
            ("FEDCLOUD_IMAGE", "image"),
            ("FEDCLOUD_CONFIG_DIR", "config_dir"),
            ("FEDCLOUD_GRID_SECURITY", "grid_security"),
            ("FEDCLOUD_VOLUME_PREFIX", "volume_prefix"),
            ("FEDCLOUD_NETWORK", "network"),
        ):
            if env.get(name):
                base[attr] = env[name]
        base.update({k: v for k, v in overrides.items() if v is not None})
        for attr in ("config_dir", "grid_security"):  # bind mounts need absolute host paths
            if attr in base:
                base[attr] = str(Path(base[attr]).resolve())
        return cls(**base)


def _config_sources(key: str, jm: JobMounts, settings: OneshotSettings) -> list[tuple[str, str]]:
    """(name, host path) of each config entry a job mounts on its own. A missing one is
    named here when the config directory is visible (a launcher container does not see it:
    the engine refuses the missing bind source then)."""
    out = [(name, str(Path(settings.config_dir) / name)) for name in jm.config_only]
    if Path(settings.config_dir).is_dir():
        missing = [src for _, src in out if not Path(src).exists()]
        if missing:
            raise PermanentError(
                f"run-container: {key} needs {', '.join(missing)}: create it (the "
                f"{IMAGES_CREDENTIALS}/ directory holds the images job's clouds.yaml, see "
                "docs/operations.md)"
            )
    return out


def container_spec(
    job: str, settings: OneshotSettings, extra_args: Sequence[str] = ()
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` for one cycle of ``job``."""
    from docker.types import Mount

    key = job_key(job)
    jm = JOBS[key]
    mounts = [
        Mount(target=f"{CONFIG_DIR}/{name}", source=source, type="bind", read_only=True)
        for name, source in _config_sources(key, jm, settings)
    ] or [Mount(target=CONFIG_DIR, source=settings.config_dir, type="bind", read_only=True)]
    if jm.grid_security and jm.ca_only:
        source = str(Path(settings.grid_security) / "certificates")
        mounts.append(Mount(target=CA_DIR, source=source, type="bind", read_only=True))
    elif jm.grid_security:
        mounts.append(
            Mount(target=GRID_SECURITY, source=settings.grid_security, type="bind", read_only=True)
        )
    for vol in jm.volumes:
        mounts.append(
            Mount(
                target=VOLUME_TARGETS[vol],
                source=f"{settings.volume_prefix}-{vol}",
                type="volume",
                read_only=False,
            )
        )
    spec: dict[str, Any] = {
        "image": settings.image,
        "command": [
            "fedcloud-appliance",
            *jm.command,
            "--config",
            CONFIG_FILE,
            "--once",
            *extra_args,
        ],
        "user": settings.user,
        "mounts": mounts,
        "environment": {"FEDCLOUD_APPLIANCE_CONFIG": CONFIG_FILE, **settings.environment},
        "labels": {"eu.egi.fedcloud.job": key, "eu.egi.fedcloud.oneshot": "true"},
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"},  # noqa: S108 - a private tmpfs
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "detach": True,
    }
    if settings.network:
        spec["network_mode" if settings.network == "host" else "network"] = settings.network
    return spec


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_oneshot(
    job: str,
    settings: OneshotSettings,
    *,
    extra_args: Sequence[str] = (),
    client: Any = None,
    out: IO[str] | None = None,
) -> int:
    """Run one cycle of ``job`` in a new container, stream its output, remove it; its exit code."""
    import docker
    from docker.errors import APIError, DockerException, ImageNotFound
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ReadTimeout

    out = out or sys.stdout
    spec = container_spec(job, settings, extra_args)
    try:
        client = client or docker.from_env(timeout=60)
    except DockerException as exc:
        raise PermanentError(f"run-container: no Docker engine: {exc}") from exc
    try:
        container = client.containers.create(**spec)
    except ImageNotFound as exc:
        raise PermanentError(
            f"run-container: image {settings.image} is not present (make images)"
        ) from exc
    except APIError as exc:
        hint = ""
        if "bind source path does not exist" in str(exc) and JOBS[job_key(job)].config_only:
            hint = f" (create {IMAGES_CREDENTIALS}/ in the config directory: docs/operations.md)"
        raise PermanentError(
            f"run-container: cannot create the {job_key(job)} container: {exc}{hint}"
        ) from exc

    def follow() -> None:
        with contextlib.suppress(DockerException, RequestsConnectionError, ValueError):
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                out.write(chunk.decode("utf-8", errors="replace"))
                out.flush()

    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:  # cron/systemd stopping us stops the job (the finally below removes it)
        signal.signal(signal.SIGTERM, _interrupt)
    follower = threading.Thread(target=follow, name="oneshot-logs", daemon=True)
    try:
        container.start()
        follower.start()
        try:
            result = container.wait(timeout=settings.timeout)
        except (ReadTimeout, RequestsConnectionError):
            log.error(
                "%s: no end after %.0fs; stopping the container", job_key(job), settings.timeout
            )
            with contextlib.suppress(DockerException):
                container.stop(timeout=30)
            return int(ExitCode.FAILED)
        follower.join(timeout=10)
        code = int(result.get("StatusCode", ExitCode.FAILED))
        log.info("%s: container exited with %d", job_key(job), code)
        return code
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(DockerException):
            container.remove(force=True, v=True)  # like docker run --rm: anonymous volumes too


def default_config_dir() -> str:
    """The host directory holding appliance.yaml (the host side of the read-only mount)."""
    env = os.environ.get("FEDCLOUD_CONFIG_DIR")
    if env:
        return env
    cfg = os.environ.get("FEDCLOUD_APPLIANCE_CONFIG")
    return str(Path(cfg).parent) if cfg else CONFIG_DIR
