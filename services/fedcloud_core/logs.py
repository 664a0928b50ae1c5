"""Logging set-up, done once by the CLI: text or JSON lines, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_REDACTIONS = [
    # credentials inside URLs: scheme://user:password@host
    (re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@"), r"\g<pre>***@"),
    # query strings carrying tokens/keys
    (
        re.compile(
            r"(?i)(?P<pre>[?&](?:token|key|password|secret|access_token|x-api-key)=)[^&\s]+"
        ),
        r"\g<pre>***",
    ),
    # header-ish / key=value / JSON pairs
    (
        re.compile(
            r"(?i)(?P<pre>[\"']?(?:x-auth-token|x-subject-token|x-api-key|password|secret|"
            r"token|access_token|application_credential_secret)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\"'\s,}]+"
        ),
        r"\g<pre>***",
    ),
]

_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Make sure ``value`` is never written to a log, whatever the message."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call must not break the job
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job", None)
        if job:
            doc["job"] = job
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(*, verbose: int = 0, fmt: str = "text", stream=None) -> None:
    """Configure the root logger. ``verbose``: 0 = INFO, 1+ = DEBUG (2+ also libraries)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet = logging.DEBUG if verbose >= 2 else logging.WARNING
    for noisy in (
        "keystoneauth",
        "urllib3",
        "stomp.py",
        "ldap3",
        "apscheduler",
        "novaclient",
        "glanceclient",
        "keystoneclient",
        "docker",
    ):
        logging.getLogger(noisy).setLevel(quiet)
