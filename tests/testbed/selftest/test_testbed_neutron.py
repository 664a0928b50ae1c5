"""Neutron (plain REST on a keystoneauth session): external network and floating IPs."""

from __future__ import annotations

import ipaddress

import pytest

pytestmark = pytest.mark.integration
NET = {"service_type": "network"}


def test_floating_ips_per_project_match_the_seed(testbed):
    sess = testbed.admin_session()
    for pname in ("vo-ops", "vo-fedcloud", "vo-fedcloud-2"):
        pid = testbed.project_id(pname)
        fips = sess.get(f"/v2.0/floatingips?project_id={pid}", endpoint_filter=NET).json()[
            "floatingips"
        ]
        expected = {f["address"]: f for f in testbed.seed["floating_ips"] if f["project"] == pname}
        assert {f["floating_ip_address"] for f in fips} == set(expected)
        for f in fips:
            assert f["project_id"] == pid
            assert (f["port_id"] is not None) == (
                expected[f["floating_ip_address"]]["server"] is not None
            )
            assert ipaddress.ip_address(f["floating_ip_address"]) in ipaddress.ip_network(
                "203.0.113.0/24"
            )


def test_associated_floating_ip_points_at_the_server_port(testbed):
    sess = testbed.admin_session()
    fip = next(f for f in testbed.seed["floating_ips"] if f["server"])
    server_id = testbed.seed["servers"][fip["server"]]["id"]
    ports = sess.get(f"/v2.0/ports?device_id={server_id}", endpoint_filter=NET).json()["ports"]
    assert fip["port_id"] in {p["id"] for p in ports}
    assert all(p["binding:vif_type"] == "other" for p in ports)  # bound by our ML2 driver


def test_external_network_is_dual_stack(testbed):
    sess = testbed.admin_session()
    pub = testbed.seed["networks"]["public"]
    net = sess.get(f"/v2.0/networks/{pub['id']}", endpoint_filter=NET).json()["network"]
    assert net["router:external"] is True
    subnets = sess.get(f"/v2.0/subnets?network_id={pub['id']}", endpoint_filter=NET).json()[
        "subnets"
    ]
    assert {s["ip_version"] for s in subnets} == {4, 6}
    v6 = testbed.seed["servers"]["ops-public-v6"]["addresses"]
    assert any(ipaddress.ip_address(a).version == 6 for a in v6)


def test_reader_sees_only_its_project_floating_ips(testbed):
    sess = testbed.reader_session("vo-ops")
    fips = sess.get("/v2.0/floatingips", endpoint_filter=NET).json()["floatingips"]
    assert fips
    assert {f["project_id"] for f in fips} == {testbed.project_id("vo-ops")}
