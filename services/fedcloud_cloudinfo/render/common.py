"""Helpers shared by the LDIF renderers: DNs, timestamps, placeholders."""

from __future__ import annotations

from datetime import UTC, datetime

from fedcloud_core.ldif import Entry

SUFFIX = "o=glue"
GROUP_DN = f"GLUE2GroupID=resource,{SUFFIX}"
UNKNOWN_INT = 999999999  # GLUE2 placeholder for an unknown integer
UNKNOWN_STR = "UNDEFINEDVALUE"

_DN_SPECIAL = set(',+"\\<>;=')


def escape_rdn_value(value: str) -> str:
    """RFC 4514 escaping of an attribute value in a DN."""
    out = []
    for i, ch in enumerate(value):
        if ch in _DN_SPECIAL or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def rdn(attr: str, value: str, parent: str) -> str:
    return f"{attr}={escape_rdn_value(value)},{parent}"


def glue_time(ts: datetime) -> str:
    """UTC ``YYYY-MM-DDThh:mm:ssZ`` (no microseconds, no offset)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def glue_int(value: int | None) -> int:
    """An INTEGER attribute value: the GLUE2 placeholder when unknown or unlimited (-1)."""
    if value is None or value < 0:
        return UNKNOWN_INT
    return int(value)


def top_entries() -> list[Entry]:
    """The suffix and the ``resource`` group at the top of every snapshot."""
    return [
        Entry(SUFFIX).add("objectClass", "organization").add("o", "glue"),
        Entry(GROUP_DN).add("objectClass", "GLUE2Group").add("GLUE2GroupID", "resource"),
    ]


def entity(dn: str, classes: list[str], id_attr: str, id_value: str) -> Entry:
    e = Entry(dn)
    e.add("objectClass", *classes)
    e.add(id_attr, id_value)
    return e
