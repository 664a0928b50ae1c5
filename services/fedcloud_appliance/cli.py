"""``fedcloud-appliance``: the one command line of the appliance.

Every job command takes ``--config``, ``--once``, ``--dry-run``, ``-v`` and
``--log-format``. Without ``--once`` a job runs on its configured interval until
stopped. Exit codes: see :class:`fedcloud_core.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from fedcloud_core import __version__
from fedcloud_core.commands import CommandSpec
from fedcloud_core.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    AppConfig,
    load_config,
    parse_config,
    render_sample,
)
from fedcloud_core.config.loader import SecretScope
from fedcloud_core.errors import ConfigError, ExitCode, FedcloudError, LockHeldError, exit_code_for
from fedcloud_core.files import atomic_write
from fedcloud_core.jobs import JobContext, JobSpec, execute
from fedcloud_core.logs import setup_logging
from fedcloud_core.predecessor_config import merge_fragments, scrub_secrets
from fedcloud_core.report import RunReport
from fedcloud_core.scheduler import RetryPolicy, build_scheduler, run_forever

from . import catalog, oneshot, probes, status, web

log = logging.getLogger("fedcloud_appliance")

CONFIG_HELP = f"appliance config file (default: ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: libraries too)"
    )
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    p.add_argument(
        "--once", action="store_true", help="run one cycle and exit (for cron and manual runs)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="do everything but write: print what would be published/queued/sent",
    )
    p.add_argument(
        "--wait-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a running instance of the job (default: exit 4 at once)",
    )
    p.add_argument(
        "--report-format",
        choices=("text", "json"),
        default="text",
        help="how the run report is printed on stdout",
    )
    _common(p)


def _subparsers(parent: argparse.ArgumentParser, cache: dict[str, Any], path: str) -> Any:
    if path not in cache:
        cache[path] = parent.add_subparsers(
            dest=f"cmd_{path or 'root'}", metavar="COMMAND", required=True
        )
    return cache[path]


def _add_nested(
    root: argparse.ArgumentParser,
    groups: dict[str, argparse.ArgumentParser],
    subs: dict[str, Any],
    name: str,
    **kw: Any,
) -> argparse.ArgumentParser:
    """Add ``a b`` as subcommand ``b`` of group ``a`` (creating the group)."""
    words = name.split()
    parent, path = root, ""
    for w in words[:-1]:
        key = f"{path} {w}".strip()
        if key not in groups:
            groups[key] = _subparsers(parent, subs, path).add_parser(w, help=f"{w} commands")
        parent, path = groups[key], key
    return _subparsers(parent, subs, path).add_parser(words[-1], **kw)


def build_parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="fedcloud-appliance",
        description="EGI Federated Cloud appliance: publish site information (BDII), account usage "
        "(APEL) and replicate VO images for an OpenStack site.",
        epilog="Each command has its own --help. Exit codes: 0 ok, 1 failed, 2 config/usage error, "
        "3 partial (some items failed), 4 another run holds the lock, 75 transient failure.",
    )
    root.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    groups: dict[str, argparse.ArgumentParser] = {}
    subs: dict[str, Any] = {}

    def add(name: str, **kw: Any) -> argparse.ArgumentParser:
        kw.setdefault("description", kw.get("help"))
        return _add_nested(root, groups, subs, name, **kw)

    p = add("config check", help="validate the appliance config and exit (2 on errors)")
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    _common(p)
    p.set_defaults(handler=cmd_config_check)
    p = add("config sample", help="print a commented sample config generated from the model")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(handler=cmd_config_sample)
    p = add(
        "config import-legacy",
        help="convert the older tools' config files into appliance YAML",
        description="Convert legacy files ("
        + ", ".join(i.name for i in catalog.importers())
        + ") into appliance config YAML on stdout (secrets are left out).",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="legacy config files")
    p.add_argument(
        "--format",
        dest="legacy_format",
        choices=[i.name for i in catalog.importers()],
        help="format of the files (default: guessed from the file name)",
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    _common(p)
    p.set_defaults(handler=cmd_import_legacy)

    for spec in catalog.jobs():
        p = add(spec.name, help=spec.help, description=spec.description or spec.help)
        _job_options(p)
        if spec.add_arguments:
            spec.add_arguments(p)
        p.set_defaults(handler=cmd_job, job=spec)
    for command in catalog.commands():
        p = add(command.name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
        _common(p)
        p.set_defaults(handler=cmd_command, command_spec=command)

    p = add(
        "status",
        help="each job's last run, result, figures and age; BDIIs, queues, cache",
        description="The appliance on one screen: each job's last run, result, figures and age, "
        "BDII freshness, outgoing queue depth and image cache use. Read-only.",
    )
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--bdii",
        action="append",
        metavar="NAME=URL",
        default=[],
        help="probe this BDII instead of the configured ones (repeatable; NAME 'site' "
        "queries the site's GLUE2DomainID base, others o=glue)",
    )
    p.add_argument("--no-bdii", action="store_true", help="do not query the BDIIs")
    p.add_argument(
        "--reports-from",
        action="append",
        type=Path,
        metavar="DIR",
        default=[],
        help="also read run reports and heartbeats from DIR/status, the newest winning "
        "(repeatable; the BDII containers keep theirs in a volume of their own)",
    )
    p.add_argument(
        "--jobs",
        nargs="+",
        metavar="JOB",
        choices=[j.key for j in catalog.jobs()],
        help="only these jobs (default: all)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when an enabled job failed or is overdue, or a BDII does not answer "
        "(container healthcheck)",
    )
    p.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve the read-only status page (HTML, /status.json) instead; host "
        "defaults to 127.0.0.1",
    )
    _common(p)
    p.set_defaults(handler=cmd_status)
    p = add(
        "probe",
        help="a Nagios/Icinga/ARGO check: one status line, exit 0 OK, 1 WARNING, 2 CRITICAL, "
        "3 UNKNOWN",
        description="Monitoring plugin (read-only): prints 'CHECK STATUS - text | perfdata' and "
        "exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. See docs/operations.md.",
    )
    p.add_argument("check", choices=probes.CHECKS, help="what to check")
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    p.add_argument("-w", "--warning", metavar="RANGE", help="warning threshold (Nagios range)")
    p.add_argument("-c", "--critical", metavar="RANGE", help="critical threshold (Nagios range)")
    p.add_argument(
        "-t", "--timeout", type=float, default=30.0, help="seconds before UNKNOWN (default 30)"
    )
    p.add_argument(
        "--bdii", choices=("resource", "site"), default="resource", help="bdii: which BDII"
    )
    p.add_argument("--url", help="bdii: LDAP URL (default: from the config)")
    p.add_argument("--base", help="bdii: search base (default: o=glue / the site's domain)")
    p.add_argument("--cert", type=Path, help="certificate: file (default: ssm.certificate)")
    p.add_argument("--key", type=Path, help="certificate: key (default: ssm.key)")
    p.add_argument("--capath", type=Path, help="certificate: CA directory (default: ssm.capath)")
    p.add_argument(
        "--free-warning", type=float, default=10.0, help="images: cache disk free %% (default 10)"
    )
    p.add_argument(
        "--free-critical", type=float, default=5.0, help="images: cache disk free %% (default 5)"
    )
    p.add_argument(
        "--reports-from",
        action="append",
        type=Path,
        metavar="DIR",
        default=[],
        help="also read run reports and heartbeats from DIR/status (as status --reports-from)",
    )
    _common(p)
    p.set_defaults(handler=cmd_probe)
    p.error = _probe_usage_error  # type: ignore[method-assign]
    p = add(
        "run-container",
        help="run one cycle of a job in a new container (for cron)",
        description="Run one cycle of JOB (" + ", ".join(sorted(oneshot.JOBS)) + ") in a "
        "throw-away container of the appliance image, with the bundle's named volumes and the "
        "config and certificates mounted read-only; exits with the job's exit code. Defaults "
        "come from FEDCLOUD_IMAGE, FEDCLOUD_CONFIG_DIR, FEDCLOUD_GRID_SECURITY, "
        "FEDCLOUD_VOLUME_PREFIX and FEDCLOUD_NETWORK.",
    )
    p.add_argument("job", help="job key or alias (accounting, ssm, images, cloud-info)")
    p.add_argument("--image", help="appliance image (default: fedcloud-appliance:latest)")
    p.add_argument("--config-dir", help="host directory with appliance.yaml (mounted read-only)")
    p.add_argument(
        "--grid-security", help="host certificate directory (default: /etc/grid-security)"
    )
    p.add_argument(
        "--volume-prefix",
        help="named volumes are PREFIX-state, -infosys, -spool, -images (default: fedcloud)",
    )
    p.add_argument(
        "--network", help="'host' or a Docker network name (default: the engine's bridge)"
    )
    p.add_argument("--timeout", type=float, help="stop the container after SECONDS (default: 6 h)")
    p.add_argument("job_args", nargs="*", help="after --: extra job options (e.g. -- --dry-run)")
    _common(p)
    p.set_defaults(handler=cmd_run_container)
    p = add("scheduler", help="run every job on its configured interval (the long-running service)")
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    p.add_argument(
        "--only",
        "--jobs",
        dest="jobs",
        nargs="+",
        metavar="JOB",
        choices=[j.key for j in catalog.jobs()],
        help="only these jobs (default: all enabled)",
    )
    p.add_argument(
        "--exclude",
        nargs="+",
        metavar="JOB",
        default=[],
        choices=[j.key for j in catalog.jobs()],
        help="not these jobs (e.g. images-sync, which the bundle runs in a container of its "
        "own, without the host key)",
    )
    _common(p)
    p.set_defaults(handler=cmd_scheduler)
    return root


# ----------------------------------------------------------------------------- handlers


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    cfg.site_bdii.published_host()  # ConfigError: the site BDII would publish a loopback URL
    print(
        f"{args.config or 'config'}: OK (site {cfg.site.name}, {len(cfg.vos)} VO(s), "
        f"{len(cfg.images.subscriptions)} image subscription(s))"
    )
    return ExitCode.OK


def cmd_config_sample(args: argparse.Namespace) -> int:
    text = render_sample()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return ExitCode.OK


def _pick_importer(path: Path, fmt: str | None) -> Any:
    for imp in catalog.importers():
        if (fmt and imp.name == fmt) or (not fmt and imp.matches(path)):
            return imp
    names = ", ".join(i.name for i in catalog.importers())
    raise ConfigError(
        f"{path}: cannot tell the format of this file; give --format (one of: {names})"
    )


def cmd_import_legacy(args: argparse.Namespace) -> int:
    fragments = []
    for f in args.files:
        if not f.is_file():
            raise ConfigError(f"{f}: no such file")
        imp = _pick_importer(f, args.legacy_format)
        log.info("importing %s as %s", f, imp.name)
        fragments.append(imp.convert(f))
    merged = scrub_secrets(merge_fragments(fragments))
    extra = {k: merged.pop(k) for k in list(merged) if k.startswith("x-")}
    text = (
        "# imported by 'fedcloud-appliance config import-legacy' from: "
        + ", ".join(str(f) for f in args.files)
        + "\n"
    )
    text += yaml.safe_dump(merged, sort_keys=False, default_flow_style=False)
    for k, v in extra.items():
        text += f"\n# {k} (not part of appliance.yaml):\n"
        text += "".join(f"# {line}\n" for line in yaml.safe_dump(v, sort_keys=False).splitlines())
    if "site" in merged:
        try:
            parse_config(yaml.safe_dump(merged), source="imported config", environ={})
        except ConfigError as exc:
            log.warning("the imported config is not complete yet: %s", exc)
    if args.output:
        # created 0600 and renamed into place: the hints name accounts, endpoints and files
        atomic_write(args.output, text, mode=0o600)
    else:
        sys.stdout.write(text)
    return ExitCode.OK


def _print_report(report: RunReport, fmt: str, stream: Any = None) -> None:
    print(report.to_json() if fmt == "json" else report.render_text(), file=stream or sys.stdout)


def secret_scope(specs: Sequence[JobSpec]) -> SecretScope:
    """The secret files ``specs`` read (``load_config(secrets=...)``): None (all) unless every
    job names its keys."""
    scopes = [s.secrets for s in specs]
    if not scopes or any(s is None for s in scopes):
        return None
    return lambda cfg: sorted({k for s in scopes if s is not None for k in s(cfg)})


def cmd_job(args: argparse.Namespace) -> int:
    spec: JobSpec = args.job
    cfg = load_config(args.config, secrets=spec.secrets)

    def make_ctx() -> JobContext:
        return JobContext(config=cfg, dry_run=args.dry_run, options=args)

    # a job option may make the run one-shot with its data on stdout (e.g. bdii-update --provider)
    data_on_stdout = spec.stdout_is_data(args)
    if args.once or args.dry_run or data_on_stdout:
        report = execute(spec, make_ctx(), lock_wait=args.wait_lock)
        stream = sys.stderr if data_on_stdout else None
        _print_report(report, args.report_format, stream)
        return report.exit_code  # 2 config error, 75 transient (RunReport.fail), ...
    minutes = spec.interval(cfg) if spec.interval else 0
    if minutes <= 0:
        raise ConfigError(f"{spec.name} has no interval in the scheduler section; use --once")
    run_forever(
        build_scheduler(
            [(spec, minutes)], make_ctx, jitter=cfg.scheduler.jitter, retry=_retry_policy(cfg)
        )
    )
    return ExitCode.OK


def cmd_command(args: argparse.Namespace) -> int:
    command: CommandSpec = args.command_spec
    return command.main(args)


def cmd_status(args: argparse.Namespace) -> int:
    # no secret file read: the status (and the images-scheduler healthcheck) uses none
    cfg = load_config(args.config, secrets=lambda _cfg: ())
    try:
        bdiis = [status.parse_bdii_option(v, cfg) for v in args.bdii] or None
        listen = web.parse_listen(args.serve) if args.serve else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    probe = None if args.no_bdii else status.ldap_probe

    def collect() -> dict[str, Any]:
        return status.collect(
            cfg, bdiis=bdiis, probe=probe, jobs=args.jobs, report_dirs=args.reports_from
        )

    if listen:
        web.serve(listen, collect)
        return ExitCode.OK
    data = collect()
    print(status.to_json(data) if args.json else status.render_text(data))
    if args.check:
        found = status.problems(data)
        for p in found:
            print(f"problem: {p}", file=sys.stderr)
        return ExitCode.FAILED if found else ExitCode.OK
    return ExitCode.OK


def _probe_usage_error(message: str) -> NoReturn:
    """A bad probe option is UNKNOWN (exit 3) with one status line, not argparse's exit 2."""
    print(f"PROBE UNKNOWN - {message}")
    sys.exit(3)


