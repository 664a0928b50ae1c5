"""Make a value safe for APEL's line-and-``%%`` message format.

APEL splits a message on ``%%`` anywhere and on newlines, and rejects non-ASCII
text: a VM called ``"café\\n%%"`` would break its whole message. Values are
transliterated to ASCII where possible (``é`` -> ``e``), other characters become
``?``, control characters (newlines, tabs) become spaces and runs of ``%`` collapse
to one ``%``.
"""

from __future__ import annotations

import re
import unicodedata

_PERCENTS = re.compile(r"%{2,}")
_SPACES = re.compile(r"\s+")


def clean(value: str) -> str:
    """The ASCII, single-line, ``%%``-free form of ``value``."""
    if (
        value.isascii()
        and value.isprintable()  # printable ASCII: its only white space is " "
        and "  " not in value
        and "%%" not in value
        and value[:1] != " "
        and value[-1:] != " "
    ):
        return value  # already clean: what the loop below would give back
    out = []
    for ch in unicodedata.normalize("NFKD", value):
        if ch.isascii():
            out.append(" " if not ch.isprintable() else ch)
        elif unicodedata.combining(ch):
            continue  # the accent of a decomposed letter
        elif ch.isspace():
            out.append(" ")
        else:
            out.append("?")
    text = _SPACES.sub(" ", "".join(out)).strip()
    return _PERCENTS.sub("%", text)
