"""Publish the GLUE 2.1 JSON document to AMS, as EGI's cloud-info-provider does.

One message per run in the project ``cloud_info.ams.project`` (``egi_cloud_info``) and the
topic of the site's endpoint (``SITE_<site>_ENDPOINT_<gocdb id>`` unless configured); its
``data`` is the whole JSON document in base64. EGI's cloud-info-api subscribes to these
topics. The AMS client (token exchange, retries, error classes) is the core's.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass

from fedcloud_core.ams import AmsClient
from fedcloud_core.config import AppConfig
from fedcloud_core.errors import ConfigError

log = logging.getLogger(__name__)

# the message attributes; EGI's consumer reads only the data
ATTRIBUTES: dict[str, str] = {}


def ams_topic(cfg: AppConfig) -> str:
    """The configured topic, or the EGI convention ``SITE_<site>_ENDPOINT_<gocdb id>``."""
    ci = cfg.cloud_info
    if ci.ams.topic:
        return ci.ams.topic
    if not ci.gocdb_id:
        raise ConfigError(
            "is required to publish the cloud-info JSON to AMS (set it, or cloud_info.ams.topic)",
            key="cloud_info.gocdb_id",
        )
    return f"SITE_{cfg.site.name}_ENDPOINT_{ci.gocdb_id}"


def build_client(cfg: AppConfig) -> AmsClient:
    a = cfg.cloud_info.ams
    return AmsClient(
        a.host,
        port=a.port,
        auth_port=a.auth_port,
        project=a.project,
        cert=a.certificate,
        key=a.key,
        capath=a.capath,
        token=a.token.get_secret_value() if a.token else None,
        timeout=a.timeout,
        connect_timeout=a.connect_timeout,
        retries=a.retries,
        backoff=a.backoff,
        credential_hint="cloud_info.ams.token",
    )


@dataclass(frozen=True)
class Publication:
    """What one publish sends (and, after it, the message id AMS gave it)."""

    url: str
    project: str
    topic: str
    auth: str  # "token" or "x509"
    data: bytes
    message_id: str | None = None

    def dry_run_text(self) -> str:
        """What ``--dry-run`` prints: the request, with the document base64 as sent."""
        body = {
            "messages": [
                {"attributes": ATTRIBUTES, "data": base64.b64encode(self.data).decode("ascii")}
            ]
        }
        return (
            f"# would POST {self.url}:publish (project {self.project}, topic {self.topic}, "
            f"authentication: {self.auth}, {len(self.data)} bytes of JSON)\n"
            + json.dumps(body, indent=2)
            + "\n"
        )


def prepare(cfg: AppConfig, document: str) -> Publication:
    """The publication of ``document`` as configured; checks the config, no I/O."""
    a = cfg.cloud_info.ams
    topic = ams_topic(cfg)
    base = f"https://{a.host}" + ("" if a.port == 443 else f":{a.port}")
    return Publication(
        url=f"{base}/v1/projects/{a.project}/topics/{topic}",
        project=a.project,
        topic=topic,
        auth="token" if a.token else "x509",
        data=document.encode("utf-8"),
    )


def publish(pub: Publication, client: AmsClient) -> Publication:
    """Send ``pub`` as one message; returns it with the AMS message id. Raises AmsError."""
    client.open()
    try:
        msg_id = client.publish(pub.topic, pub.data, ATTRIBUTES, label="the cloud-info JSON")
    finally:
        client.close()
    log.info(
        "published the cloud-info JSON (%d bytes) to AMS %s/%s as message %s",
        len(pub.data),
        pub.project,
        pub.topic,
        msg_id,
    )
    return Publication(pub.url, pub.project, pub.topic, pub.auth, pub.data, msg_id)