def cmd_probe(args: argparse.Namespace) -> int:
    """Never raises: every failure is an UNKNOWN status line (exit 3), as Nagios expects."""
    try:
        with probes.deadline(args.timeout, args.check):
            cfg = load_config(args.config)
            result = probes.run_probe(args.check, cfg, args)
    except probes.ProbeTimeout as exc:
        result = probes.unknown(args.check, str(exc))
    except (ConfigError, probes.ProbeError, FedcloudError) as exc:
        result = probes.unknown(args.check, str(exc).replace("\n", " "))
    except Exception as exc:  # noqa: BLE001 - a plugin answers UNKNOWN, never a traceback
        result = probes.unknown(args.check, f"unexpected error: {exc!r}")
    print(result.line)
    return int(result.state)


def cmd_run_container(args: argparse.Namespace) -> int:
    extra = [a for a in args.job_args if a != "--"]
    settings = oneshot.OneshotSettings.from_env(
        image=args.image,
        config_dir=args.config_dir or oneshot.default_config_dir(),
        grid_security=args.grid_security,
        volume_prefix=args.volume_prefix,
        network=args.network,
        timeout=args.timeout,
    )
    return oneshot.run_oneshot(args.job, settings, extra_args=extra)


def scheduled_jobs(only: Sequence[str] | None, exclude: Sequence[str] = ()) -> list[JobSpec]:
    """The jobs ``scheduler --only ... --exclude ...`` runs (each still needs an interval)."""
    wanted, skip = set(only or []), set(exclude)
    if wanted & skip:
        raise ConfigError(
            f"scheduler: {', '.join(sorted(wanted & skip))} given to both --only and --exclude"
        )
    specs = [s for s in catalog.jobs() if (not wanted or s.key in wanted) and s.key not in skip]
    if not specs:
        raise ConfigError("scheduler: --only/--exclude leave no job to run")
    return specs


