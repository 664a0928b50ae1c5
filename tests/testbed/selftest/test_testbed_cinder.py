"""Cinder (plain REST on a keystoneauth session): volumes per project."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration
VOL = {"service_type": "volumev3"}


def test_volumes_across_projects_match_the_seed(testbed):
    sess = testbed.admin_session()
    vols = sess.get("/volumes/detail?all_tenants=1", endpoint_filter=VOL).json()["volumes"]
    by_id = {v["id"]: v for v in vols}
    for name, info in testbed.seed["volumes"].items():
        v = by_id[info["id"]]
        assert v["name"] == name
        assert v["size"] == info["size"]
        assert v["os-vol-tenant-attr:tenant_id"] == info["project_id"]
        assert v["status"] == "available"
    sizes = {(i["project"], i["size"]) for i in testbed.seed["volumes"].values()}
    assert len({s for _, s in sizes}) >= 2


def test_reader_lists_its_volumes_but_cannot_create(testbed):
    from keystoneauth1 import exceptions

    sess = testbed.reader_session("vo-fedcloud")
    vols = sess.get("/volumes/detail", endpoint_filter=VOL).json()["volumes"]
    assert {v["id"] for v in vols} == {
        i["id"] for i in testbed.seed["volumes"].values() if i["project"] == "vo-fedcloud"
    }
    with pytest.raises(exceptions.Forbidden):
        sess.post(
            "/volumes",
            json={"volume": {"size": 1, "name": "reader-must-not-create"}},
            endpoint_filter=VOL,
        )
