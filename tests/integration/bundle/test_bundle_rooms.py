"""The runtime wheel and the images built from it hold only what runs on a site: no test APEL
receiver, no demo driver (the package ``fedcloud_dev`` lives in ``dev/``, development venv only).

Uses the images and the wheelhouse ``scripts/dev/images`` builds for the bundle tests."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

# what a site never gets: the test receiver (old and new homes) and the dev/test package
NOT_ON_A_SITE = ("fedcloud_ssm.receiver", "fedcloud_dev", "fedcloud_dev.apel_receiver")


def _project_wheel() -> Path:
    wheels = sorted((REPO / "build" / "wheels").glob("fedcloud_appliance-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_runtime_wheel_has_no_dev_module(docker_images: dict[str, str]) -> None:
    with zipfile.ZipFile(_project_wheel()) as whl:
        names = whl.namelist()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        files = [line.split(",")[0] for line in whl.read(record).decode().splitlines()]
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = whl.read(entry_points).decode()
    assert any(f == "fedcloud_ssm/sender.py" for f in files)  # the listing is the real one
    top = {f.split("/")[0] for f in files if not f.split("/")[0].endswith(".dist-info")}
    assert top <= {p.name for p in (REPO / "services").iterdir() if p.is_dir()}, top
    dev = [f for f in files if f.startswith("fedcloud_dev/") or f == "fedcloud_ssm/receiver.py"]
    assert not dev, dev
    assert "apel-receiver" not in scripts, scripts
    assert "fedcloud_dev" not in scripts, scripts


@pytest.mark.parametrize("image", ["appliance", "bdii"])
def test_the_runtime_images_have_no_test_receiver(
    docker_images: dict[str, str], image: str
) -> None:
    tag = docker_images[image]

    def python(code: str) -> tuple[int, str]:
        proc = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", tag, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return proc.returncode, proc.stdout + proc.stderr

    rc, out = python("import fedcloud_ssm.sender")  # the image's python sees the project
    assert rc == 0, out
    for module in NOT_ON_A_SITE:
        rc, out = python(f"import {module}")
        assert rc != 0, (module, out)
        assert "ModuleNotFoundError" in out, (module, out)
    shell = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            tag,
            "-c",
            "command -v fedcloud-apel-receiver",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode != 0, shell.stdout
