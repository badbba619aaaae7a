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
from tools.logs.payload import Layout, ParseResult, Rejected, parse_lines, parse_payload

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
    written: int = 0
    """Bytes of blocks written to a file instead of kept in :attr:`blocks`
    (:func:`parse_rows_file`)."""


def parse_rows(
    body: bytes,
    *,
    content_type: str | None,
    source: str | None,
    format: str | None,
    filename: str | None = None,
    layout: Layout | None = None,
    first_line: int = 1,
) -> ParsedRows:
    """Parse ``body`` (as :func:`~tools.logs.parse_payload` does; with a line ``layout``, a piece
    of a body whose first line is ``first_line``, as :func:`~tools.logs.payload.parse_lines`
    does), build each event's row, with a fresh id and this moment as its ingestion time, and
    encode the rows for :meth:`~core.logstore.store.LogStore.insert_block`."""
    if layout is None or layout == "document":
        parsed = parse_payload(
            body, content_type=content_type, source=source, format=format, filename=filename
        )
    else:
        parsed = parse_lines(
            body, layout=layout, first_line=first_line, source=source, format=format
        )
    return _rows(parsed)


def parse_rows_file(
    path: str,
    *,
    blocks_to: str,
    content_type: str | None,
    source: str | None,
    format: str | None,
    filename: str | None = None,
) -> ParsedRows:
    """Parse the whole body stored at ``path`` (a document, see
    :func:`~tools.logs.payload.body_layout`) as :func:`parse_rows` does, and write its blocks
    one after another to ``blocks_to`` instead of returning them (one Native stream: the
    caller inserts it without reading it into memory)."""
    with open(path, "rb") as handle:
        body = handle.read()
    parsed = parse_payload(
        body, content_type=content_type, source=source, format=format, filename=filename
    )
    del body
    result = _rows(parsed)
    with open(blocks_to, "wb") as out:
        for block in result.blocks:
            out.write(block)
            result.written += len(block)
    result.blocks = []
    return result


def _rows(parsed: ParseResult) -> ParsedRows:
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
