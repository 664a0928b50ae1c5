"""Glance: EGI image properties, visibility, members, upload."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from testbed import qcow2

pytestmark = pytest.mark.integration

EGI_PROPS = ("vmcatcher_event_ad_mpuri", "vmcatcher_event_dc_description", "vmcatcher_event_dc_title",
             "APPLIANCE_ATTRIBUTES", "os_distro", "os_version", "architecture", "appdb_id", "image_hash",
             "image_list")  # fmt: skip


def test_images_carry_the_egi_properties(testbed):
    glance = testbed.glance(testbed.admin_session())
    for name, info in testbed.seed["images"].items():
        img = glance.images.get(info["id"])
        assert img["visibility"] == info["visibility"]
        assert img["disk_format"] == "qcow2"
        assert img["status"] == "active"
        if info["egi"]:
            assert all(k in img for k in EGI_PROPS), name
            attrs = json.loads(img["APPLIANCE_ATTRIBUTES"])
            assert attrs["ad:mpuri"] == img["vmcatcher_event_ad_mpuri"]
            assert img["image_hash"].startswith("sha512:")
            assert img["image_hash"][7:] == img["os_hash_value"]
        else:
            assert "vmcatcher_event_ad_mpuri" not in img
            assert "appdb_id" not in img


def test_every_visibility_is_seeded(testbed):
    assert {i["visibility"] for i in testbed.seed["images"].values()} == {
        "public",
        "shared",
        "private",
        "community",
    }


def test_shared_image_is_accepted_by_the_member_project(testbed):
    info = next(i for i in testbed.seed["images"].values() if i["visibility"] == "shared")
    ((member, status),) = info["members"].items()
    glance = testbed.glance(testbed.admin_session())
    members = {m["member_id"]: m["status"] for m in glance.image_members.list(info["id"])}
    assert members == {testbed.project_id(member): status}
    assert status == "accepted"
    seen = {i["id"] for i in testbed.glance(testbed.reader_session(member)).images.list()}
    assert info["id"] in seen
    not_member = {i["id"] for i in testbed.glance(testbed.reader_session("vo-ops")).images.list()}
    assert info["id"] not in not_member


def test_upload_checks_content_against_disk_format(testbed):
    from glanceclient import exc

    glance = testbed.glance(testbed.admin_session())
    name = f"itest-upload-{uuid.uuid4().hex[:8]}"
    data = qcow2.build(16, label=name)
    img = glance.images.create(
        name=name, disk_format="qcow2", container_format="bare", visibility="private"
    )
    try:
        glance.images.upload(img["id"], io.BytesIO(data))
        got = glance.images.get(img["id"])
        assert got["status"] == "active"
        assert got["size"] == len(data)
        assert b"".join(glance.images.data(img["id"])) == data
    finally:
        glance.images.delete(img["id"])
    bad = glance.images.create(name=name + "-bad", disk_format="qcow2", container_format="bare")
    try:
        with pytest.raises(exc.HTTPException):
            glance.images.upload(bad["id"], io.BytesIO(b"not a qcow2 image" * 100))
    finally:
        glance.images.delete(bad["id"])


def test_reader_cannot_create_images(testbed):
    from glanceclient import exc

    glance = testbed.glance(testbed.reader_session())
    with pytest.raises(exc.HTTPForbidden):
        glance.images.create(
            name="reader-must-not-create", disk_format="qcow2", container_format="bare"
        )