def cmd_scheduler(args: argparse.Namespace) -> int:
    specs = scheduled_jobs(args.jobs, args.exclude)
    cfg = load_config(args.config, secrets=secret_scope(specs))
    selected = [(s, s.interval(cfg) if s.interval else 0) for s in specs]

    def make_ctx() -> JobContext:
        return JobContext(config=cfg, options=argparse.Namespace(once=True, dry_run=False))

    run_forever(
        build_scheduler(selected, make_ctx, jitter=cfg.scheduler.jitter, retry=_retry_policy(cfg))
    )
    return ExitCode.OK


def _retry_policy(cfg: AppConfig) -> RetryPolicy:
    return RetryPolicy(retries=cfg.scheduler.retries, backoff=cfg.scheduler.retry_backoff)


# ----------------------------------------------------------------------------- entry points


def main(argv: Sequence[str] | None = None, *, prefix: Sequence[str] = ()) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args([*prefix, *(sys.argv[1:] if argv is None else argv)])
    if extra:
        message = f"unrecognized arguments: {' '.join(extra)}"
        if getattr(args, "handler", None) is cmd_probe:
            _probe_usage_error(message)
        parser.error(message)
    setup_logging(verbose=getattr(args, "verbose", 0), fmt=getattr(args, "log_format", "text"))
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except LockHeldError as exc:
        print(f"{exc}", file=sys.stderr)
        return ExitCode.LOCKED
    except FedcloudError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130


def _entry(*prefix: str) -> Any:
    return lambda: sys.exit(main(prefix=prefix))


cloud_info_main = _entry("cloud-info")
bdii_update_main = _entry("bdii-update")
site_bdii_main = _entry("site-bdii")
accounting_main = _entry("accounting")
ssm_main = _entry("ssm")
images_main = _entry("images")


def run() -> None:
    sys.exit(main())
