#!/usr/bin/env python3
"""A canned OpenStack for profiling the accounting extractor's own side at any site size.

Serves, on 127.0.0.1, just what ``accounting extract`` reads, from prepared JSON (so
its own cost is small next to the client's): Keystone (token + catalog, projects,
users), Nova 2.61 (``/servers/detail`` paged like Nova: ``limit`` capped at 1000, a
``next`` link after a full page; ``deleted=True&changes-since``; flavors; instance
actions), Glance images, Neutron ports and floating IPs, Cinder volumes. The site is
``accounting_fakes.fleet(N)`` (tests/unit/accounting), rendered the way the testbed's
Nova renders a server (about 2 KB of JSON each). Requests are counted per service:
``GET /_stats``.

    python tests/bench/fake_openstack.py --servers 10000   # prints the clouds.yaml path

Not a test and not a benchmark against another tool: tests/bench/profile_accounting.py
uses it to time and profile our process with the cloud's own time taken out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)
from unit.accounting.accounting_fakes import fleet

MAX_LIMIT = 1000
TOKEN = "fake-token"


def _t(dt: datetime | None, micro: bool = False) -> str | None:
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000000" if micro else "%Y-%m-%dT%H:%M:%SZ")


def server_json(s: Any, base: str) -> dict[str, Any]:
    f = s.flavor
    vm = {
        "ACTIVE": "active",
        "SHUTOFF": "stopped",
        "SUSPENDED": "suspended",
        "PAUSED": "paused",
        "SHELVED_OFFLOADED": "shelved_offloaded",
        "ERROR": "error",
        "DELETED": "deleted",
    }[s.status]
    return {
        "accessIPv4": "",
        "accessIPv6": "",
        "addresses": {
            "net": [
                {
                    "version": 4,
                    "addr": "10.3.0.41",
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:f7:fa:44",
                }
            ]
        },
        "created": _t(s.created),
        "flavor": {
            "vcpus": f.vcpus,
            "ram": f.ram_mb,
            "disk": f.disk_gb,
            "ephemeral": f.ephemeral_gb,
            "swap": 0,
            "original_name": f.name,
            "extra_specs": dict(f.extra_specs),
        },
        "hostId": "84b309cbf716caaa3c7f122a645da96781de11eb943f01c2c59534cb",
        "id": s.id,
        "image": {"id": s.image_id, "links": [{"rel": "bookmark", "href": f"{base}/images/x"}]}
        if s.image_id
        else "",
        "links": [
            {"rel": "self", "href": f"{base}/v2.1/servers/{s.id}"},
            {"rel": "bookmark", "href": f"{base}/servers/{s.id}"},
        ],
        "metadata": {},
        "name": s.name,
        "status": s.status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "updated": _t(s.updated),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "",
        "key_name": None,
        "OS-SRV-USG:launched_at": _t(s.launched, micro=True),
        "OS-SRV-USG:terminated_at": _t(s.terminated, micro=True),
        "OS-EXT-SRV-ATTR:host": "compute-1",
        "OS-EXT-SRV-ATTR:instance_name": "instance-0000000e",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": "compute-1",
        "OS-EXT-SRV-ATTR:hostname": s.name,
        "OS-EXT-SRV-ATTR:kernel_id": "",
        "OS-EXT-SRV-ATTR:launch_index": 0,
        "OS-EXT-SRV-ATTR:ramdisk_id": "",
        "OS-EXT-SRV-ATTR:reservation_id": "r-ajr34k8i",
        "OS-EXT-SRV-ATTR:root_device_name": "/dev/sda",
        "OS-EXT-SRV-ATTR:user_data": None,
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:vm_state": vm,
        "OS-EXT-STS:power_state": 1 if vm == "active" else 4,
        "os-extended-volumes:volumes_attached": [],
        "locked": False,
        "description": None,
        "tags": [],
        "host_status": "UP",
        "security_groups": [{"name": "default"}],
    }


class Cloud:
    def __init__(self, servers: int, port: int):
        self.base = f"http://127.0.0.1:{port}"
        src = fleet(servers)
        self.src = src
        self.stats: Counter[str] = Counter()
        self.lock = threading.Lock()
        nova = f"{self.base}/compute"
        # per project: servers sorted by id, as Nova pages them (by created_at; any order
        # works for the client)
        self.servers = {
            pid: [(s, server_json(s, nova)) for s in sorted(v, key=lambda s: s.id)]
            for pid, v in src.servers_by_project.items()
        }
        self.all = [x for v in self.servers.values() for x in v]
        self.actions = {
            sid: [
                {
                    "action": a.name,
                    "instance_uuid": sid,
                    "request_id": f"req-{sid[:8]}-{i}",
                    "user_id": "u1",
                    "project_id": "p",
                    "start_time": _t(a.time, micro=True),
                    "message": None,
                    "updated_at": _t(a.time, micro=True),
                }
                for i, a in enumerate(sorted(acts, key=lambda a: a.time, reverse=True))
            ]
            for sid, acts in src.actions_by_server.items()
        }

    def catalog(self) -> list[dict[str, Any]]:
        def ep(kind: str, name: str, url: str) -> dict[str, Any]:
            return {
                "type": kind,
                "name": name,
                "id": kind,
                "endpoints": [
                    {
                        "id": f"{kind}-{i}",
                        "interface": i,
                        "region": "RegionOne",
                        "region_id": "RegionOne",
                        "url": url,
                    }
                    for i in ("public", "internal", "admin")
                ],
            }

        return [
            ep("identity", "keystone", f"{self.base}/v3"),
            ep("compute", "nova", f"{self.base}/compute/v2.1"),
            ep("image", "glance", f"{self.base}/image"),
            ep("network", "neutron", f"{self.base}/network"),
            ep("volumev3", "cinderv3", f"{self.base}/volume/v3/admin"),
            ep("block-storage", "cinder", f"{self.base}/volume/v3/admin"),
        ]

    def token(self) -> dict[str, Any]:
        return {
            "token": {
                "methods": ["password"],
                "user": {
                    "id": "admin",
                    "name": "admin",
                    "domain": {"id": "default", "name": "Default"},
                },
                "project": {
                    "id": "admin",
                    "name": "admin",
                    "domain": {"id": "default", "name": "Default"},
                },
                "roles": [{"id": "r", "name": "admin"}],
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2026-01-01T00:00:00.000000Z",
                "catalog": self.catalog(),
            }
        }

    def servers_page(self, q: dict[str, list[str]]) -> dict[str, Any]:
        pid = q.get("project_id", [None])[0]
        rows = self.servers.get(pid, []) if pid else self.all
        since = q.get("changes-since", [None])[0]
        # as Nova: deleted servers only when asked, or with changes-since and no 'deleted'
        deleted = q.get("deleted", ["any" if since else "false"])[0].lower()
        if deleted in ("true", "1"):
            rows = [r for r in rows if r[0].status == "DELETED"]
        elif deleted != "any":
            rows = [r for r in rows if r[0].status != "DELETED"]
        if since:
            rows = [r for r in rows if (_t(r[0].updated) or "") >= since]
        limit = min(int(q.get("limit", [MAX_LIMIT])[0]), MAX_LIMIT)
        marker = q.get("marker", [None])[0]
        start = 0
        if marker:
            start = next(i for i, r in enumerate(rows) if r[0].id == marker) + 1
        page = rows[start : start + limit]
        body: dict[str, Any] = {"servers": [r[1] for r in page]}
        if len(page) == limit:
            nxt = {k: v[0] for k, v in q.items() if k != "marker"}
            nxt["marker"] = page[-1][0].id
            qs = "&".join(f"{k}={v}" for k, v in nxt.items())
            body["servers_links"] = [
                {"rel": "next", "href": f"{self.base}/compute/v2.1/servers/detail?{qs}"}
            ]
        return body

    def answer(self, method: str, url: str) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(url)
        path, q = parts.path.rstrip("/"), parse_qs(parts.query)
        svc = path.split("/")[1] if path.count("/") else "root"
        with self.lock:
            self.stats[svc] += 1
        if method == "POST" and path == "/v3/auth/tokens":
            return 201, self.token(), {"X-Subject-Token": TOKEN}
        if path == "/v3/projects":
            return (
                200,
                {
                    "projects": [
                        {
                            "id": p.id,
                            "name": p.name,
                            "domain_id": "default",
                            "enabled": True,
                            "tags": [],
                            "is_domain": False,
                            "parent_id": "default",
                            "description": "",
                        }
                        for p in self.src.project_list
                    ],
                    "links": {"next": None},
                },
                {},
            )
        if path == "/v3/users":
            return (
                200,
                {
                    "users": [
                        {"id": k, "name": v, "domain_id": "default", "enabled": True}
                        for k, v in self.src.users.items()
                    ],
                    "links": {"next": None},
                },
                {},
            )
        if path == "/compute/v2.1/servers/detail":
            return 200, self.servers_page(q), {}
        if path == "/compute/v2.1/flavors/detail":
            return (
                200,
                {
                    "flavors": [
                        {
                            "id": f.id,
                            "name": f.name,
                            "vcpus": f.vcpus,
                            "ram": f.ram_mb,
                            "disk": f.disk_gb,
                            "OS-FLV-EXT-DATA:ephemeral": f.ephemeral_gb,
                            "extra_specs": f.extra_specs,
                            "os-flavor-access:is_public": True,
                            "links": [],
                        }
                        for f in self.src.flavor_list
                    ]
                },
                {},
            )
        if path.startswith("/compute/v2.1/servers/") and path.endswith("/os-instance-actions"):
            sid = path.split("/")[4]
            acts = self.actions.get(sid, [])
            marker = q.get("marker", [None])[0]
            if marker:
                acts = acts[[a["request_id"] for a in acts].index(marker) + 1 :]
            return 200, {"instanceActions": acts[: int(q.get("limit", [1000])[0])]}, {}
        if path == "/image/v2/images":
            if "marker" in q:
                return 200, {"images": []}, {}
            return (
                200,
                {
                    "images": [
                        {
                            "id": i.id,
                            "name": i.name,
                            "status": "active",
                            "visibility": "public",
                            **({"vmcatcher_event_ad_mpuri": i.mpuri} if i.mpuri else {}),
                        }
                        for i in self.src.image_list
                    ],
                    "first": "/v2/images",
                    "schema": "/v2/schemas/images",
                },
                {},
            )
        if path == "/image/v2/schemas/image":
            return (
                200,
                {
                    "name": "image",
                    "properties": {"id": {"type": "string"}},
                    "additionalProperties": {"type": "string"},
                    "links": [],
                },
                {},
            )
        if path == "/network/v2.0/ports":
            pid = q.get("project_id", [None])[0]
            ips = self.src.ips_by_project.get(pid, [])
            return 200, {"ports": [{"id": f.port_id, "device_id": f.device_id} for f in ips]}, {}
        if path == "/network/v2.0/floatingips":
            pid = q.get("project_id", [None])[0]
            projects = [pid] if pid else list(self.src.ips_by_project)
            fips = [
                {
                    "id": f.id,
                    "floating_ip_address": f.address,
                    "project_id": p,
                    "tenant_id": p,
                    "port_id": f.port_id,
                    "port_details": {"device_id": f.device_id} if f.port_id else None,
                }
                for p in projects
                for f in self.src.ips_by_project.get(p, [])
            ]
            return 200, {"floatingips": fips}, {}
        if path == "/volume/v3/admin/volumes/detail":
            pid = q.get("project_id", [None])[0]
            return (
                200,
                {
                    "volumes": [
                        {
                            "id": v.id,
                            "name": v.name,
                            "os-vol-tenant-attr:tenant_id": pid,
                            "user_id": v.user_id,
                            "size": v.size_gb,
                            "created_at": _t(v.created, micro=True),
                            "status": v.status,
                        }
                        for v in self.src.volumes_by_project.get(pid, [])
                    ]
                },
                {},
            )
        if path == "/_stats":
            return 200, dict(self.stats), {}
        return 404, {"error": f"fake_openstack: no {method} {path}"}, {}


def serve(cloud: Cloud, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
        wbufsize = 1 << 16

        def _do(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            code, body, headers = cloud.answer(self.command, self.path)
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _do

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def clouds_yaml(port: int, where: Path) -> Path:
    path = where / "clouds.yaml"
    path.write_text(
        json.dumps(
            {
                "clouds": {
                    "fake": {
                        "auth_type": "password",
                        "auth": {
                            "auth_url": f"http://127.0.0.1:{port}/v3",
                            "username": "admin",
                            "password": "x",
                            "project_name": "admin",
                            "user_domain_name": "Default",
                            "project_domain_name": "Default",
                        },
                        "region_name": "RegionOne",
                        "interface": "public",
                        "identity_api_version": 3,
                    }
                }
            }
        )
    )
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=10000)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    import socket

    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    cloud = Cloud(args.servers, port)
    serve(cloud, port)
    where = Path(tempfile.mkdtemp(prefix="fake-openstack-"))
    print(clouds_yaml(port, where), flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
