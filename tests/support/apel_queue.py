"""Helpers of the SSM tests: APEL-shaped messages in a dirq outgoing queue, appliance configs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml
from dirq.QueueSimple import QueueSimple

from support.pki import Cred, Pki
from support.rabbitmq import RabbitNode


def cloud_message(i: int, records: int = 20) -> bytes:
    recs = []
    for r in range(records):
        recs.append(
            "\n".join(
                [
                    f"CloudComputeService: TEST-SITE-{i}",
                    "CloudType: OpenStack/fake (OpenStack)",
                    "CpuCount: 2",
                    f"CpuDuration: {7200 + r}",
                    "EndTime: 0",
                    "FQAN: ops",
                    f"LocalGroupId: project-{i}",
                    f"MachineName: vm-{i}-{r}",
                    "Memory: 2048",
                    "SiteName: TEST-SITE",
                    "StartTime: 1700000000",
                    "Status: started",
                    f"VMUUID: {uuid.UUID(int=i * 100000 + r)}",
                    f"WallDuration: {3600 + r}",
                ]
            )
        )
    return ("APEL-cloud-message: v0.4\n" + "\n%%\n".join(recs) + "\n").encode()


def fill_queue(path: Path, bodies: list[bytes]) -> dict[str, bytes]:
    q = QueueSimple(str(path))
    return {q.add(b): b for b in bodies}


def write_config(tmp: Path, ssm: dict[str, Any], *, queues: tuple[str, ...] = ("cloud",)) -> Path:
    cfg = {
        "site": {"name": "TEST-SITE"},
        "paths": {"state_dir": str(tmp / "state"), "spool_dir": str(tmp / "spool")},
        "ssm": {"queues": list(queues), **ssm},
        # only what these queues carry is extracted (a type nobody sends is a config error)
        "accounting": {"storage_records": "storage" in queues},
    }
    p = tmp / "appliance.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def stomp_settings(
    pki: Pki, broker: RabbitNode, destination: str, *, tls: bool = True, who: Cred | None = None
) -> dict[str, Any]:
    cred = who or pki.sender
    return {
        "protocol": "STOMP",
        "host": "127.0.0.1" if not tls else "localhost",
        "port": broker.stomps_port if tls else broker.stomp_port,
        "use_ssl": tls,
        "destination": destination,
        "stomp_vhost": "/",
        "certificate": str(cred.cert),
        "key": str(cred.key),
        "capath": str(pki.capath),
        "timeout": 10,
        "connect_timeout": 5,
        "retries": 1,
        "backoff": 0.1,
    }
