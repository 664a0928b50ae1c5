"""Command line of the testbed: up, status, seed, stop, wipe, scale, unscale."""

from __future__ import annotations

import argparse
import fcntl
import logging
import sys
import time

from . import health, procs, stack
from .layout import SERVICES, Layout


def cmd_up(lay: Layout, args: argparse.Namespace) -> int:
    stack.up(lay, stack.Clock(), seed=not args.no_seed)
    return 0


def cmd_seed(lay: Layout, args: argparse.Namespace) -> int:
    from .seed import Seeder

    clock = stack.Clock()
    if not stack.all_healthy(lay):
        print("testbed is not running: run 'scripts/dev/testbed up' first", file=sys.stderr)
        return 1
    Seeder(lay, clock).run(skip_if_complete=False)
    return 0


def cmd_status(lay: Layout, args: argparse.Namespace) -> int:
    running = stack.tracked(lay)
    total = 0
    print(f"state dir: {lay.root}")
    print(f"{'service':<17} {'pid':>7} {'port':>6} {'procs':>5} {'rss MB':>8}  health")
    down = 0
    for svc in SERVICES:
        t = running.get(svc.name)
        if not t:
            print(f"{svc.name:<17} {'-':>7} {svc.port or '-':>6} {'-':>5} {'-':>8}  DOWN")
            down += 1
            continue
        members = procs.group_members(t.pid) or [t.pid]
        rss = sum(procs.rss_kib(p) for p in members)
        total += rss
        if svc.port is None:
            state = "running (heartbeat: see below)"
        elif svc.health_path:
            code = health.http_status(svc.port, svc.health_path)
            state = f"HTTP {code}" if code else "NOT ANSWERING"
        else:
            state = "listening" if health.port_open(svc.port) else "NOT LISTENING"
        print(
            f"{svc.name:<17} {t.pid:>7} {svc.port or '-':>6} {len(members):>5} {rss / 1024:>8.1f}  {state}"
        )
    if "epmd" in running:
        rss = procs.rss_kib(running["epmd"].pid)
        total += rss
        print(f"{'epmd (ours)':<17} {running['epmd'].pid:>7} {4369:>6} {1:>5} {rss / 1024:>8.1f}")
    print(f"{'TOTAL':<17} {'':>7} {'':>6} {'':>5} {total / 1024:>8.1f}")
    if down == len(SERVICES):
        print("testbed is stopped")
        return 3
    if not down:
        try:
            from .clients import session

            ready, missing = health.compute_ready(session(), None)
            print("workers: " + ("nova and cinder services up, placement and cinder pools present"
                                 if ready else f"NOT READY: {missing}"))  # fmt: skip
        except Exception as exc:
            print(f"workers: cannot ask the APIs: {exc}")
            return 1
    if lay.seed_json.exists():
        print(f"seed manifest: {lay.seed_json}")
    return 1 if down else 0


def cmd_stop(lay: Layout, args: argparse.Namespace) -> int:
    stack.stop(lay, stack.Clock())
    return 0


def cmd_wipe(lay: Layout, args: argparse.Namespace) -> int:
    stack.wipe(lay, stack.Clock())
    return 0


def cmd_scale(lay: Layout, args: argparse.Namespace) -> int:
    from .scale import scale

    scale(lay, images=args.images, flavors=args.flavors, servers=args.servers, projects=args.projects,
          workers=args.workers)  # fmt: skip
    if args.clone_servers:
        from .clone import clone_servers

        clone_servers(args.clone_servers)
    return 0


class _exclusive:
    """One mutating command at a time per state dir (CI jobs and developers share it)."""

    def __init__(self, lay: Layout) -> None:
        self.path = lay.root.parent / f".{lay.root.name}.lock"

    def __enter__(self) -> None:
        self.fh = open(self.path, "a")  # held until __exit__
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print(f"waiting for another testbed command to finish ({self.path})", flush=True)
            t0 = time.monotonic()
            fcntl.flock(self.fh, fcntl.LOCK_EX)
            print(f"lock acquired after {time.monotonic() - t0:.0f}s", flush=True)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def cmd_unscale(lay: Layout, args: argparse.Namespace) -> int:
    from .unscale import unscale

    unscale(lay, workers=args.workers, keep_servers=args.keep_servers, clones_only=args.clones_only)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="testbed", description="local OpenStack for tests and the demo"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "up", help="install, configure, start, wait until healthy, seed (idempotent)"
    )
    p.add_argument("--no-seed", action="store_true", help="do not seed the demo site")
    p.set_defaults(func=cmd_up)
    sub.add_parser("status", help="services, PIDs, ports, memory, health").set_defaults(
        func=cmd_status
    )
    sub.add_parser("seed", help="(re)seed the demo site, idempotently").set_defaults(func=cmd_seed)
    sub.add_parser("stop", help="stop every testbed process by PID").set_defaults(func=cmd_stop)
    sub.add_parser("wipe", help="stop and delete the state directory").set_defaults(func=cmd_wipe)
    p = sub.add_parser("scale", help="add many objects through the APIs (benchmarks)")
    for what in ("images", "flavors", "servers", "projects"):
        p.add_argument(
            f"--{what}", type=int, default=0, metavar="N", help=f"total scale-* {what} wanted"
        )
    p.add_argument(
        "--clone-servers",
        type=int,
        default=0,
        metavar="N",
        help="total scale-clone-* servers wanted: DB copies of real scale-server-* (fast, see docs)",
    )
    p.add_argument("--workers", type=int, default=16, help="concurrent API calls")
    p.set_defaults(func=cmd_scale)
    p = sub.add_parser("unscale", help="delete every scale-* object (never a seeded one)")
    p.add_argument("--workers", type=int, default=8, help="concurrent API calls")
    p.add_argument(
        "--keep-servers",
        action="store_true",
        help="keep servers (clones too) and projects, delete the rest",
    )
    p.add_argument(
        "--clones-only", action="store_true", help="delete only the scale-clone-* servers (DB)"
    )
    p.set_defaults(func=cmd_unscale)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # we chose neutronclient's bindings knowingly; its deprecation notice is noise here
    logging.getLogger("neutronclient").setLevel(logging.ERROR)
    lay = Layout.from_env()
    try:
        if args.command == "status":
            return int(args.func(lay, args))
        with _exclusive(lay):
            return int(args.func(lay, args))
    except (stack.StackError, procs.ProcError, TimeoutError, RuntimeError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
