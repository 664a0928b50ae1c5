"""Split a message in two halves of its records (when AMS says 413: too large).

Formats: APEL key-value text (a header line, records separated by ``%%`` lines),
StAR storage XML (``StorageUsageRecord`` elements), APEL JSON (``UsageRecords`` list).
"""

from __future__ import annotations

import json
import re

from .errors import BadMessage

_STAR = re.compile(
    rb"<(?:[\w.-]+:)?StorageUsageRecord\b(?!s).*?</(?:[\w.-]+:)?StorageUsageRecord>", re.S
)


def split_in_two(body: bytes) -> tuple[bytes, bytes]:
    """Two messages holding the records of ``body``; :class:`BadMessage` when it cannot be split."""
    head = body.lstrip()[:1]
    if head == b"{":
        return _split_json(body)
    if head == b"<":
        return _split_star(body)
    return _split_apel_text(body)


def _halves(n: int) -> int:
    if n < 2:
        raise BadMessage("too large for the transport even as a single record")
    return n // 2


def _split_apel_text(body: bytes) -> tuple[bytes, bytes]:
    header, sep, rest = body.partition(b"\n")
    if not sep or b":" not in header:
        raise BadMessage("cannot split: no APEL header line")
    trailing = b"\n" if rest.endswith(b"\n") else b""
    records = re.split(rb"\n%%\n", rest[: len(rest) - len(trailing)])
    cut = _halves(len(records))
    return tuple(  # type: ignore[return-value]
        header + b"\n" + b"\n%%\n".join(part) + trailing for part in (records[:cut], records[cut:])
    )


def _split_star(body: bytes) -> tuple[bytes, bytes]:
    found = list(_STAR.finditer(body))
    cut = _halves(len(found))
    prefix, suffix = body[: found[0].start()], body[found[-1].end() :]
    join = body[found[0].end() : found[1].start()] if len(found) > 1 else b""
    parts = ([m.group(0) for m in found[:cut]], [m.group(0) for m in found[cut:]])
    return tuple(prefix + join.join(p) + suffix for p in parts)  # type: ignore[return-value]


def _split_json(body: bytes) -> tuple[bytes, bytes]:
    try:
        doc = json.loads(body)
        records = doc["UsageRecords"]
    except (ValueError, KeyError, TypeError):
        raise BadMessage("cannot split: JSON message without a UsageRecords list") from None
    cut = _halves(len(records))
    return tuple(  # type: ignore[return-value]
        json.dumps({**doc, "UsageRecords": part}).encode()
        for part in (records[:cut], records[cut:])
    )
