"""LDIF (RFC 2849) entries: the hand-off format between renderers, BDIIs and slapd.

An :class:`Entry` is a DN plus attributes (name -> list of values, order kept).
:func:`render` writes valid LDIF (base64 for every value that is not plain printable
ASCII, lines folded at 76); :func:`parse` reads it back (lines end at LF or CRLF only,
unfolding, base64, comments). Values are untrusted (image names, properties): whatever
they hold, one entry renders and parses back as exactly that entry.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

# Written as plain text only: printable ASCII (a subset of RFC 2849 SAFE-STRING, which
# would allow the C0 controls \x0b \x0c \x1c-\x1f and DEL that many readers, Python's
# str.splitlines() among them, take as line breaks), not starting with space, colon or
# less-than, not ending with a space. Anything else is base64. (fullmatch: "$" would
# also match before a final "\n".)
_SAFE = re.compile(r"(?![ :<])[\x20-\x7e]*(?<! )")
# a lone surrogate (JSON "\ud800") cannot be encoded as UTF-8
_SURROGATE = re.compile("[\ud800-\udfff]")
WRAP = 76


@dataclass
class Entry:
    dn: str
    attrs: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, *values: object) -> Entry:
        """Append values (None skipped; duplicates dropped) to attribute ``name``."""
        current = self.attrs.setdefault(name, [])
        for v in values:
            if v is None:
                continue
            s = _text(v)
            if s not in current:
                current.append(s)
        if not current:
            del self.attrs[name]
        return self

    def get(self, name: str) -> list[str]:
        for k, v in self.attrs.items():
            if k.lower() == name.lower():
                return v
        return []

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None


def _text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return _SURROGATE.sub("\ufffd", str(v))


def _line(name: str, value: str) -> str:
    if value == "" or _SAFE.fullmatch(value):
        raw = f"{name}: {value}" if value else f"{name}:"
    else:
        data = _SURROGATE.sub("\ufffd", value).encode("utf-8")
        raw = f"{name}:: {base64.b64encode(data).decode('ascii')}"
    if len(raw) <= WRAP:
        return raw
    parts = [raw[:WRAP]]
    rest = raw[WRAP:]
    while rest:
        parts.append(" " + rest[: WRAP - 1])
        rest = rest[WRAP - 1 :]
    return "\n".join(parts)


def render_entry(entry: Entry) -> str:
    lines = [_line("dn", entry.dn)]
    for name, values in entry.attrs.items():
        lines.extend(_line(name, v) for v in values)
    return "\n".join(lines) + "\n"


def render(entries: Iterable[Entry]) -> str:
    """LDIF text of ``entries``, separated by blank lines."""
    return "\n".join(render_entry(e) for e in entries)


def _physical_lines(text: str) -> Iterator[str]:
    """Lines separated by LF or CRLF only (RFC 2849 SEP); no other character ends a line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        yield line[:-1] if line.endswith("\r") else line


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    current: str | None = None
    start = 0
    for n, line in enumerate(_physical_lines(text), 1):
        if line.startswith(" ") and current is not None:
            current += line[1:]
            continue
        if current is not None:
            yield start, current
        current, start = line, n
    if current is not None:
        yield start, current


class LdifError(ValueError):
    pass


def parse(text: str) -> list[Entry]:
    """Parse LDIF content records (no change records). Raises :class:`LdifError` with the line."""
    entries: list[Entry] = []
    entry: Entry | None = None
    for n, line in _logical_lines(text):
        if not line.strip():
            entry = None
            continue
        if line.startswith("#") or line.startswith("version:"):
            continue
        if ":" not in line:
            raise LdifError(f"line {n}: expected 'attribute: value', got {line[:40]!r}")
        name, _, rest = line.partition(":")
        if rest.startswith(":"):
            try:
                value = base64.b64decode(rest[1:].strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError) as exc:
                raise LdifError(f"line {n}: bad base64 value for {name}: {exc}") from None
        elif rest.startswith("<"):
            raise LdifError(f"line {n}: URL values are not supported")
        else:
            value = rest.lstrip(" ")  # FILL; a plain value never starts with a space
            if "\r" in value or "\x00" in value:
                raise LdifError(f"line {n}: a plain value of {name} holds CR or NUL (not base64)")
        if entry is None:
            if name.lower() != "dn":
                raise LdifError(f"line {n}: an entry must start with 'dn:', got {name!r}")
            entry = Entry(dn=value)
            entries.append(entry)
        else:
            entry.attrs.setdefault(name, []).append(value)
    return entries
