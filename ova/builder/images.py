"""Preloading the appliance's container images into the guest's /var/lib/docker.

The images come from the build host's Docker engine (``make images`` tags them). They are
saved there and loaded by a throw-away dockerd whose data root is the guest's
/var/lib/docker, so the VM starts with the images in place (no ``docker load`` at boot,
which takes ~20 s per image under emulation). The throw-away engine must be the same
version as the guest's (both Debian bookworm docker.io): the on-disk layout is the engine's.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fedcloud_core.errors import ToolError

from .build_tools import DOCKER, DPKG_QUERY, IP
from .settings import Settings

log = logging.getLogger(__name__)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _expand(value: str) -> str:
    """``${VAR:-default}`` -> default (the build has no site .env); ``${VAR}`` -> ''."""
    return _VAR.sub(lambda m: m.group(2) or "", value)


def compose_images(compose_file: Path) -> list[str]:
    """Image references of every service in a compose file (defaults of ${VAR:-x} applied)."""
    if not compose_file.is_file():
        return []
    data = yaml.safe_load(compose_file.read_text(encoding="utf-8")) or {}
    services = data.get("services") or {}
    refs: list[str] = []
    for svc in services.values():
        image = (svc or {}).get("image")
        if isinstance(image, str):
            ref = _expand(image).strip()
            if ref and ref not in refs:
                refs.append(ref)
    return refs


def normalize(ref: str) -> str:
    """``name`` -> ``name:latest`` (the form ``docker image ls`` shows)."""
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in ref else f"{ref}:latest"


@dataclass
class Selection:
    preload: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # named by compose but not built locally


def select_images(local: list[str], wanted: list[str], patterns: tuple[str, ...]) -> Selection:
    """Pick the local images to preload: those the compose file names, then pattern matches."""
    have = {normalize(r) for r in local if "<none>" not in r}
    sel = Selection()
    for ref in wanted:
        (sel.preload if normalize(ref) in have else sel.missing).append(normalize(ref))
    for ref in sorted(have):
        repo = ref.rsplit(":", 1)[0]
        if ref not in sel.preload and any(fnmatch.fnmatch(repo, p) for p in patterns):
            sel.preload.append(ref)
    return sel


def guess_appliance_image(images: list[str], explicit: str = "") -> str:
    """The image with the fedcloud-appliance CLI: explicit, else one named like the appliance."""
    if explicit:
        return explicit
    for ref in images:
        if "appliance" in ref.rsplit("/", 1)[-1] and not re.search(r"bdii|slapd|ldap", ref):
            return ref
    for ref in images:
        if not re.search(r"bdii|slapd|ldap|broker|rabbit|base|debian", ref):
            return ref
    return "fedcloud-appliance:latest"


def host_images(docker_host: str) -> list[str] | None:
    """``repo:tag`` of every image of the build host's engine, or None if it cannot be reached."""
    try:
        out = DOCKER.run(
            ["-H", docker_host, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], timeout=30
        ).stdout
    except ToolError as exc:
        log.warning("the build host's Docker engine (%s) cannot be reached: %s", docker_host, exc)
        return None
    return [line.strip() for line in out.splitlines() if line.strip()]


class ThrowawayDockerd:
    """A private dockerd on its own socket, data root, exec root and bridge.

    It gets a private, empty bridge rather than ``--bridge=none``: a dockerd started with
    ``--bridge=none`` deletes the host's ``docker0``, breaking the host engine's containers.
    """

    def __init__(self, data_root: Path, state_dir: Path):
        self.data_root = data_root
        self.state_dir = state_dir
        self.sock = state_dir / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.bridge = f"fova{os.getpid() % 100000}"

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def __enter__(self) -> ThrowawayDockerd:
        dockerd = shutil.which("dockerd")
        if not dockerd:
            raise ToolError("dockerd", "not installed (apt-get install docker.io)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        IP.run(["link", "add", "name", self.bridge, "type", "bridge"])
        logf = (self.state_dir / "dockerd.log").open("wb")
        argv = [
            dockerd,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.state_dir / "exec"),
            "-H",
            self.host,
            "--pidfile",
            str(self.state_dir / "dockerd.pid"),
            f"--bridge={self.bridge}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--storage-driver=overlay2",
        ]
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                IP.run(["link", "del", self.bridge], check=False)
                raise ToolError("dockerd", f"exited at start; see {self.state_dir / 'dockerd.log'}")
            try:
                DOCKER.run(["-H", self.host, "info"], timeout=10)
                return self
            except ToolError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise ToolError("dockerd", "not ready within 60s")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        IP.run(["link", "del", self.bridge], check=False)


def engine_versions(root: Path) -> tuple[str, str]:
    """(build host docker.io version, guest docker.io version)."""
    host = DPKG_QUERY.run(["-W", "-f=${Version}", "docker.io"], check=False).stdout.strip()
    guest = DPKG_QUERY.run(
        [f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f=${Version}", "docker.io"], check=False
    ).stdout.strip()
    return host, guest


def preload(s: Settings, root: Path) -> tuple[list[str], list[str]]:
    """Save the appliance images from the host engine and load them into the guest.

    Returns (preloaded, named-but-missing). Never fails the build for a missing image:
    the caller prints both lists.
    """
    wanted: list[str] = []
    for name in ("docker-compose.yml", "compose.yml", "docker-compose.yaml"):
        wanted += [r for r in compose_images(s.compose_dir / name) if r not in wanted]
    local = host_images(s.docker_host)
    if local is None:
        return [], [normalize(r) for r in wanted]
    sel = select_images(local, wanted, s.image_patterns)
    if not sel.preload:
        return [], sel.missing
    host_v, guest_v = engine_versions(root)
    if host_v != guest_v:
        log.warning(
            "docker.io differs: build host %s, guest %s (the preloaded layout may not match)",
            host_v or "?",
            guest_v or "?",
        )
    tar = s.work_dir / "images.tar"
    DOCKER.run(["-H", s.docker_host, "save", "-o", str(tar), *sel.preload], timeout=900)
    with ThrowawayDockerd(root / "var/lib/docker", s.work_dir / "dockerd") as engine:
        DOCKER.run(["-H", engine.host, "load", "-i", str(tar)], timeout=900)
    tar.unlink()
    # build-host state the guest must not inherit (network db of bridge=none, engine id, tmp)
    for rel in ("network", "containerd", "runtimes", "engine-id", "tmp"):
        p = root / "var/lib/docker" / rel
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return sel.preload, sel.missing
