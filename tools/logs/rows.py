"""An ingest body all the way to insert-ready blocks, in one call that a worker process can run.

Parsing is the CPU-bound part of ingest (pure Python, tens of microseconds an event), and so is
encoding the rows for ClickHouse; the gateway runs :func:`parse_rows` in worker processes so
that several bodies parse and encode on several cores while its own process serves HTTP and
inserts. What it returns pickles cheaply: Native blocks as bytes, the ids as text, rejections,
counts by format.

Ids are random, or with ``ids="content"`` derived from the event itself (:func:`content_id`):
the same record sent twice gets the same id, so that a caller can store it once. Then a body's
repeats of a record are dropped here (the first is kept and each repeat counted in
``duplicates``), and so are the ids the caller lists in ``exclude`` (already stored).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import orjson

from core.logstore.schema import LogEvent
from core.logstore.store import encode_events
from tools.logs.payload import (
    FormatGate,
    Layout,
    ParseResult,
    Rejected,
    parse_lines,
    parse_payload,
)

type IdKind = Literal["random", "content"]

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
    duplicates: int = 0
    """Events dropped as repeats of an earlier one or as excluded (``ids="content"``)."""
    earliest: datetime | None = None
    latest: datetime | None = None
    """The earliest and latest event time among the rows (None when there are none)."""


def content_id(event: LogEvent) -> uuid.UUID:
    """The id of an event derived from what it says: a UUID (version 8, RFC 9562) from the
    SHA-256 of its format and its original leaves (key order and whitespace of the sender's
    JSON do not matter). The same record parsed twice has the same id."""
    digest = hashlib.sha256(event.format.encode())
    digest.update(b"\0")
    digest.update(orjson.dumps(event.fields, option=orjson.OPT_SORT_KEYS))
    value = bytearray(digest.digest()[:16])
    value[6] = (value[6] & 0x0F) | 0x80  # version 8
    value[8] = (value[8] & 0x3F) | 0x80  # RFC 9562 variant
    return uuid.UUID(bytes=bytes(value))


_UUID4_CLEAR: Final = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_UUID4_SET: Final = (0x8000 << 48) | (4 << 76)
"""The variant and version bits of a random UUID (RFC 9562 version 4), as :func:`uuid.uuid4`
sets them."""


def random_ids(count: int) -> list[tuple[str, int]]:
    """``count`` random ids (UUID version 4, as :func:`uuid.uuid4` makes them) as their text and
    their 128-bit integer: the randomness read at once, no UUID object made (a third of the
    time of ``uuid4()`` and ``str()`` an event)."""
    randomness = os.urandom(16 * count)
    ids: list[tuple[str, int]] = []
    for offset in range(0, 16 * count, 16):
        value = int.from_bytes(randomness[offset : offset + 16]) & _UUID4_CLEAR | _UUID4_SET
        digits = f"{value:032x}"
        text = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        ids.append((text, value))
    return ids


def warm() -> int:
    """Load what encoding a block takes (clickhouse-connect's encoder, which looks for numpy and
    pandas the first time), so that a worker's first body does not wait for it (a few tenths of
    a second); the process id."""
    now = datetime.now(UTC)
    event = LogEvent(timestamp=now, format="json", source="", raw="{}", values={}, fields={})
    encode_events([event], [0], now)
    return os.getpid()


def parse_rows(
    body: bytes,
    *,
    content_type: str | None,
    source: str | None,
    format: str | None,
    filename: str | None = None,
    layout: Layout | None = None,
    first_line: int = 1,
    gate: FormatGate | None = None,
    ids: IdKind = "random",
    exclude: Collection[str] = (),
    blocks_to: str | None = None,
) -> ParsedRows:
    """Parse ``body`` (as :func:`~tools.logs.parse_payload` does; with a line ``layout``, a piece
    of a body whose first line is ``first_line``, as :func:`~tools.logs.payload.parse_lines`
    does; with a ``gate``, keeping the events it lets through), build each event's row, with
    its id (see the module docstring) and this moment as its ingestion time, and encode the
    rows for :meth:`~core.logstore.store.LogStore.insert_block`. With ``blocks_to``, the blocks
    are written to that file (:func:`write_blocks`) instead of returned: a worker process then
    hands back the ids and counts through its pipe, not the megabytes of the blocks."""
    if layout is None or layout == "document":
        parsed = parse_payload(
            body,
            content_type=content_type,
            source=source,
            format=format,
            filename=filename,
            gate=gate,
        )
    else:
        parsed = parse_lines(
            body, layout=layout, first_line=first_line, source=source, format=format, gate=gate
        )
    result = _rows(parsed, ids=ids, exclude=exclude)
    return result if blocks_to is None else write_blocks(result, blocks_to)


def write_blocks(result: ParsedRows, path: str) -> ParsedRows:
    """``result`` with its blocks written one after another to ``path`` (one Native stream,
    which the store inserts without reading it into memory) instead of kept in it."""
    with open(path, "wb") as out:
        for block in result.blocks:
            out.write(block)
            result.written += len(block)
    result.blocks = []
    return result


def parse_rows_file(
    path: str,
    *,
    blocks_to: str,
    content_type: str | None,
    source: str | None,
    format: str | None,
    filename: str | None = None,
    gate: FormatGate | None = None,
    ids: IdKind = "random",
    exclude: Collection[str] = (),
) -> ParsedRows:
    """Parse the whole body stored at ``path`` (a document, see
    :func:`~tools.logs.payload.body_layout`) as :func:`parse_rows` does, and write its blocks
    one after another to ``blocks_to`` instead of returning them (one Native stream: the
    caller inserts it without reading it into memory)."""
    with open(path, "rb") as handle:
        body = handle.read()
    parsed = parse_payload(
        body,
        content_type=content_type,
        source=source,
        format=format,
        filename=filename,
        gate=gate,
    )
    del body
    return write_blocks(_rows(parsed, ids=ids, exclude=exclude), blocks_to)


def _rows(parsed: ParseResult, *, ids: IdKind, exclude: Collection[str]) -> ParsedRows:
    now = datetime.now(UTC)
    result = ParsedRows(rejected=parsed.rejected)
    formats = result.formats
    events: list[LogEvent] = []
    numbers: list[int] = []
    by_content = ids == "content"
    seen: set[str] = set(exclude) if by_content else set()
    earliest: datetime | None = None
    latest: datetime | None = None
    drawn = [] if by_content else random_ids(len(parsed.events))
    for index, event in enumerate(parsed.events):
        if by_content:
            event_id = content_id(event)
            text, number = str(event_id), event_id.int
            if text in seen:
                result.duplicates += 1
                continue
            seen.add(text)
        else:
            text, number = drawn[index]
        events.append(event)
        numbers.append(number)
        result.ids.append(text)
        formats[event.format] = formats.get(event.format, 0) + 1
        moment = event.timestamp
        if earliest is None or moment < earliest:
            earliest = moment
        if latest is None or moment > latest:
            latest = moment
    result.earliest, result.latest = earliest, latest
    for offset in range(0, len(events), BLOCK_ROWS):
        end = offset + BLOCK_ROWS
        result.blocks.append(encode_events(events[offset:end], numbers[offset:end], now))
    return result
