"""The host certificates the appliance uses, and when they expire (read-only).

``status --json``, the page and ``/metrics`` show the expiry of each distinct
certificate file the config names (``ssm.certificate``; ``cloud_info.ams.certificate`` when cloud-info publishes
to AMS).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fedcloud_core.config import AppConfig


def configured(config: AppConfig) -> dict[str, Path]:
    """``{use: path}`` of every certificate the config names, one entry per file."""
    found: dict[str, Path] = {"ssm": Path(config.ssm.certificate)}
    ams = config.cloud_info.ams.certificate if config.cloud_info.publish == "ams" else None
    if ams is not None and Path(ams) not in found.values():
        found["cloud-info"] = Path(ams)
    return found


def expiry(path: Path) -> dict[str, Any]:
    """``{"path", "not_after", "subject"}`` or ``{"path", "error"}``."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        return {"path": str(path), "error": exc.strerror or str(exc)}
    except ValueError as exc:
        return {"path": str(path), "error": f"not a PEM certificate: {exc}"}
    after: datetime = cert.not_valid_after_utc
    return {
        "path": str(path),
        "not_after": after.isoformat(),
        "subject": cert.subject.rfc4514_string(),
    }


def collect(config: AppConfig) -> list[dict[str, Any]]:
    return [{"use": use, **expiry(p)} for use, p in configured(config).items()]
