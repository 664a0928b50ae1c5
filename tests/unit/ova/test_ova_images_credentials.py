"""The OVA skeleton has the images job's credentials directory (issue 18 defect 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ova.builder.rootfs import install_overlay

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_the_overlay_brings_the_images_credentials_directory(tmp_path):
    copied = install_overlay(ROOT / "ova" / "rootfs", tmp_path)
    assert "/etc/fedcloud-appliance/images/README" in copied
    readme = (tmp_path / "etc/fedcloud-appliance/images/README").read_text()
    assert "clouds_yaml: /etc/fedcloud-appliance/images/clouds.yaml" in readme
    assert "images:\n    openstack:" in readme
    # the boot check gives the directory to the containers' group, not to others
    firstboot = (ROOT / "ova/rootfs/usr/lib/fedcloud-appliance/firstboot").read_text()
    assert 'chgrp -R fedcloud "$CONF_DIR/images"' in firstboot
