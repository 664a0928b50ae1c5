"""``python -m ova.builder``: build | validate | boottest (called by scripts/dev/ova)."""

from __future__ import annotations

import argparse
import logging
import sys

from fedcloud_core.errors import FedcloudError

from . import build
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ova.builder", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the qcow2 and the OVA into build/ova/")
    b.add_argument(
        "--stage",
        default=",".join(build.STAGES),
        help=f"comma-separated stages (default: all: {','.join(build.STAGES)})",
    )
    sub.add_parser("validate", help="check the OVA as importers do")
    t = sub.add_parser(
        "boottest", help="boot the qcow2 and the OVA's VMDK under QEMU and check the services"
    )
    t.add_argument("--only", choices=("qcow2", "ova"), help="boot only this one")
    t.add_argument(
        "--ssh-timeout", type=float, default=600.0, help="seconds until SSH answers (600)"
    )
    t.add_argument(
        "--service-timeout",
        type=float,
        default=900.0,
        help="seconds for each later wait: cloud-init, first boot, bdii, LDAP (900)",
    )
    t.add_argument(
        "--memory-mb",
        type=int,
        default=3072,
        help="guest memory (3072; the OVF says OVA_MEMORY_MB)",
    )
    t.add_argument("--cpus", type=int, default=2, help="guest vCPUs (-smp, 2)")
    t.add_argument(
        "--all-services",
        action="store_true",
        help="let the first boot start every configured unit (default: only bdii.service, "
        "through /etc/fedcloud-appliance/firstboot.env in the seed)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[ova] %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings.from_env()
    try:
        if args.cmd == "build":
            stages = tuple(x.strip() for x in args.stage.split(",") if x.strip())
            unknown = [x for x in stages if x not in build.STAGES]
            if unknown:
                p.error(f"unknown stage(s): {', '.join(unknown)}")
            state = build.run(settings, stages)
            print(build.summary(state))
            return 0
        if args.cmd == "validate":
            from . import validate

            return validate.main(settings)
        from . import boottest

        return boottest.main(
            settings,
            only=args.only,
            ssh_timeout=args.ssh_timeout,
            service_timeout=args.service_timeout,
            memory_mb=args.memory_mb,
            cpus=args.cpus,
            all_services=args.all_services,
        )
    except FedcloudError as exc:
        print(f"[ova] FAILED: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
