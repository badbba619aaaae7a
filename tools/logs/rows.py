"""An ingest body all the way to insert-ready blocks, in one call that a worker process can run.

Parsing is the CPU-bound part of ingest (pure Python, tens of microseconds an event), and so is
encoding the rows for ClickHouse; the gateway runs :func:`parse_rows` in worker processes so
that several bodies parse and encode on several cores while its own process serves HTTP and
inserts. What it returns pickles cheaply: Native blocks as bytes, the ids as text, rejections,
counts by format.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from core.logstore.store import encode_rows, event_row
from tools.logs.payload import Rejected, parse_payload

BLOCK_ROWS: Final = 20_000
"""Events per block (one insert each): large enough for ClickHouse parts to stay few, small
enough to bound the memory a block holds."""


@dataclass(slots=True)
class ParsedRows:
    """A parsed body: its events as Native blocks of at most :data:`BLOCK_ROWS` rows (payload
    order), their ids, and the body's rejections."""

    blocks: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    """Events by the parser that read them."""


def parse_rows(
    body: bytes,
    *,
    content_type: str | None,
    source: str | None,
    format: str | None,
    filename: str | None = None,
) -> ParsedRows:
    """Parse ``body`` (as :func:`~tools.logs.parse_payload` does), build each event's row, with a
    fresh id and this moment as its ingestion time, and encode the rows for
    :meth:`~core.logstore.store.LogStore.insert_block`."""
    parsed = parse_payload(
        body, content_type=content_type, source=source, format=format, filename=filename
    )
    now = datetime.now(UTC)
    result = ParsedRows(rejected=parsed.rejected)
    formats = result.formats
    rows: list[list[Any]] = []
    for event in parsed.events:
        event_id = uuid.uuid4()
        rows.append(event_row(event, event_id.int, now))
        result.ids.append(str(event_id))
        formats[event.format] = formats.get(event.format, 0) + 1
    for offset in range(0, len(rows), BLOCK_ROWS):
        result.blocks.append(encode_rows(rows[offset : offset + BLOCK_ROWS]))
    return result
