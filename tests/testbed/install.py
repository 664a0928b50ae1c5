"""Install what the testbed needs: Debian packages and the pinned OpenStack venv."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .layout import Layout

HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE / "constraints.txt"
ML2_SRC = HERE / "ml2_bindall"

APT_PACKAGES = ("mariadb-server", "mariadb-client", "rabbitmq-server", "iproute2", "procps")
PIP_PACKAGES = (
    "keystone", "glance", "openstack-placement", "nova", "neutron", "cinder",
    "uWSGI", "PyMySQL", "python-memcached",
    "keystoneauth1", "python-keystoneclient", "python-novaclient", "python-glanceclient",
    "python-neutronclient", "python-cinderclient", "openstacksdk", "python-openstackclient", "PyYAML",
)  # fmt: skip
# modules that prove the venv is complete (found, not imported: importing nova costs seconds)
PROBE = (
    "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("
    "'keystone', 'glance', 'nova', 'neutron', 'cinder', 'placement', 'novaclient', 'glanceclient',"
    "'neutronclient', 'cinderclient', 'keystoneclient', 'testbed_ml2_bindall')))"
)


class InstallError(RuntimeError):
    """apt or pip failed; the log file is named in the message."""


def _run(argv: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    with open(log, "ab") as out:
        try:
            res = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                 env={**os.environ, **(env or {})}, check=False)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise InstallError(f"{argv[0]} timed out after {timeout:.0f}s (see {log})") from exc
    if res.returncode != 0:
        raise InstallError(f"{' '.join(argv[:3])}... exited {res.returncode} (see {log})")


def _wait_dpkg_lock(timeout: float) -> None:
    """Wait while another apt/dpkg run holds the frontend lock."""
    deadline = time.monotonic() + timeout
    with open("/var/lib/dpkg/lock-frontend", "a") as fh:
        while True:
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.lockf(fh, fcntl.LOCK_UN)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise InstallError("dpkg lock still held by another apt run") from None
                time.sleep(2)


def missing_apt() -> list[str]:
    need = []
    for pkg in APT_PACKAGES:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in res.stdout:
            need.append(pkg)
    return need


def ensure_apt(lay: Layout) -> list[str]:
    """Install missing Debian packages without letting them start system daemons."""
    need = missing_apt()
    if not need:
        return []
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:  # no init system: maintainer scripts must not start daemons bound to 0.0.0.0
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    log = lay.logs / "apt.log"
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        _wait_dpkg_lock(600)
        _run(["apt-get", "update", "-qq"], log, 300, env)
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need], log, 900, env)
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    return need


def venv_fingerprint() -> str:
    h = hashlib.sha256(CONSTRAINTS.read_bytes())
    h.update(" ".join(PIP_PACKAGES).encode())
    for f in sorted(ML2_SRC.rglob("*")):
        if f.is_file() and "egg-info" not in str(f) and "__pycache__" not in str(f):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def venv_ready(lay: Layout, probe: bool = True) -> bool:
    """The venv matches constraints.txt and the package list (``probe``: and really imports)."""
    mark = lay.mark("venv")
    if not mark.exists() or mark.read_text().strip() != venv_fingerprint():
        return False
    return (
        not probe
        or subprocess.run(
            [str(lay.python), "-c", PROBE], capture_output=True, check=False
        ).returncode
        == 0
    )


def ensure_venv(lay: Layout) -> bool:
    """Create/complete the OpenStack venv. Returns True when pip had to run."""
    if venv_ready(lay):
        return False
    if not lay.python.exists():
        _run([sys.executable, "-m", "venv", str(lay.venv)], lay.logs / "pip.log", 120)
    pip = [str(lay.python), "-m", "pip", "--disable-pip-version-check"]
    log = lay.logs / "pip.log"
    _run([*pip, "install", "-q", "-U", "pip", "setuptools", "wheel"], log, 600)
    # constraints.txt is a complete freeze: installing it as-is skips the resolver, and not
    # byte-compiling ~30k files saves a minute of CPU (bytecode is written on first import)
    fast = ["install", "-q", "--no-compile"]
    _run([*pip, *fast, "--no-deps", "-r", str(CONSTRAINTS)], log, 1800)
    # then the named packages: a no-op unless the freeze is incomplete
    _run([*pip, *fast, "-c", str(CONSTRAINTS), *PIP_PACKAGES], log, 600)
    # build our ML2 driver from a copy so the git clone stays clean (no build/ or egg-info)
    build = lay.root / "build" / "ml2_bindall"
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(
        ML2_SRC, build, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    _run(
        [
            *pip,
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--force-reinstall",
            str(build),
        ],
        log,
        300,
    )
    lay.mark("venv").write_text(venv_fingerprint() + "\n")
    return True
