"""The build pipeline: stages with timings, and the summary printed at the end."""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import disk, images, package, rootfs
from .settings import Settings

log = logging.getLogger(__name__)

STAGES = ("rootfs", "images", "customize", "disk", "package")


@dataclass
class BuildState:
    """What the stages hand on (persisted in the work dir so stages can be re-run alone)."""

    settings: Settings
    timings: dict[str, float] = field(default_factory=dict)
    preloaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def uuid_file(self) -> Path:
        return self.settings.work_dir / "root.uuid"

    def root_uuid(self) -> str:
        if not self.uuid_file.exists():
            self.uuid_file.write_text(str(uuidlib.uuid4()) + "\n", encoding="utf-8")
        return self.uuid_file.read_text(encoding="utf-8").strip()

    @property
    def images_file(self) -> Path:
        return self.settings.work_dir / "preloaded.txt"


def _rootfs(st: BuildState) -> None:
    st.uuid_file.unlink(missing_ok=True)
    rootfs.bootstrap(st.settings)


def _images(st: BuildState) -> None:
    st.preloaded, st.missing = images.preload(st.settings, st.settings.rootfs)
    st.images_file.write_text("".join(f"{r}\n" for r in st.preloaded), encoding="utf-8")
    if st.preloaded:
        print(
            "[ova] preloaded container images:\n" + "".join(f"        {r}\n" for r in st.preloaded),
            end="",
        )
    else:
        print(
            "[ova] preloaded container images: NONE (no appliance image found on the build host; "
            "run 'make images' first for a working appliance)"
        )
    if st.missing:
        print(
            "[ova] named by the compose file but NOT built locally (not in the image):\n"
            + "".join(f"        {r}\n" for r in st.missing),
            end="",
        )


def _customize(st: BuildState) -> None:
    s = st.settings
    pre = st.images_file.read_text(encoding="utf-8").split() if st.images_file.exists() else []
    appliance = images.guess_appliance_image(pre, s.appliance_image)
    files = rootfs.customize(s, s.rootfs, st.root_uuid(), appliance)
    print(f"[ova] appliance image for 'config check': {appliance}")
    print(f"[ova] bundle units installed: {', '.join(files.units) or 'none yet'}")
    print(f"[ova] cron files installed: {', '.join(files.cron_files) or 'none yet'}")
    print(
        f"[ova] /etc/fedcloud-appliance: {', '.join(files.compose_files) or 'no compose file yet'}"
    )


def _disk(st: BuildState) -> None:
    s = st.settings
    disk.assemble(s.raw_disk, s.rootfs, st.root_uuid(), s.disk_bytes, s.work_dir)


def _package(st: BuildState) -> None:
    package.package(st.settings)


RUNNERS: dict[str, Callable[[BuildState], None]] = {
    "rootfs": _rootfs,
    "images": _images,
    "customize": _customize,
    "disk": _disk,
    "package": _package,
}


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def run(settings: Settings, stages: tuple[str, ...] = STAGES) -> BuildState:
    st = BuildState(settings)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    for name in stages:
        print(f"[ova] === stage {name}", flush=True)
        t0 = time.monotonic()
        RUNNERS[name](st)
        st.timings[name] = time.monotonic() - t0
        print(f"[ova] --- stage {name} took {st.timings[name]:.0f}s", flush=True)
    return st


def summary(st: BuildState) -> str:
    s = st.settings
    lines = [
        "[ova] build finished: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in st.timings.items())
        + f" (total {sum(st.timings.values()):.0f}s)"
    ]
    if s.raw_disk.exists():
        used = s.raw_disk.stat().st_blocks * 512
        lines.append(
            f"        raw disk   {s.raw_disk}: virtual {human(s.raw_disk.stat().st_size)}, "
            f"allocated {human(used)}"
        )
    stage_vmdk = s.work_dir / "ova" / s.vmdk_name
    for label, path in (("qcow2", s.qcow2_path), ("vmdk", stage_vmdk), ("ova", s.ova_path)):
        if path.exists():
            lines.append(f"        {label:<10} {path}: {human(path.stat().st_size)}")
    return "\n".join(lines)
