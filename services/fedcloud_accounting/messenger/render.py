"""Message formats: a prefix, the record chunks joined by a separator, a suffix.

The cloud format is byte-exact to what APEL expects: ``APEL-cloud-message: v0.4``,
then the records (keys sorted) joined by ``\\n%%\\n``, one final newline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..record.cloud import HEADER, render_record
from ..record.extra import ACC_TYPE, ACC_VERSION, IP_TYPE, IP_VERSION
from ..record.storage import XML_PREFIX, XML_SUFFIX


@dataclass(frozen=True)
class MessageFormat:
    kind: str  # cloud | storage | ip | accelerator
    prefix: str
    separator: str
    suffix: str

    def render(self, chunks: Sequence[str]) -> str:
        return self.prefix + self.separator.join(chunks) + self.suffix


def _json_format(kind: str, type_: str, version: str) -> MessageFormat:
    # keys sorted: Type, UsageRecords, Version
    return MessageFormat(
        kind,
        '{"Type": ' + json.dumps(type_) + ', "UsageRecords": [',
        ", ",
        '], "Version": ' + json.dumps(version) + "}\n",
    )


CLOUD = MessageFormat("cloud", HEADER + "\n", "\n%%\n", "\n")
STORAGE = MessageFormat("storage", XML_PREFIX, "", XML_SUFFIX)
IP = _json_format("ip", IP_TYPE, IP_VERSION)
ACCELERATOR = _json_format("accelerator", ACC_TYPE, ACC_VERSION)
FORMATS = {f.kind: f for f in (CLOUD, STORAGE, IP, ACCELERATOR)}


def cloud_chunk(wire: dict[str, str]) -> str:
    return render_record(wire)


def json_chunk(wire: dict[str, Any]) -> str:
    return json.dumps(wire, sort_keys=True, ensure_ascii=True)
