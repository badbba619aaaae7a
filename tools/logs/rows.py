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

import array
import hashlib
import os
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Final, Literal

import orjson

from core.logstore.schema import LogEvent
from core.logstore.store import UUID_BYTES, encode_events, write_events
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
    """The events' ids, in order (random ids only while there are at most the ``ids_up_to`` of
    :func:`parse_rows`)."""
    count: int = 0
    """Events kept (as many as the blocks' rows)."""
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


_VERSION_4: Final = bytes(b & 0x0F | 0x40 for b in range(256))
_VARIANT: Final = bytes(b & 0x3F | 0x80 for b in range(256))
"""Byte translations setting the version (4) and variant (RFC 9562) bits of a random UUID, as
:func:`uuid.uuid4` sets them: its byte 6 and byte 8."""


def random_ids(count: int, *, texts: bool = True) -> tuple[list[str], bytes]:
    """``count`` random ids (UUID version 4, as :func:`uuid.uuid4` makes them): their text
    (without ``texts``, none) and their ``id`` column as Native data (see
    :data:`~core.logstore.store.EventIds`). The randomness is read at once and its bits set
    byte-wise; no UUID object or integer is made (a quarter of the time of ``uuid4()`` an
    event)."""
    data = bytearray(os.urandom(UUID_BYTES * count))
    data[6::UUID_BYTES] = data[6::UUID_BYTES].translate(_VERSION_4)
    data[8::UUID_BYTES] = data[8::UUID_BYTES].translate(_VARIANT)
    written: list[str] = []
    if texts:
        digits = data.hex()
        written = [
            f"{digits[at : at + 8]}-{digits[at + 8 : at + 12]}-{digits[at + 12 : at + 16]}-"
            f"{digits[at + 16 : at + 20]}-{digits[at + 20 : at + 32]}"
            for at in range(0, 2 * UUID_BYTES * count, 2 * UUID_BYTES)
        ]
    # Native UUID: the big-endian 128 bits as two 64-bit halves, each little-endian, which is
    # each 8 bytes reversed, whatever the machine's own order.
    halves = array.array("Q", data)
    halves.byteswap()
    return written, halves.tobytes()


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
    ids_up_to: int | None = None,
) -> ParsedRows:
    """Parse ``body`` (as :func:`~tools.logs.parse_payload` does; with a line ``layout``, a piece
    of a body whose first line is ``first_line``, as :func:`~tools.logs.payload.parse_lines`
    does; with a ``gate``, keeping the events it lets through), build each event's row, with
    its id (see the module docstring) and this moment as its ingestion time, and encode the
    rows for :meth:`~core.logstore.store.LogStore.insert_block`. With ``blocks_to``, the blocks
    are written to that file, one after another (one Native stream, which the store inserts
    without reading it into memory), instead of returned: a worker process then hands back the
    ids and counts through its pipe, not the megabytes of the blocks. With ``ids_up_to``,
    random ids are handed back only when there are at most that many events (a caller that
    lists no more than that many ids in its answer does not need the rest's text)."""
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
    if blocks_to is None:
        return _rows(parsed, ids=ids, exclude=exclude, ids_up_to=ids_up_to)
    with open(blocks_to, "wb") as out:
        return _rows(parsed, ids=ids, exclude=exclude, ids_up_to=ids_up_to, out=out)


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
    with open(blocks_to, "wb") as out:
        return _rows(parsed, ids=ids, exclude=exclude, out=out)


def _rows(
    parsed: ParseResult,
    *,
    ids: IdKind,
    exclude: Collection[str],
    ids_up_to: int | None = None,
    out: IO[bytes] | None = None,
) -> ParsedRows:
    now = datetime.now(UTC)
    result = ParsedRows(rejected=parsed.rejected)
    formats = result.formats
    events: list[LogEvent] = []
    earliest: datetime | None = None
    latest: datetime | None = None
    if ids == "content":
        numbers: list[int] = []
        seen: set[str] = set(exclude)
        for event in parsed.events:
            event_id = content_id(event)
            text = str(event_id)
            if text in seen:
                result.duplicates += 1
                continue
            seen.add(text)
            events.append(event)
            numbers.append(event_id.int)
            result.ids.append(text)
        column: Sequence[int] | bytes = numbers
    else:
        events = parsed.events
        wanted = ids_up_to is None or len(events) <= ids_up_to
        result.ids, column = random_ids(len(events), texts=wanted)
    for event in events:
        formats[event.format] = formats.get(event.format, 0) + 1
        moment = event.timestamp
        if earliest is None or moment < earliest:
            earliest = moment
        if latest is None or moment > latest:
            latest = moment
    result.count = len(events)
    result.earliest, result.latest = earliest, latest
    for offset in range(0, len(events), BLOCK_ROWS):
        end = offset + BLOCK_ROWS
        block = events[offset:end]
        block_ids = (
            column[offset * UUID_BYTES : end * UUID_BYTES]
            if isinstance(column, bytes)
            else column[offset:end]
        )
        if out is None:
            result.blocks.append(encode_events(block, block_ids, now))
        else:
            result.written += write_events(out, block, block_ids, now)
    return result
