"""APEL's parsing rules, checked before anything is queued.

APEL rejects a whole message when one of its records breaks a rule, so each record
is checked on its own (a bad one is set aside) and each rendered message is
checked again as APEL would parse it. Rules (spec ``accounting.md`` section 1):

1. ``VMUUID`` and ``SiteName`` are mandatory (:func:`rule_mandatory`).
2. ``''``, ``none`` and ``null`` in any case mean NULL (:func:`is_null`, used by rule 1).
3. Integer fields hold integers (:func:`rule_integers`).
4. ``CpuCount`` and ``Benchmark`` hold decimals (:func:`rule_decimals`).
5. Times are an integer epoch or exactly ``YYYY-MM-DDTHH:MM:SSZ`` (:func:`rule_times`).
6. Unknown keys are rejected; allowed extras: RecordCreateTime, VO, VOGroup, VORole
   (:func:`rule_known_fields`).
7. The header is exactly ``APEL-cloud-message: v0.4`` (:func:`check_cloud_message`).
8. No ``%%``, newline or non-ASCII text in a value (:func:`rule_safe_values`).
9. ``Status`` is one of started, completed, suspended, paused, error, unknown
   (:func:`rule_status`).
10. A message is rejected whole if any record fails (:func:`check_cloud_message`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree import ElementTree as ET

from .cloud import HEADER
from .extra import ACC_TYPE, ACC_VERSION, IP_TYPE, IP_VERSION
from .storage import STAR_NS

FIELDS_V04 = (
    "VMUUID",
    "SiteName",
    "CloudComputeService",
    "MachineName",
    "LocalUserId",
    "LocalGroupId",
    "GlobalUserName",
    "FQAN",
    "Status",
    "StartTime",
    "EndTime",
    "SuspendDuration",
    "WallDuration",
    "CpuDuration",
    "CpuCount",
    "NetworkType",
    "NetworkInbound",
    "NetworkOutbound",
    "PublicIPCount",
    "Memory",
    "Disk",
    "BenchmarkType",
    "Benchmark",
    "StorageRecordId",
    "ImageId",
    "CloudType",
)
EXTRA_FIELDS = ("RecordCreateTime", "VO", "VOGroup", "VORole")
MANDATORY = ("VMUUID", "SiteName")
INTEGERS = (
    "SuspendDuration",
    "WallDuration",
    "CpuDuration",
    "NetworkInbound",
    "NetworkOutbound",
    "PublicIPCount",
    "Memory",
    "Disk",
)
DECIMALS = ("CpuCount", "Benchmark")
TIMES = ("StartTime", "EndTime", "RecordCreateTime")
STATUSES = ("started", "completed", "suspended", "paused", "error", "unknown")
_ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_INT = re.compile(r"^[+-]?\d+$")

Rule = Callable[[Mapping[str, str]], list[str]]


def is_null(value: str | None) -> bool:
    """APEL's NULL: missing, empty, ``none`` or ``null`` in any case."""
    return value is None or value.strip().lower() in ("", "none", "null")


def rule_mandatory(rec: Mapping[str, str]) -> list[str]:
    return [f"{k} is mandatory" for k in MANDATORY if is_null(rec.get(k))]


def rule_integers(rec: Mapping[str, str]) -> list[str]:
    return [
        f"{k}: not an integer: {rec[k]!r}"
        for k in INTEGERS
        if k in rec and not is_null(rec[k]) and not _INT.match(rec[k].strip())
    ]


def _decimal(text: str) -> bool:
    try:
        return Decimal(text.strip()).is_finite()
    except InvalidOperation:
        return False


def rule_decimals(rec: Mapping[str, str]) -> list[str]:
    return [
        f"{k}: not a decimal: {rec[k]!r}"
        for k in DECIMALS
        if k in rec and not is_null(rec[k]) and not _decimal(rec[k])
    ]


def rule_times(rec: Mapping[str, str]) -> list[str]:
    return [
        f"{k}: Unknown datetime format: {rec[k]!r}"
        for k in TIMES
        if k in rec
        and not is_null(rec[k])
        and not (_INT.match(rec[k].strip()) or _ISO_Z.match(rec[k].strip()))
    ]


def rule_known_fields(rec: Mapping[str, str]) -> list[str]:
    return [f"Unknown field: {k!r}" for k in rec if k not in FIELDS_V04 and k not in EXTRA_FIELDS]


def rule_safe_values(rec: Mapping[str, str]) -> list[str]:
    problems = []
    for k, v in rec.items():
        if "%%" in v:
            problems.append(f"{k}: '%%' in the value")
        if "\n" in v or "\r" in v:
            problems.append(f"{k}: newline in the value")
        if not v.isascii():
            problems.append(f"{k}: non-ASCII text in the value")
    return problems


def rule_status(rec: Mapping[str, str]) -> list[str]:
    s = rec.get("Status")
    if s is None or is_null(s) or s.strip() in STATUSES:
        return []
    return [f"Status: {s!r} is not one of {', '.join(STATUSES)}"]


