"""Server listings page by page: markers from the next link, on our own endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from fedcloud_accounting.extract.openstack import OpenStackUsageSource

pytestmark = pytest.mark.unit


class _Resp:
    def __init__(self, body: dict[str, Any]):
        self.content = json.dumps(body).encode()


class _Compute:
    """Answers /servers/detail in pages of 2; its next links name an address nobody reaches."""

    def __init__(self, n: int, project: str):
        self.servers = [
            {
                "id": f"s{i:03d}",
                "name": f"vm{i}",
                "tenant_id": project,
                "status": "ACTIVE",
                "created": "2026-01-01T00:00:00Z",
                "updated": "2026-01-01T00:01:00Z",
                "OS-SRV-USG:launched_at": "2026-01-01T00:01:00.000000",
                "flavor": {"vcpus": 1, "ram": 512, "disk": 1, "original_name": "tiny"},
            }
            for i in range(n)
        ]
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def get(self, url, params=None, headers=None, raise_exc=True):
        assert url == "/servers/detail", url  # never the link's internal address
        self.requests.append((url, dict(params or {})))
        q = {k: v[0] if isinstance(v, list) else v for k, v in (params or {}).items()}
        rows = self.servers
        if "marker" in q:
            rows = rows[[s["id"] for s in rows].index(q["marker"]) + 1 :]
        page = rows[:2]
        body: dict[str, Any] = {"servers": page}
        if len(page) == 2:
            body["servers_links"] = [
                {
                    "rel": "next",
                    "href": "http://nova-internal:8774/v2.1/servers/detail?all_tenants=1"
                    f"&project_id={q['project_id']}&limit=2&marker={page[-1]['id']}",
                }
            ]
        return _Resp(body)


def test_every_page_is_read_with_the_links_marker_on_our_endpoint():
    src = OpenStackUsageSource(clients=None)  # type: ignore[arg-type]
    src._compute = _Compute(5, "p1")  # type: ignore[assignment]
    got = src.servers("p1", None)
    assert [s.id for s in got] == ["s000", "s001", "s002", "s003", "s004"]
    markers = [p.get("marker") for _, p in src._compute.requests]  # type: ignore[union-attr]
    assert markers == [None, ["s001"], ["s003"]]
    assert got[0].launched == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


class _Network:
    """Neutron: floating IPs of two projects, one without port_details; ports by id."""

    def __init__(self):
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fips = [
            {
                "id": "f1",
                "floating_ip_address": "192.0.2.1",
                "project_id": "p1",
                "port_id": "pa",
                "port_details": {"device_id": "vm-a"},
            },
            {"id": "f2", "floating_ip_address": "192.0.2.2", "project_id": "p1", "port_id": None},
            {"id": "f3", "floating_ip_address": "2001:db8::3", "project_id": "p2", "port_id": "pb"},
        ]
        self.ports = [{"id": "pa", "device_id": "vm-a"}, {"id": "pb", "device_id": "vm-b"}]

    def get(self, url, params=None, headers=None, raise_exc=True):
        params = dict(params or {})
        self.requests.append((url, params))
        if url == "/v2.0/floatingips":
            pid = params.get("project_id")
            return _Resp({"floatingips": [f for f in self.fips if pid in (None, f["project_id"])]})
        assert url == "/v2.0/ports", url
        ids = params.get("id")
        pid = params.get("project_id")
        ports = [p for p in self.ports if (ids is None or p["id"] in ids)]
        if pid is not None:
            ports = [p for p in ports if {"pa": "p1", "pb": "p2"}[p["id"]] == pid]
        return _Resp({"ports": ports})


def test_all_floating_ips_at_once_are_those_of_each_project():
    net = _Network()
    src = OpenStackUsageSource(clients=None)  # type: ignore[arg-type]
    src._adapter = lambda *types: net  # type: ignore[method-assign]
    every = src.all_floating_ips()
    assert [r[0] for r in net.requests] == ["/v2.0/floatingips", "/v2.0/ports"]
    assert net.requests[1][1]["id"] == ["pb"]  # only the port without port_details
    for pid in ("p1", "p2"):
        assert every[pid] == list(src.floating_ips(pid))
    assert [(f.id, f.device_id) for f in every["p1"]] == [("f1", "vm-a"), ("f2", None)]
    assert [(f.id, f.device_id) for f in every["p2"]] == [("f3", "vm-b")]


class _Actions:
    """os-instance-actions, newest first, in pages of at most ``limit``."""

    def __init__(self, n: int):
        self.actions = [
            {
                "action": "reboot",
                "request_id": f"req-{i:04d}",
                "start_time": f"2026-01-01T00:{i % 60:02d}:00.000000",
            }
            for i in range(n)
        ][::-1]
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def get(self, url, params=None, headers=None, raise_exc=True):
        assert url == "/servers/s1/os-instance-actions", url
        assert headers["X-OpenStack-Nova-API-Version"] == "2.61"
        self.requests.append((url, dict(params)))
        rows = self.actions
        if "marker" in params:
            rows = rows[[a["request_id"] for a in rows].index(params["marker"]) + 1 :]
        return _Resp({"instanceActions": rows[: params["limit"]]})


@pytest.mark.parametrize(("n", "calls"), [(0, 1), (3, 1), (4, 2), (9, 3)])
def test_the_actions_of_a_server_are_read_page_by_page(monkeypatch, n, calls):
    from fedcloud_accounting.extract import openstack

    monkeypatch.setattr(openstack, "PAGE", 4)
    nova = _Actions(n)
    src = OpenStackUsageSource(clients=None)  # type: ignore[arg-type]
    src._compute = nova  # type: ignore[assignment]
    got = src.actions("s1")
    assert len(got) == n
    assert len(nova.requests) == calls
    assert {a.name for a in got} <= {"reboot"}
    assert [a.time for a in got] == sorted((a.time for a in got), reverse=True)
