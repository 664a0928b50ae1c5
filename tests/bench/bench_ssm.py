"""SSM sender throughput: messages per second to a local RabbitMQ STOMP broker, plain and TLS.

Default: 1,000 messages of 500 APEL cloud records each, signed with a test host
certificate, sent by the real send loop (lock, read, sign, SEND, wait for the receipt,
remove). Also shows the signing rate alone, since openssl dominates the cost.

    .venv/bin/python tests/bench/bench_ssm.py [--messages N] [--records R]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (support helpers)

from fedcloud_core.report import RunReport
from fedcloud_ssm.encoding import Encoder
from fedcloud_ssm.outbox import Outbox
from fedcloud_ssm.sender import Sender
from fedcloud_ssm.stomp_transport import StompTransport
from support.apel_queue import cloud_message, fill_queue
from support.pki import make_pki
from support.rabbitmq import RabbitNode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--records", type=int, default=500)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[tuple[str, int, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ssm-") as tmp:
        root = Path(tmp)
        pki = make_pki(root / "pki")
        bodies = [cloud_message(i, args.records) for i in range(args.messages)]
        size = sum(len(b) for b in bodies)
        enc = Encoder(pki.sender.cert, pki.sender.key)
        n_sign = min(100, args.messages)
        t0 = time.perf_counter()
        for b in bodies[:n_sign]:
            enc.encode(b)
        dt = time.perf_counter() - t0
        rows.append(
            (
                "sign only (openssl smime)",
                n_sign,
                dt,
                n_sign / dt,
                size / len(bodies) * n_sign / dt / 1e6,
            )
        )
        node = RabbitNode(
            root / "rabbit", cacert=pki.cafile, certfile=pki.broker.cert, keyfile=pki.broker.key
        )
        node.start()
        try:
            for tls in (False, True):
                label = "STOMP+TLS" if tls else "STOMP plain"
                qdir = root / f"out-{int(tls)}" / "cloud"
                fill_queue(qdir, bodies)
                transport = StompTransport(
                    "localhost" if tls else "127.0.0.1",
                    node.stomps_port if tls else node.stomp_port,
                    f"/queue/bench-{int(tls)}",
                    use_ssl=tls,
                    cert=pki.sender.cert,
                    key=pki.sender.key,
                    capath=pki.capath,
                    vhost="/",
                    timeout=60,
                    retries=1,
                    backoff=0.5,
                )
                report = RunReport(job="bench")
                t0 = time.perf_counter()
                Sender([Outbox(qdir, "cloud")], enc, transport).run(report)
                dt = time.perf_counter() - t0
                sent = int(report.counts.get("sent", 0))
                if sent != len(bodies):
                    print(f"{label}: only {sent} of {len(bodies)} sent", file=sys.stderr)
                    return 1
                rows.append((f"send loop, {label}", sent, dt, sent / dt, size / dt / 1e6))
        finally:
            node.stop()
    print(
        f"\nssm: {args.messages} messages x {args.records} records "
        f"({size / len(bodies) / 1024:.0f} KiB per message)"
    )
    print(f"{'case':<32} {'messages':>9} {'seconds':>9} {'msg/s':>9} {'MB/s':>8}")
    for name, n, dt, rate, mbs in rows:
        print(f"{name:<32} {n:>9} {dt:>9.2f} {rate:>9.1f} {mbs:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
