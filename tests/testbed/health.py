"""Readiness probes: plain HTTP for the APIs, heartbeats for the RPC workers."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .layout import HOST, Service


def port_open(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(port: int, path: str, timeout: float = 3.0) -> int | None:
    """HTTP status of an unauthenticated GET (version documents answer 200/300), None if unreachable."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def service_healthy(svc: Service) -> bool:
    if svc.port is None:
        return True  # RPC workers are judged by their heartbeats (compute_ready)
    if svc.health_path is None:
        return port_open(svc.port)
    status = http_status(svc.port, svc.health_path)
    return status is not None and status < 500


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(interval)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _fresh(row: dict, since: datetime | None) -> bool:
    if row.get("state") != "up" or row.get("status") != "enabled":
        return False
    if since is None:
        return True
    stamp = (row.get("updated_at") or "")[:19]
    return bool(stamp) and stamp >= since.strftime("%Y-%m-%dT%H:%M:%S")


NOVA_BINARIES = ("nova-conductor", "nova-scheduler", "nova-compute")
CINDER_BINARIES = ("cinder-scheduler", "cinder-volume")


def compute_ready(sess: Any, since: datetime | None) -> tuple[bool, str]:
    """Nova and Cinder workers report heartbeats newer than ``since``; placement and cinder pools exist.

    After a restart the old service rows still look "up" for a minute, so freshness,
    not the state column, is what proves a worker is consuming RPC again.
    """
    nova = sess.get("/os-services", endpoint_filter={"service_type": "compute"}).json()["services"]
    cinder = sess.get("/os-services", endpoint_filter={"service_type": "volumev3"}).json()[
        "services"
    ]
    fresh = {r["binary"]: _fresh(r, since) for r in nova + cinder}
    missing = [b for b in NOVA_BINARIES + CINDER_BINARIES if not fresh.get(b)]
    rps = sess.get("/resource_providers", endpoint_filter={"service_type": "placement"}).json()[
        "resource_providers"
    ]
    pools = sess.get(
        "/scheduler-stats/get_pools", endpoint_filter={"service_type": "volumev3"}
    ).json()["pools"]
    if not rps:
        missing.append("placement resource provider")
    if not pools:
        missing.append("cinder backend pool")
    return not missing, ", ".join(missing)
