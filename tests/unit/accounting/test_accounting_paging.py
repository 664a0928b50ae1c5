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
