"""Job wiring of the SSM sender: ``fedcloud-appliance ssm send``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from fedcloud_core.config import AppConfig
from fedcloud_core.errors import ConfigError
from fedcloud_core.jobs import JobContext, JobSpec
from fedcloud_core.report import RunReport

from .ams_transport import AmsTransport
from .credentials import check_credentials
from .encoding import Encoder
from .outbox import Outbox
from .sender import Sender, Transport
from .stomp_transport import StompTransport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SsmDeps:
    """What a test may inject into ``ssm send`` (``None``: the real one)."""

    transport: Transport | None = None  # else STOMP or AMS from ssm.protocol


def build_transport(config: AppConfig) -> Transport:
    c = config.ssm
    if c.protocol == "AMS":
        token = c.ams_token.get_secret_value() if c.ams_token else None
        return AmsTransport(
            c.host,
            port=c.port,
            auth_port=c.ams_auth_port,
            project=c.ams_project,
            topics=c.ams_topics,
            cert=c.certificate,
            key=c.key,
            capath=c.capath,
            token=token,
            timeout=c.timeout,
            connect_timeout=c.connect_timeout,
            retries=c.retries,
            backoff=c.backoff,
        )
    return StompTransport(
        c.host,
        c.port,
        c.destination,
        use_ssl=c.use_ssl,
        cert=c.certificate,
        key=c.key,
        capath=c.capath,
        timeout=c.timeout,
        connect_timeout=c.connect_timeout,
        retries=c.retries,
        backoff=c.backoff,
        vhost=c.stomp_vhost,
        window=c.window,
    )


def run_send(ctx: JobContext) -> RunReport:
    c = ctx.config.ssm
    report = RunReport(job="ssm-send", dry_run=ctx.dry_run)
    creds = check_credentials(
        c.certificate, c.key, min_validity=timedelta(hours=c.min_cert_validity_hours)
    )
    log.info(
        "signing as %s (certificate valid until %s)", creds.subject_dn, creds.not_after.isoformat()
    )
    if c.server_cert is not None and not c.server_cert.is_file():
        raise ConfigError(
            f"server certificate {c.server_cert} does not exist", key="ssm.server_cert"
        )
    root = ctx.config.outgoing_dir
    outboxes = [Outbox(root / q, q) for q in c.send_queues]
    encoder = Encoder(
        c.certificate,
        c.key,
        server_cert=c.server_cert,
        ascii_only=c.ascii_only,
        timeout=c.timeout,
        signer=c.signer,
    )
    transport = ctx.deps_as(SsmDeps).transport
    if transport is None and not ctx.dry_run:
        transport = build_transport(ctx.config)
    report.details["protocol"] = c.protocol
    report.details["signer"] = creds.subject_dn
    report.details["signed_by"] = c.signer
    return Sender(outboxes, encoder, transport, dry_run=ctx.dry_run).run(report)


JOBS = [
    JobSpec(
        name="ssm send",
        help="sign and send the outgoing accounting messages (STOMP or AMS)",
        run=run_send,
        interval=lambda c: c.scheduler.ssm,
        description="Read the outgoing dirq queues (ssm.queues under <spool_dir>/outgoing), sign each "
        "message with the host certificate and send it to the APEL broker (STOMP) or AMS; a message "
        "is removed only after the broker acknowledged it.",
    ),
]
COMMANDS: list = []
