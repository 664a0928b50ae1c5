"""Split records into messages by record count AND by size (so signed+base64 stays < 1 MB).

The size counted is the body's size once S/MIME canonicalises it for signing (every LF
becomes CRLF): short lines grow by up to a third, so counting bytes alone is not enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import RecordTooLarge
from .render import MessageFormat


@dataclass(frozen=True)
class Message:
    kind: str
    body: bytes
    records: int


def signed_size(text: str) -> int:
    """Bytes of ``text`` after S/MIME text canonicalisation (LF -> CRLF)."""
    return len(text.encode("utf-8")) + text.count("\n")


def split(
    fmt: MessageFormat, chunks: Sequence[str], *, max_records: int, max_bytes: int
) -> list[Message]:
    """Pack chunks in order, greedily, into as few messages as the two limits allow."""
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    messages: list[Message] = []
    batch: list[str] = []
    frame = signed_size(fmt.prefix) + signed_size(fmt.suffix)
    sep = signed_size(fmt.separator)
    size = frame
    for chunk in chunks:
        data_len = signed_size(chunk)
        if frame + data_len > max_bytes:
            raise RecordTooLarge(
                f"a {fmt.kind} record of {data_len} bytes exceeds {max_bytes} bytes"
            )
        extra = data_len + (sep if batch else 0)
        if batch and (len(batch) >= max_records or size + extra > max_bytes):
            messages.append(Message(fmt.kind, fmt.render(batch).encode("utf-8"), len(batch)))
            batch, size = [], frame
            extra = data_len
        batch.append(chunk)
        size += extra
    if batch:
        messages.append(Message(fmt.kind, fmt.render(batch).encode("utf-8"), len(batch)))
    return messages