CLOUD_RULES: tuple[Rule, ...] = (
    rule_mandatory,
    rule_integers,
    rule_decimals,
    rule_times,
    rule_known_fields,
    rule_safe_values,
    rule_status,
)


def check_cloud_record(rec: Mapping[str, str]) -> list[str]:
    """Every broken rule of one cloud record (field -> text); empty when APEL accepts it."""
    return [p for rule in CLOUD_RULES for p in rule(rec)]


def parse_cloud_message(text: str) -> tuple[str, list[dict[str, str]], list[str]]:
    """Split a message the way APEL does: header line, then records split on ``%%`` anywhere."""
    header, _, body = text.partition("\n")
    records: list[dict[str, str]] = []
    problems: list[str] = []
    for n, chunk in enumerate(body.split("%%"), 1):
        rec: dict[str, str] = {}
        for line in chunk.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep:
                problems.append(f"record {n}: line without ':': {line[:60]!r}")
                continue
            rec[key.strip()] = value.strip()
        records.append(rec)
    return header, records, problems


def check_cloud_message(text: str, rules: Sequence[Rule] = CLOUD_RULES) -> list[str]:
    """Every reason APEL would reject this message (it rejects it whole if there is any).

    ``rules``: the record rules to apply to each record as parsed back; fewer only when
    every record was checked against all of them before it was rendered.
    """
    problems = []
    if not text.isascii():
        problems.append("the message holds non-ASCII text")
    header, records, parse_problems = parse_cloud_message(text)
    if header != HEADER:
        problems.append(f"header is {header!r}, expected {HEADER!r}")
    problems += parse_problems
    for n, rec in enumerate(records, 1):
        problems += [f"record {n}: {p}" for rule in rules for p in rule(rec)]
    return problems


# ----------------------------------------------------------------------------- storage (StAR)


def check_storage_message(text: str) -> list[str]:
    """A StAR document: namespace, identity, site, times and an integer capacity per record."""
    ns = f"{{{STAR_NS}}}"
    try:
        root = ET.fromstring(text.encode("utf-8"))  # noqa: S314 - our own output, no entities
    except ET.ParseError as exc:
        return [f"not well-formed XML: {exc}"]
    if root.tag != f"{ns}StorageUsageRecords":
        return [f"root element is {root.tag}, expected {ns}StorageUsageRecords"]
    problems = [] if text.isascii() else ["the message holds non-ASCII text"]
    records = root.findall(f"{ns}StorageUsageRecord")
    if not records:
        problems.append("no StorageUsageRecord")
    for n, rec in enumerate(records, 1):
        ident = rec.find(f"{ns}RecordIdentity")
        if ident is None or not ident.get(f"{ns}recordId") or not ident.get(f"{ns}createTime"):
            problems.append(f"record {n}: RecordIdentity needs recordId and createTime")
        for tag in ("StorageSystem", "Site", "StartTime", "EndTime", "ResourceCapacityUsed"):
            el = rec.find(f"{ns}{tag}")
            if el is None or not (el.text or "").strip():
                problems.append(f"record {n}: {tag} is mandatory")
            elif tag.endswith("Time") and not _ISO_Z.match(el.text or ""):
                problems.append(f"record {n}: {tag}: Unknown datetime format: {el.text!r}")
            elif tag == "ResourceCapacityUsed" and not _INT.match(el.text or ""):
                problems.append(f"record {n}: {tag}: not an integer: {el.text!r}")
    return problems


# ----------------------------------------------------------------------------- JSON records

_JSON_REQUIRED = {
    IP_TYPE: ("MeasurementTime", "SiteName", "LocalGroup", "FQAN", "IPVersion", "IPCount"),
    ACC_TYPE: (
        "MeasurementMonth",
        "MeasurementYear",
        "AssociatedRecordType",
        "AssociatedRecord",
        "FQAN",
        "SiteName",
        "Count",
        "ActiveDuration",
        "AvailableDuration",
    ),
}
_JSON_VERSION = {IP_TYPE: IP_VERSION, ACC_TYPE: ACC_VERSION}


def check_json_record(kind: str, rec: Mapping[str, Any]) -> list[str]:
    problems = [f"{k} is mandatory" for k in _JSON_REQUIRED[kind] if rec.get(k) in (None, "")]
    for k, v in rec.items():
        if isinstance(v, str) and ("%%" in v or "\n" in v or not v.isascii()):
            problems.append(f"{k}: unsafe text in the value")
    return problems


def check_json_message(text: str) -> list[str]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    kind = doc.get("Type") if isinstance(doc, dict) else None
    if kind not in _JSON_REQUIRED:
        return [f"unknown message Type {kind!r}"]
    problems = []
    if doc.get("Version") != _JSON_VERSION[kind]:
        problems.append(f"Version is {doc.get('Version')!r}, expected {_JSON_VERSION[kind]!r}")
    records = doc.get("UsageRecords")
    if not isinstance(records, list) or not records:
        return [*problems, "UsageRecords must be a non-empty list"]
    for n, rec in enumerate(records, 1):
        problems += [f"record {n}: {p}" for p in check_json_record(kind, rec)]
    return problems
