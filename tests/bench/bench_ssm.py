"""SSM sender throughput to a local RabbitMQ STOMP broker, with a receipt per message.

Default: 1,000 messages of 500 APEL cloud records each, signed with a test host
certificate and sent by the real send loop (lock, read, sign, SEND, receipt, remove),
side by side in one run:

- ``openssl, 1 in flight``: one ``openssl smime -sign -text`` process per message and
  each receipt awaited before the next SEND: the ssmsend design, the baseline;
- ``builtin, 1 in flight``: signed in-process (``ssm.signer: builtin``), still one at a time;
- ``openssl, 16 in flight`` and ``builtin, 16 in flight``: pipelined (``ssm.window: 16``),
  each message still removed only after its own receipt;
- ``builtin, 16 in flight, TLS``: the same over STOMP+TLS with client certificates.

After each case a receiver drains the destination: it verifies every signature (openssl)
and the signer DN, and compares every body with what was queued. The signing rate alone
is shown too. The ratio printed at the end is the default path over the baseline.

    .venv/bin/python tests/bench/bench_ssm.py [--messages N] [--records R] [--window W]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (support helpers)

from fedcloud_core.report import RunReport
from fedcloud_dev.apel_receiver import MessageChecker, Receiver, Store
from fedcloud_ssm.encoding import Encoder
from fedcloud_ssm.outbox import Outbox
from fedcloud_ssm.sender import Sender
from fedcloud_ssm.stomp_transport import StompTransport
from support.apel_queue import cloud_message, fill_queue
from support.pki import Pki, make_pki
from support.rabbitmq import RabbitNode

TARGET = 5.0  # the default path must send at least this many times the baseline's msg/s


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def verify_all(
    pki: Pki, node: RabbitNode, destination: str, store: Path, want: dict[str, bytes]
) -> str:
    """Drain ``destination`` through the verifying receiver; '' when every message is right."""
    st = Store(store)
    Receiver(
        "127.0.0.1",
        node.stomp_port,
        destination,
        MessageChecker(pki.capath, [pki.sender.dn]),
        st,
        vhost="/",
        timeout=30,
    ).drain(idle=5.0, max_time=900)
    got = st.accepted()
    if st.counts["rejected"]:
        return f"{st.counts['rejected']} message(s) rejected by the receiver"
    if got != {k.replace("/", "-"): v for k, v in want.items()}:
        missing = len(set(want) - {k.replace("-", "/", 1) for k in got})
        return f"{len(got)} of {len(want)} accepted ({missing} missing or changed)"
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--records", type=int, default=500)
    ap.add_argument("--window", type=int, default=16)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("fedcloud_dev.apel_receiver").setLevel(logging.ERROR)
    rows: list[tuple[str, int, float, float, float, str]] = []
    failures: list[str] = []
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="bench-ssm-") as tmp:
        root = Path(tmp)
        pki = make_pki(root / "pki")
        bodies = [cloud_message(i, args.records) for i in range(args.messages)]
        size = sum(len(b) for b in bodies)
        per_msg = size / len(bodies)
        encoders = {
            s: Encoder(pki.sender.cert, pki.sender.key, signer=s) for s in ("openssl", "builtin")
        }
        n_sign = min(100, args.messages)
        for signer, enc in encoders.items():
            t0 = time.perf_counter()
            for b in bodies[:n_sign]:
                enc.encode(b)
            dt = time.perf_counter() - t0
            rows.append(
                (f"sign only, {signer}", n_sign, dt, n_sign / dt, per_msg * n_sign / dt / 1e6, "")
            )
        node = RabbitNode(
            root / "rabbit", cacert=pki.cafile, certfile=pki.broker.cert, keyfile=pki.broker.key
        )
        node.start()
        cases = [
            ("openssl", 1, False),
            ("builtin", 1, False),
            ("openssl", args.window, False),
            ("builtin", args.window, False),
            ("builtin", args.window, True),
        ]
        rates: dict[tuple[str, int, bool], float] = {}
        try:
            for n, (signer, window, tls) in enumerate(cases):
                label = f"{signer}, {window} in flight" + (", TLS" if tls else "")
                qdir = root / f"out-{n}" / "cloud"
                queued = fill_queue(qdir, bodies)
                destination = f"/queue/bench-{n}"
                transport = StompTransport(
                    "localhost" if tls else "127.0.0.1",
                    node.stomps_port if tls else node.stomp_port,
                    destination,
                    use_ssl=tls,
                    cert=pki.sender.cert,
                    key=pki.sender.key,
                    capath=pki.capath,
                    vhost="/",
                    timeout=60,
                    retries=1,
                    backoff=0.5,
                    window=window,
                )
                report = RunReport(job="bench")
                t0 = time.perf_counter()
                Sender([Outbox(qdir, "cloud")], encoders[signer], transport).run(report)
                dt = time.perf_counter() - t0
                sent = int(report.counts.get("sent", 0))
                rates[(signer, window, tls)] = sent / dt
                problem = "" if sent == len(bodies) else f"only {sent} of {len(bodies)} sent"
                problem = problem or verify_all(pki, node, destination, root / f"recv-{n}", queued)
                if problem:
                    failures.append(f"{label}: {problem}")
                check = "FAILED" if problem else f"{len(bodies)} verified"
                rows.append((f"send loop, {label}", sent, dt, sent / dt, size / dt / 1e6, check))
        finally:
            node.stop()
    load_after = load()
    print(
        f"\nssm: {args.messages} messages x {args.records} records "
        f"({per_msg / 1024:.0f} KiB per message), local RabbitMQ, STOMP plain unless TLS, "
        "a receipt per message; receiver: signature + DN + body of every message"
    )
    print(f"load average before: {load_before}, after: {load_after} ({os.cpu_count()} CPUs)")
    print(f"{'case':<40} {'messages':>9} {'seconds':>9} {'msg/s':>9} {'MB/s':>8}  receiver")
    for name, n, dt, rate, mbs, check in rows:
        print(f"{name:<40} {n:>9} {dt:>9.2f} {rate:>9.1f} {mbs:>8.2f}  {check}")
    base = rates.get(("openssl", 1, False), 0.0)
    ours = rates.get(("builtin", args.window, False), 0.0)
    if base:
        ratio = ours / base
        verdict = "ok" if ratio >= TARGET else f"BELOW the {TARGET:g}x target"
        print(
            f"\nbuiltin, {args.window} in flight vs openssl, 1 in flight (ssmsend's design): "
            f"{ours:.1f} / {base:.1f} msg/s = {ratio:.1f}x ({verdict})"
        )
        if ratio < TARGET:
            failures.append(f"ratio {ratio:.1f}x < {TARGET:g}x")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
