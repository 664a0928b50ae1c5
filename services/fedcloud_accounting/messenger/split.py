"""Split records into messages by record count AND by size (so signed+base64 stays < 1 MB)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .render import MessageFormat


@dataclass(frozen=True)
class Message:
    kind: str
    body: bytes
    records: int


class RecordTooLarge(ValueError):
    """One record alone does not fit in a message of the maximum size."""


def split(
    fmt: MessageFormat, chunks: Sequence[str], *, max_records: int, max_bytes: int
) -> list[Message]:
    """Pack chunks in order, greedily, into as few messages as the two limits allow."""
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    messages: list[Message] = []
    batch: list[str] = []
    size = len(fmt.prefix) + len(fmt.suffix)
    for chunk in chunks:
        data_len = len(chunk.encode("utf-8"))
        if len(fmt.prefix) + len(fmt.suffix) + data_len > max_bytes:
            raise RecordTooLarge(
                f"a {fmt.kind} record of {data_len} bytes exceeds {max_bytes} bytes"
            )
        extra = data_len + (len(fmt.separator) if batch else 0)
        if batch and (len(batch) >= max_records or size + extra > max_bytes):
            messages.append(Message(fmt.kind, fmt.render(batch).encode("utf-8"), len(batch)))
            batch, size = [], len(fmt.prefix) + len(fmt.suffix)
            extra = data_len
        batch.append(chunk)
        size += extra
    if batch:
        messages.append(Message(fmt.kind, fmt.render(batch).encode("utf-8"), len(batch)))
    return messages
