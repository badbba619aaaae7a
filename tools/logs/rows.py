"""An ingest body all the way to store rows, in one call that a worker process can run.

Parsing is the CPU-bound part of ingest (pure Python, tens of microseconds an event); the
gateway runs :func:`parse_rows` in worker processes so that several bodies parse on several
cores while its own process serves HTTP and inserts. Everything it returns pickles cheaply:
plain rows of :data:`~core.logstore.store.COLUMNS` (ids as integers), the ids as text,
rejections, counts by format.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.logstore.store import event_row
from tools.logs.payload import Rejected, parse_payload


@dataclass(slots=True)
class ParsedRows:
    """A parsed body: its events as rows (payload order) with their ids, and its rejections."""

    rows: list[list[Any]] = field(default_factory=list)
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
    """Parse ``body`` (as :func:`~tools.logs.parse_payload` does) and build each event's row,
    with a fresh id and this moment as its ingestion time."""
    parsed = parse_payload(
        body, content_type=content_type, source=source, format=format, filename=filename
    )
    now = datetime.now(UTC)
    result = ParsedRows(rejected=parsed.rejected)
    formats = result.formats
    for event in parsed.events:
        event_id = uuid.uuid4()
        result.rows.append(event_row(event, event_id.int, now))
        result.ids.append(str(event_id))
        formats[event.format] = formats.get(event.format, 0) + 1
    return result
