"""The log store: one ClickHouse table behind one interface, through clickhouse-connect.

Two transports of the same client library: the embedded chDB (``interface="chdb"``, the data
under ``<data dir>/logstore``; the default) and an HTTP ClickHouse server
(``AURORA_CLICKHOUSE_URL``). chDB runs in-process and allows one data path per process, so the
gateway owns the store and every other process goes through the API; tests share one path and
isolate themselves with a database each.

Both clients are synchronous: every call runs on the store's own worker threads, never on the
event loop: reads on one (chDB, whose client runs one statement at a time) or a few (HTTP), and
inserts on one of their own, with a client of their own (a second handle on the same chDB
engine), so that an insert never waits behind a long search or detection scan, nor a search
behind an insert. Anything the engine refuses or a server that is down becomes AURORA-5032.

Writes are acknowledged only once ClickHouse has them in a part on disk, fsynced
(the table's ``fsync_after_insert``): nothing the API accepted is lost to a crash.

On a ClickHouse cluster (``AURORA_CLICKHOUSE_CLUSTER``) the store makes its tables ON CLUSTER:
``logs_local``, a ReplicatedMergeTree table on every shard and replica, and ``logs``, a
Distributed table over them (:func:`core.logstore.schema.schema_sql`), which every read and
insert names as on one server. A Distributed table takes an insert into a queue of the server
it was sent to and forwards it later by default; the store's inserts are sent with
``distributed_foreground_insert`` (``insert_distributed_sync`` before ClickHouse 23.11), so an
acknowledged insert is in a part, fsynced, on one replica of each shard it touched, which the
other replicas then fetch.
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import itertools
import logging
import math
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import IO, Any, Final, Literal

import orjson

from core.errors import ClickHouseUnavailable, ValidationFailed
from core.logstore.query import compile_query
from core.logstore.schema import (
    DOC_COLUMN,
    FIELDS,
    INGESTED_INDEX,
    META_COLUMNS,
    TABLE_SETTINGS,
    LogEvent,
    add_index_sql,
    added_columns_sql,
    in_key_order,
    local_table,
    modify_settings_sql,
    on_cluster,
    schema_sql,
    time_bounds,
    usable_settings,
)
from core.settings import Settings
from core.validation import EARLIEST, LATEST

log = logging.getLogger("aurora.logstore")

TABLE: Final = "logs"
QUERY_SETTINGS: Final = {"max_query_size": 4 * 1024 * 1024}
"""Converted Sigma rules can be long (the vulnerable-drivers rule lists ~5,000 hashes: 238 KB
of SQL, near ClickHouse's default 256 KiB limit)."""
UTC_SESSION: Final = {"session_timezone": "UTC"}
"""Reads run in UTC where the server has the setting: every time the platform binds is UTC (a
naive ``DateTime64`` parameter is read in the session's zone, which is otherwise the server's:
for the embedded engine, the zone of the gateway's process)."""
NORMALISED: Final = tuple(f for f in FIELDS if f.name != "timestamp")
COLUMNS: Final = (
    "id",
    "ingested_at",
    "timestamp",
    *(f.column for f in NORMALISED),
    "source",
    "format",
    "raw",
    "fields",
    DOC_COLUMN,
)
"""The columns an insert writes, in order (the promoted columns are computed by the engine)."""
PAGE_COLUMNS: Final = tuple(c for c in COLUMNS if c not in {f.column for f in NORMALISED})
"""What reading whole events back reads (id, times, source, format, raw, fields, doc): the
normalised fields come from :data:`DOC_COLUMN`."""
_TYPES: Final = (
    dict(META_COLUMNS) | {f.column: f.clickhouse_type for f in FIELDS} | {DOC_COLUMN: "String"}
)
WIRE_TYPES: Final = tuple(_TYPES[c].replace("LowCardinality(String)", "String") for c in COLUMNS)
"""What each column of :data:`COLUMNS` is sent as: its own type, except that LowCardinality
strings (and the ``fields`` map's keys) go as plain strings. Building a LowCardinality dictionary
in Python costs more than everything else the encoding does; the engine converts the plain
column itself (``input_format_native_allow_types_conversion``)."""
INSERT_SETTINGS: Final = {"input_format_native_allow_types_conversion": 1}
FOREGROUND_INSERT: Final = ("distributed_foreground_insert", "insert_distributed_sync")
"""The setting that makes an insert into a Distributed table return once the shards have it,
by its name since ClickHouse 23.11 and by the older one, which those releases keep as an alias:
the store sends the first the server knows (the older one until it has looked)."""

_PAGE: Final = ", ".join(f"`{c}`" for c in PAGE_COLUMNS)

_chdb_lock = threading.Lock()
_chdb_clients: dict[tuple[str, str], Any] = {}


def _chdb_client(path: Path, role: str = "read") -> Any:
    """The process's chDB client for ``role`` (reads, or inserts). chDB has one engine per
    process, on one data path; each client is a handle of its own on it, and a handle runs one
    statement at a time, while the engine runs those of several handles at once."""
    import clickhouse_connect

    key = str(path.resolve())
    with _chdb_lock:
        if (key, role) not in _chdb_clients:
            other = next((p for p, _ in _chdb_clients if p != key), None)
            if other is not None:
                raise ClickHouseUnavailable(
                    {"reason": f"chDB is already open on another path in this process ({other})"}
                )
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            _chdb_clients[key, role] = clickhouse_connect.get_client(interface="chdb", path=key)
        return _chdb_clients[key, role]


def _not_owned() -> Any:
    raise ClickHouseUnavailable(
        {
            "reason": "this gateway does not own the embedded log store "
            "(AURORA_LOG_STORE_OWNER=false): its log routes are served by the store owner"
        }
    )


def _http_client(url: str) -> Any:
    import clickhouse_connect

    return clickhouse_connect.get_client(dsn=url, connect_timeout=5, send_receive_timeout=60)


@dataclass(frozen=True, slots=True)
class SearchRequest:
    start: datetime | None = None
    end: datetime | None = None
    query: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    """ECS field name (or an original field name) → exact value."""
    order: Literal["asc", "desc"] = "desc"
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    took_ms: float


def encode_cursor(timestamp: datetime, event_id: str) -> str:
    millis = int(timestamp.replace(tzinfo=timestamp.tzinfo or UTC).timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}|{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, event_id = text.split("|", 1)
        uuid.UUID(event_id)
        at = datetime.fromtimestamp(int(millis) / 1000, UTC)
        if not EARLIEST <= at <= LATEST:  # no cursor this API gave points there
            raise ValueError("cursor time out of range")
        return at, event_id
    except (binascii.Error, ValueError, UnicodeDecodeError, OverflowError, OSError) as err:
        raise ValidationFailed(
            [
                {
                    "loc": ["query", "cursor"],
                    "msg": "not a cursor this API gave",
                    "type": "value_error",
                }
            ]
        ) from err


def event_row(event: LogEvent, event_id: uuid.UUID | int, now: datetime) -> list[Any]:
    """``event`` as a row of :data:`COLUMNS`: what an insert stores for it (:func:`encode_events`
    writes the same values column by column); the id as a UUID or its 128-bit integer."""
    values = event.values
    row: list[Any] = [event_id, now, event.timestamp]
    doc: dict[str, str | int] = {}
    for name, is_int in _NORMALISED_KINDS:
        value = values.get(name)
        if is_int:
            number = value if isinstance(value, int) else None
            row.append(number)
            if number is not None:
                doc[name] = number
        else:
            text = "" if value is None else str(value)
            row.append(text)
            if text:
                doc[name] = text
    row += [event.source, event.format, event.raw, dict(event.fields), orjson.dumps(doc).decode()]
    return row


_NORMALISED_KINDS: Final = tuple((f.name, f.kind == "int") for f in NORMALISED)


_SPEC: Final = {f.name: (rank, f.name, f.kind == "int") for rank, f in enumerate(NORMALISED)}


UUID_BYTES: Final = 16
type EventIds = Sequence[uuid.UUID | int] | bytes
"""Events' ids: UUIDs, their 128-bit integers, or their ``id`` column as Native data already
(:data:`UUID_BYTES` an id: the UUID's two 64-bit halves, each little-endian)."""


def encode_events(events: Sequence[LogEvent], ids: EventIds, now: datetime) -> bytes:
    """``events`` with their ``ids`` (see :data:`EventIds`) and ingestion time ``now`` as one
    block of ClickHouse's Native format, which :meth:`LogStore.insert_block` stores: the rows
    :func:`event_row` builds, sent as :data:`WIRE_TYPES`. The encoding is CPU work in Python,
    so the gateway has its ingest workers do it beside the parsing: what reaches the gateway's
    own process is then a file of blocks (:func:`write_events`), and its insert is the engine's
    work alone.

    The block is built column by column: an event's normalised values are read once, each
    into its ``doc`` and its column's slot at the event's row (events with the same value
    names share the list of their columns), a column no event has is one repeated default,
    times go as their milliseconds, and clickhouse-connect's own column writers (those of
    ``client.insert``) encode each column into a buffer of its own (one growing buffer for a
    block of tens of megabytes is copied again at each growth), the ``fields`` map's keys once
    per set of keys (:func:`_write_map`)."""
    return b"".join(_native_parts(events, ids, now))


def write_events(out: IO[bytes], events: Sequence[LogEvent], ids: EventIds, now: datetime) -> int:
    """Write the block :func:`encode_events` makes to ``out``, column by column (a block of
    tens of megabytes is not joined into one object first); the bytes written."""
    parts = _native_parts(events, ids, now)
    out.writelines(parts)
    return sum(map(len, parts))


def _native_parts(
    events: Sequence[LogEvent], ids: EventIds, now: datetime
) -> list[bytes | bytearray]:
    if not events:
        raise ValueError("no rows to encode")
    count = len(events)
    if isinstance(ids, bytes) and len(ids) != UUID_BYTES * count:
        raise ValueError(f"{count} events, {len(ids) // UUID_BYTES} ids")
    texts: list[bytes] = []
    filled: dict[str, list[Any]] = {}  # the columns some event has a value for
    orders: dict[tuple[str, ...], list[tuple[str, bool, list[Any]]]] = {}
    for row, event in enumerate(events):
        values = event.values
        names = tuple(values)
        order = orders.get(names)
        if order is None:  # events of one kind set their values in the same order
            order = orders[names] = []
            for _, name, is_int in sorted(_SPEC[n] for n in names if n in _SPEC):
                if name not in filled:
                    filled[name] = [None if is_int else ""] * count
                order.append((name, is_int, filled[name]))
        doc: dict[str, str | int] = {}
        for name, is_int, column in order:
            value = values[name]
            if is_int:
                if isinstance(value, int):
                    doc[name] = column[row] = value
            elif value is not None and (text := str(value)):
                doc[name] = column[row] = text
        texts.append(orjson.dumps(doc))
    columns: list[Sequence[Any]] = [
        ids,
        [_ticks(now)] * count,
        [_ticks(e.timestamp) for e in events],
    ]
    for name, is_int in _NORMALISED_KINDS:
        columns.append(filled.get(name) or [None if is_int else ""] * count)
    columns += [
        [e.source for e in events],
        [e.format for e in events],
        [e.raw for e in events],
        [e.fields for e in events],
        texts,  # orjson's UTF-8 as it is: a String column of bytes is sent unchanged
    ]
    return _native_block(columns, count)


def _ticks(moment: datetime) -> int:
    """``moment`` as the milliseconds since the epoch a ``DateTime64(3)`` column holds,
    converted as clickhouse-connect converts a datetime (the part below a millisecond dropped)."""
    return (math.floor(moment.timestamp()) * 1_000_000 + moment.microsecond) // 1_000


def _write_map(kind: Any, maps: Sequence[dict[str, str]], out: bytearray, context: Any) -> None:
    """What the ``Map(String, String)`` column writer ``kind`` writes for ``maps`` (the offsets,
    every key, every value), except that the keys of the maps with the same keys in the same
    order (events of one kind) are encoded once."""
    kind.write_column_prefix(out)
    offsets = array.array("Q", itertools.accumulate(map(len, maps)))
    if sys.byteorder == "big":
        offsets.byteswap()
    out += offsets.tobytes()
    encoded: dict[tuple[str, ...], bytes] = {}
    for names in map(tuple, maps):
        keys = encoded.get(names)
        if keys is None:
            buffer = bytearray()
            kind.key_type.write_column_data(list(names), buffer, context)
            keys = encoded[names] = bytes(buffer)
        out += keys
    values = list(itertools.chain.from_iterable(map(dict.values, maps)))
    kind.value_type.write_column_data(values, out, context)


def _native_block(columns: Sequence[Sequence[Any]], count: int) -> list[bytes | bytearray]:
    """Columns of :data:`COLUMNS` as one Native block, in parts to write one after another: the
    layout of clickhouse-connect's ``NativeTransform.build_insert`` (column and row counts, then
    each column's name, type and data), its column writers with an insert context of its own;
    a column given as ``bytes`` is its data already."""
    from clickhouse_connect.driver.common import write_leb128
    from clickhouse_connect.driver.insert import InsertContext

    context = InsertContext(
        TABLE,
        COLUMNS,
        _wire_types(),
        data=columns,
        column_oriented=True,
        block_size=count,
        compression=None,
    )
    head = bytearray()
    write_leb128(len(COLUMNS), head)
    write_leb128(count, head)
    parts: list[bytes | bytearray] = [head]
    for name, kind, column in zip(COLUMNS, _wire_types(), columns, strict=True):
        out = bytearray()
        for label in (name.encode(), kind.insert_name.encode()):
            write_leb128(len(label), out)
            out += label
        context.start_column(name)
        try:
            if isinstance(column, bytes):
                out += column
            elif name == "fields":
                _write_map(kind, column, out, context)
            else:
                kind.write_column(column, out, context)
        except Exception as err:
            raise ValueError(f"a row cannot be encoded: {err}") from err
        parts.append(out)
    return parts


@cache
def _wire_types() -> tuple[Any, ...]:
    from clickhouse_connect.datatypes.registry import get_from_name

    return tuple(get_from_name(name) for name in WIRE_TYPES)


FIRST_SLICE: Final = timedelta(hours=1)
SLICE_GROWTH: Final = 4
SLICE_MARGIN: Final = 1.5
LAST_SLICE: Final = timedelta(days=400)
"""Searches read their window in slices (:class:`TimeSlices`): the first an hour wide; the next
sized from what the slices so far found (with this margin), or four times wider after an empty
one; up to this width before the rest of an open-ended window."""
_MILLISECOND: Final = timedelta(milliseconds=1)
LAZY_SETTING: Final = "query_plan_max_limit_for_lazy_materialization"
SPLIT_READS: Final = {
    "merge_tree_min_rows_for_concurrent_read": 8192,
    "merge_tree_min_bytes_for_concurrent_read": 1024 * 1024,
}
"""A search's read is shared among the engine's threads from a few dozen granules up, not only
from 160k rows or 240 MiB (the engine's defaults): a slice of a few hours in one merged day
part is then read on every core instead of one. Measured on two cores, a phrase's count over
five hours of a merged day: 35 -> 21 ms."""
UNORDERED_SLICE: Final = timedelta(days=1)
"""A slice up to this wide is read whole on every core and its page sorted after, rather than
read in key order on one core to stop at the ``LIMIT``: a slice is sized to hold about the
page (with :data:`SLICE_MARGIN`), so stopping early saves little, and the scan is where the
time goes. A wider or open-ended one is read in key order."""


class TimeSlices:
    """``[start, end)`` cut into adjacent ``[lo, hi)`` windows, in the order a page sorted by
    ``order`` reads them: from ``end`` backwards for the newest first, from ``start`` forwards
    for the oldest first.

    The first is :data:`FIRST_SLICE` wide, so a page of common events is filled from about the
    last hour (one day partition, a few granules) instead of ClickHouse opening every partition
    of a month to read them in order. Each next one is as wide as the rate found so far says
    the rest of the page needs, with a margin (a rare host's day is read in two queries, not
    five); after a slice that found nothing it is :data:`SLICE_GROWTH` times wider, so a term
    found nowhere costs a handful of queries more than one scan of the window. A window open
    on the side it is read from is one slice."""

    def __init__(
        self, start: datetime | None, end: datetime | None, order: Literal["asc", "desc"]
    ) -> None:
        self.start, self.end, self.order = start, end, order
        self._edge = end if order == "desc" else start
        self._width = FIRST_SLICE
        self._covered = timedelta(0)
        self._done = False

    def next(self, found: int, want: int) -> tuple[datetime | None, datetime | None] | None:
        """The next window, given the rows found so far (``found``, of the ``want`` a page
        needs), or None when the window is read or the page is full."""
        if self._done or found >= want:
            return None
        edge = self._edge
        if edge is None:  # open on the side it is read from
            self._done = True
            return self.start, self.end
        if self._covered > timedelta(0):
            if found:
                needed = self._covered * ((want - found) / found) * SLICE_MARGIN
                self._width = max(self._width, needed)
            else:
                self._width *= SLICE_GROWTH
        width = self._width
        self._covered += width
        if self.order == "desc":
            lo = edge - width
            if (self.start is not None and lo <= self.start) or width > LAST_SLICE:
                self._done = True
                return self.start, edge
            self._edge = lo
            return lo, edge
        hi = edge + width
        if (self.end is not None and hi >= self.end) or width > LAST_SLICE:
            self._done = True
            return edge, self.end
        self._edge = hi
        return edge, hi


def _event(row: Sequence[Any]) -> dict[str, Any]:
    """A row of :data:`PAGE_COLUMNS` as the API shows the event: ECS names, empty normalised
    fields left out."""
    event_id, ingested_at, timestamp, source, format_, raw, fields, doc = row
    out: dict[str, Any] = {
        "id": str(event_id),
        "ingested_at": _utc_text(ingested_at),
        "timestamp": _utc_text(timestamp),
    }
    values = orjson.loads(doc) if doc else {}
    for name, is_int in _NORMALISED_KINDS:
        value = values.get(name)
        if value is not None and value != "":
            # The column's DEFAULT (rows written without a doc) gives numbers as text.
            out[name] = int(value) if is_int else value
    out["source"] = source
    out["format"] = format_
    out["raw"] = raw
    out["fields"] = dict(fields)
    return out


_GLOB_OR_QUOTE: Final = frozenset("*?{}[],'\\")
"""Characters ``file()`` reads as a glob (or that end its quoted name): a path holding one is
sent as bytes instead."""
_WIRE_STRUCTURE: Final = (
    "'"
    + ", ".join(f"`{c}` {t}" for c, t in zip(COLUMNS, WIRE_TYPES, strict=True)).replace("'", "\\'")
    + "'"
)
"""The structure of a Native block of :func:`encode_events` as a quoted literal, given to
``file()`` so that it reads the blocks without inferring it from them."""


def _local_name(files: Sequence[Path]) -> str | None:
    """The ``file()`` name (a quoted literal) of ``files``, all in one directory: the path of
    one, or a ``{a,b}`` glob of their names; None when they cannot be named so."""
    if not files or len({f.parent for f in files}) != 1:
        return None
    if any(_GLOB_OR_QUOTE & set(str(f)) for f in files):
        return None
    if len(files) == 1:
        return f"'{files[0]}'"
    return f"'{files[0].parent}/{{{','.join(f.name for f in files)}}}'"


def _file_chunks(files: Sequence[Path]) -> Iterable[bytes]:
    """The bytes of ``files``, one after another, a mebibyte at a time."""
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk


def _utc_text(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


class LogStore:
    """The log table of one database (see the module docstring)."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        database: str,
        retention_days: int,
        workers: int = 1,
        cluster: str | None = None,
        local_files: bool = False,
        writer_factory: Callable[[], Any] | None = None,
    ) -> None:
        """``local_files``: the engine runs in this process and reads this machine's files (the
        embedded chDB), so a batch already in files is inserted from them (:meth:`insert_block`).
        ``writer_factory``: the client inserts go through, on a thread of their own; without
        it they share the readers' client and threads."""
        self._factory = client_factory
        self._local_files = local_files
        self._client: Any = None
        self._writer_factory = writer_factory
        self._writer: Any = None
        self._write_pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="logstore-insert")
            if writer_factory is not None
            else None
        )
        self.database = database
        self.retention_days = retention_days
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="logstore")
        self.table = f"`{database}`.`{TABLE}`"
        self.cluster = cluster
        """The ClickHouse cluster the tables are made on (see the module docstring), or None."""
        self._parts_table = local_table(TABLE) if cluster else TABLE
        """The table whose parts hold the rows: the local tables under a Distributed one."""
        self._insert_settings: dict[str, Any] = dict(INSERT_SETTINGS)
        self._refused: ClickHouseUnavailable | None = None
        """Set when :meth:`start` finds tables the store cannot use: every call raises it."""
        if cluster:
            self._insert_settings[FOREGROUND_INSERT[1]] = 1
        self._lazy = False
        """Whether the engine reads a search's whole events lazily (:data:`LAZY_SETTING`)."""
        self._query_settings: dict[str, Any] = dict(QUERY_SETTINGS)
        self.owned = True
        """Whether this process opens the store; False on a gateway that leaves the embedded
        store to another (``log_store_owner``): every call then answers AURORA-5032."""

    @classmethod
    def from_settings(cls, settings: Settings, *, database: str | None = None) -> LogStore:
        url = settings.clickhouse_url
        name = database or settings.clickhouse_database
        if url is not None:
            dsn = url.get_secret_value()
            return cls(
                lambda: _http_client(dsn),
                database=name,
                retention_days=settings.log_retention_days,
                workers=4,
                cluster=settings.clickhouse_cluster,
            )
        if not settings.log_store_owner:
            store = cls(_not_owned, database=name, retention_days=settings.log_retention_days)
            store.owned = False
            return store
        path = settings.chdb_path or settings.data_dir / "logstore"
        return cls(
            lambda: _chdb_client(path),
            database=name,
            retention_days=settings.log_retention_days,
            local_files=True,
            writer_factory=lambda: _chdb_client(path, role="insert"),
        )

    # -- plumbing --------------------------------------------------------------------------

    def _get_client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def _get_writer(self) -> Any:
        if self._writer is None:
            assert self._writer_factory is not None  # only the inserts' own thread calls this
            self._writer = self._writer_factory()
        return self._writer

    async def _run[T](self, work: Callable[[Any], T], *, insert: bool = False) -> T:
        """``work`` with a client, on the store's threads: an ``insert`` on the inserts' own
        thread and client, where the store has them."""
        pool = self._write_pool if insert and self._write_pool is not None else self._pool
        client = self._get_writer if pool is self._write_pool else self._get_client

        def call() -> T:
            if self._refused is not None:
                raise self._refused
            return work(client())

        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        except ClickHouseUnavailable:
            raise
        except ValidationFailed:
            raise
        except Exception as err:
            # The engine's own message can carry the query, a path or a password: keep it in
            # the log and give the caller the class only.
            log.warning("log store: %s: %s", type(err).__name__, str(err)[:2000])
            raise ClickHouseUnavailable({"reason": type(err).__name__}) from err

    async def start(self) -> None:
        """Create the database and the table if needed (idempotent); on a cluster, on every
        node. On a cluster whose ``logs`` is not the Distributed table, raise AURORA-5032, as
        every call does from then on."""

        def known(client: Any, table: str, names: Iterable[str]) -> set[str]:
            """Which of ``names`` the server has as settings (in ``system.<table>``)."""
            return {
                row[0]
                for row in client.query(
                    f"SELECT name FROM system.{table} WHERE has({{n:Array(String)}}, name)",
                    parameters={"n": list(names)},
                ).result_rows
            }

        def columns(client: Any, table: str) -> set[str]:
            return {
                row[0]
                for row in client.query(
                    "SELECT name FROM system.columns WHERE database = {db:String} "
                    "AND table = {t:String}",
                    parameters={"db": self.database, "t": table},
                ).result_rows
            }

        def work(client: Any) -> None:
            settings = usable_settings(
                known(client, "merge_tree_settings", (name for name, _ in TABLE_SETTINGS))
            )
            have = known(client, "settings", (LAZY_SETTING, *UTC_SESSION, *FOREGROUND_INSERT))
            self._lazy = LAZY_SETTING in have
            if UTC_SESSION.keys() <= have:
                self._query_settings = QUERY_SETTINGS | UTC_SESSION
            cluster, parts = self.cluster, self._parts_table
            if cluster:
                name = next((n for n in FOREGROUND_INSERT if n in have), None)
                self._insert_settings = INSERT_SETTINGS | {name or FOREGROUND_INSERT[1]: 1}
            for statement in schema_sql(
                self.database,
                TABLE,
                retention_days=self.retention_days,
                table_settings=settings,
                cluster=cluster,
            ):
                client.command(statement)
            made = client.query(
                "SELECT name, engine, create_table_query FROM system.tables "
                "WHERE database = {db:String} AND name IN ({t:String}, {p:String})",
                parameters={"db": self.database, "t": TABLE, "p": parts},
            ).result_rows
            tables = {name: (engine, query) for name, engine, query in made}
            if cluster and tables[TABLE][0] != "Distributed":
                # A database first used by a single server: its rows are in this MergeTree
                # table, which CREATE ... IF NOT EXISTS left as it was. Writing there would
                # keep events on one node, unreplicated: every call is refused instead.
                self._refused = ClickHouseUnavailable(
                    {
                        "reason": f"{self.table} is a {tables[TABLE][0]} table, not the "
                        f"Distributed table over {local_table(TABLE)} that "
                        "AURORA_CLICKHOUSE_CLUSTER needs: use another database"
                    }
                )
                raise self._refused
            # A table made before a promoted column existed gets it (a no-op ALTER costs
            # tens of milliseconds each: only the missing ones). On a cluster the local
            # tables first: the Distributed table must not name a column the shards lack.
            for table in (parts, TABLE) if cluster else (TABLE,):
                have = columns(client, table)
                for column, statement in added_columns_sql(self.database, table, cluster=cluster):
                    if column not in have:
                        client.command(statement)
            query = tables[parts][1]
            if INGESTED_INDEX not in query:  # parts written before it are read whole, once old
                client.command(add_index_sql(self.database, parts, cluster=cluster))
            # A setting is shown as it was given (`name = value`) in the table's statement.
            missing = [(n, v) for n, v in settings if f"{n} = {v}" not in query]
            if missing:
                client.command(modify_settings_sql(self.database, parts, missing, cluster=cluster))

        await self._run(work)

    async def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        if self._write_pool is not None:
            self._write_pool.shutdown(wait=True, cancel_futures=False)

    async def drop(self) -> None:
        """Drop the database (tests, and nothing else)."""
        # SYNC on a cluster: the replicas' paths in Keeper are gone when it returns, so a table
        # made again under the same name does not find its old replica there.
        sync = " SYNC" if self.cluster else ""
        statement = f"DROP DATABASE IF EXISTS `{self.database}`{on_cluster(self.cluster)}{sync}"
        await self._run(lambda c: c.command(statement))

    # -- writes ----------------------------------------------------------------------------

    async def insert(self, events: Sequence[LogEvent]) -> list[str]:
        """Store ``events`` in one batch, durably; their ids in order."""
        if not events:
            return []
        now = datetime.now(UTC)
        ids = [uuid.uuid4() for _ in events]
        await self._run(
            lambda client: self._insert(client, encode_events(events, ids, now)), insert=True
        )
        return [str(i) for i in ids]

    async def insert_block(self, block: bytes | IO[bytes] | Sequence[Path]) -> None:
        """Store Native blocks of rows (:func:`encode_events`, one or several one after another;
        an open file of them, read as it is sent; or the files holding them) in one batch,
        durably. The embedded engine reads files itself (``INSERT … SELECT … FROM file()``), so
        their bytes never pass through Python; a server is sent them one after another."""
        await self._run(lambda client: self._insert(client, block), insert=True)

    def _insert(self, client: Any, block: bytes | IO[bytes] | Sequence[Path]) -> None:
        if isinstance(block, (bytes, bytearray, memoryview)) or hasattr(block, "read"):
            payload: Any = block
        else:
            files = [Path(p).resolve() for p in block]
            source = _local_name(files) if self._local_files else None
            if source is not None:
                # INSERT ... SELECT FROM file(): the engine reads the files in its own
                # pipeline, about a tenth less work than INSERT ... FROM INFILE (which reads
                # them as a client sending data would).
                settings = ", ".join(f"{k} = {int(v)}" for k, v in self._insert_settings.items())
                columns = ", ".join(f"`{c}`" for c in COLUMNS)
                client.command(
                    f"INSERT INTO {self.table} ({columns}) SELECT {columns} "
                    f"FROM file({source}, Native, {_WIRE_STRUCTURE}) SETTINGS {settings}"
                )
                return
            payload = _file_chunks(files)
        client.raw_insert(
            self.table, list(COLUMNS), payload, fmt="Native", settings=self._insert_settings
        )

    # -- reads -----------------------------------------------------------------------------

    async def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Any:
        """Run a read query; the clickhouse-connect result (``column_names``, ``result_rows``)."""
        merged = self._query_settings | (settings or {})
        return await self._run(lambda c: c.query(sql, parameters=parameters or {}, settings=merged))

    def _where(
        self,
        request: SearchRequest,
        extra: Iterable[tuple[str, dict[str, Any]]] = (),
    ) -> tuple[str, dict[str, Any]]:
        conditions, parameters = time_bounds(request.start, request.end)
        for number, (name, value) in enumerate(sorted(request.filters.items())):
            compiled = compile_query(f'{name}:"{_quote(value)}"', prefix=f"f{number}_")
            conditions.append(compiled.sql)
            parameters.update(compiled.parameters)
        if request.query:
            compiled = compile_query(request.query)
            conditions.append(f"({compiled.sql})")
            parameters.update(compiled.parameters)
        for sql, values in extra:
            conditions.append(f"({sql})")
            parameters.update(values)
        return " AND ".join(conditions) or "1", parameters

    async def search(self, request: SearchRequest) -> SearchPage:
        """A page of events in ``request.order``, read in time slices (:class:`TimeSlices`), slice
        after slice from the end it is sorted from until the page is full."""
        keyset: list[tuple[str, dict[str, Any]]] = []
        start, end = request.start, request.end
        if request.cursor:
            at, event_id = decode_cursor(request.cursor)
            op = "<" if request.order == "desc" else ">"
            keyset.append(
                (
                    f"(timestamp, id) {op} ({{cur_ts:DateTime64(3)}}, {{cur_id:UUID}})",
                    {"cur_ts": at.replace(tzinfo=None), "cur_id": event_id},
                )
            )
            # The page goes on from the cursor's time (events at that very millisecond with
            # the next ids included).
            if request.order == "desc":
                end = min(end, at + _MILLISECOND) if end else at + _MILLISECOND
            else:
                start = max(start, at) if start else at
        direction: Literal["ASC", "DESC"] = "DESC" if request.order == "desc" else "ASC"
        want = int(request.limit) + 1
        # The engine finds a slice's rows reading only what the condition and the order need,
        # then reads the whole events of those rows alone ("lazy materialization", up to a
        # LIMIT this setting names; used where the server has it, as chDB does).
        lazy = {LAZY_SETTING: want} if self._lazy else None
        started = datetime.now(UTC)
        found: list[Any] = []
        slices = TimeSlices(start, end, request.order)
        while (window := slices.next(len(found), want)) is not None:
            lo, hi = window
            where, parameters = self._where(replace(request, start=lo, end=hi), keyset)
            settings = SPLIT_READS | (lazy or {})
            if lo is not None and hi is not None and hi - lo <= UNORDERED_SLICE:
                settings["optimize_read_in_order"] = 0
            page = await self.query(
                f"SELECT {_PAGE} FROM {self.table} WHERE {where} "
                f"ORDER BY {in_key_order(direction)} LIMIT {want - len(found)}",
                parameters,
                settings,
            )
            found += page.result_rows
        more = len(found) > request.limit
        found = found[: request.limit]
        rows = [_event(row) for row in found]
        took = (datetime.now(UTC) - started).total_seconds() * 1000
        cursor = None
        if more and rows:
            cursor = encode_cursor(found[-1][2], str(found[-1][0]))  # its timestamp and id
        return SearchPage(rows, cursor, round(took, 3))

    async def _rows(
        self, keys: Sequence[Sequence[Any]], direction: str = "ASC"
    ) -> list[dict[str, Any]]:
        """Whole events for (timestamp, id) keys, in ``direction`` order. The search finds the
        keys first, reading only the columns its condition needs; the wide columns (``raw``,
        ``fields``) are then read for the page alone, within its time span."""
        if not keys:
            return []
        stamps = [k[0] for k in keys]
        window, bounds = time_bounds(min(stamps), max(stamps), end_inclusive=True)
        result = await self.query(
            f"SELECT {_PAGE} FROM {self.table} WHERE {' AND '.join(window)} "
            "AND id IN {ids:Array(UUID)} "
            f"ORDER BY timestamp {direction}, id {direction}",
            {**bounds, "ids": [str(k[1]) for k in keys]},
        )
        return [_event(r) for r in result.result_rows]

    async def by_ids(
        self, ids: Sequence[str], *, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Whole events by id whose time is in ``[start, end]``, oldest first (the window keeps
        the read to its own parts; ids that are not UUIDs, or no longer stored, are left out)."""
        wanted = []
        for value in ids:
            try:
                wanted.append(str(uuid.UUID(value)))
            except ValueError:
                continue
        if not wanted:
            return []
        window, bounds = time_bounds(start, end, end_inclusive=True)
        result = await self.query(
            f"SELECT {_PAGE} FROM {self.table} WHERE {' AND '.join(window)} "
            "AND id IN {ids:Array(UUID)} ORDER BY timestamp, id",
            {**bounds, "ids": wanted},
        )
        return [_event(r) for r in result.result_rows]

    async def get(self, event_id: str) -> dict[str, Any] | None:
        try:
            uuid.UUID(event_id)
        except ValueError:
            return None
        result = await self.query(
            f"SELECT {_PAGE} FROM {self.table} WHERE id = {{id:UUID}} LIMIT 1",
            {"id": event_id},
        )
        rows = result.result_rows
        return _event(rows[0]) if rows else None

    async def matching(
        self,
        condition: str,
        parameters: dict[str, Any],
        *,
        start: datetime,
        end: datetime,
        limit: int,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Events in ``[start, end)`` for which the SQL ``condition`` holds: how many, and the
        first ``limit`` of them (oldest first). For detection rules, whose conditions come from
        the Sigma conversion (values bound or escaped there)."""
        request = SearchRequest(start=start, end=end)
        where, bound = self._where(request, [(condition, parameters)])
        # One pass over the range: the count and the oldest ``limit`` keys together.
        found = await self.query(
            f"SELECT count(), groupArraySorted({max(int(limit), 1)})((timestamp, id)) "
            f"FROM {self.table} WHERE {where}",
            bound,
        )
        total, keys = found.result_rows[0]
        if total == 0 or limit == 0:
            return int(total), []
        return int(total), await self._rows(keys)

    async def matching_each(
        self,
        conditions: Sequence[str],
        *,
        scope: str = "1",
        start: datetime,
        end: datetime,
        limit: int,
    ) -> list[tuple[int, list[dict[str, Any]]]]:
        """What :meth:`matching` answers for each of ``conditions`` (each ANDed with the SQL
        ``scope``), from one scan of ``[start, end)``: the events the conditions share are read
        once. For detection rules of one logsource, whose conditions come from the Sigma
        conversion (values escaped there); any condition the engine refuses fails them all."""
        if not conditions:
            return []
        request = SearchRequest(start=start, end=end)
        where, bound = self._where(request, [(scope, {})])
        wanted = max(int(limit), 1)
        # Every condition is evaluated once per scoped event, into a flag the aggregates read
        # (the engine computes an expression that occurs twice once).
        flags = ", ".join(f"({c}) AS m{n}" for n, c in enumerate(conditions))
        aggregates = ", ".join(
            f"countIf(m{n}), groupArraySortedIf({wanted})((timestamp, id), m{n})"
            for n in range(len(conditions))
        )
        anyone = " OR ".join(f"m{n}" for n in range(len(conditions)))
        found = await self.query(
            f"SELECT {aggregates} FROM (SELECT timestamp, id, {flags} "
            f"FROM {self.table} WHERE {where}) WHERE {anyone}",
            bound,
        )
        row = found.result_rows[0]
        counted = [(int(row[2 * n]), list(row[2 * n + 1])) for n in range(len(conditions))]
        if limit == 0:
            return [(total, []) for total, _ in counted]
        keys = {tuple(key) for total, keyed in counted if total for key in keyed}
        events = {e["id"]: e for e in await self._rows(sorted(keys))}
        return [
            (total, [events[str(k[1])] for k in keyed if str(k[1]) in events])
            for total, keyed in counted
        ]

    async def sources(self) -> list[dict[str, Any]]:
        result = await self.query(
            f"SELECT source, groupUniqArray(format), count(), min(timestamp), max(timestamp), "
            f"max(ingested_at) FROM {self.table} GROUP BY source ORDER BY count() DESC"
        )
        return [
            {
                "source": source,
                "formats": sorted(formats),
                "events": int(events),
                "first_event_at": _iso(first),
                "last_event_at": _iso(last),
                "last_ingested_at": _iso(ingested),
            }
            for source, formats, events, first, last, ingested in result.result_rows
        ]

    async def stats(self, *, start: datetime, end: datetime, buckets: int = 48) -> dict[str, Any]:
        """Events by source and over time in ``[start, end)``, ingest rates, storage."""
        span = max((end - start).total_seconds(), 1.0)
        step = max(60, int(span // buckets) // 60 * 60)
        conditions, window = time_bounds(start, end)
        where = " AND ".join(conditions)
        by_source = await self.query(
            f"SELECT source, count() FROM {self.table} WHERE {where} GROUP BY source "
            "ORDER BY count() DESC",
            window,
        )
        over_time = await self.query(
            f"SELECT toStartOfInterval(timestamp, INTERVAL {step} SECOND) AS bucket, count() "
            f"FROM {self.table} WHERE {where} GROUP BY bucket ORDER BY bucket",
            window,
        )
        now = datetime.now(UTC).replace(tzinfo=None)
        rates = await self.query(
            f"SELECT countIf(ingested_at >= {{m:DateTime64(3)}}), "
            f"countIf(ingested_at >= {{h:DateTime64(3)}}), count() FROM {self.table}",
            {"m": now - timedelta(minutes=1), "h": now - timedelta(hours=1)},
        )
        # On a cluster the parts are the local tables', one replica of each shard counted.
        parts, merges = (
            (
                f"cluster(`{self.cluster}`, system.parts)",
                f"cluster(`{self.cluster}`, system.merges)",
            )
            if self.cluster
            else ("system.parts", "system.merges")
        )
        storage = await self.query(
            "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes), count(), "
            f"(SELECT count() FROM {merges} WHERE database = {{db:String}} "
            "AND table = {t:String}) "
            f"FROM {parts} WHERE active AND database = {{db:String}} AND table = {{t:String}}",
            {"db": self.database, "t": self._parts_table},
        )
        last_minute, last_hour, total = rates.result_rows[0]
        rows, on_disk, uncompressed, parts, merges = storage.result_rows[0]
        return {
            "window": {"start": _iso(start), "end": _iso(end), "bucket_seconds": step},
            "events_total": int(total),
            "events_in_window": sum(int(c) for _, c in by_source.result_rows),
            "by_source": [{"source": s, "events": int(c)} for s, c in by_source.result_rows],
            "over_time": [{"at": _iso(b), "events": int(c)} for b, c in over_time.result_rows],
            "ingest_rate": {
                "last_minute_per_second": round(int(last_minute) / 60, 3),
                "last_hour_per_second": round(int(last_hour) / 3600, 3),
            },
            "storage": {
                "rows": int(rows or 0),
                "bytes_on_disk": int(on_disk or 0),
                "bytes_uncompressed": int(uncompressed or 0),
                "parts": int(parts or 0),
                "merges_running": int(merges),
                "retention_days": self.retention_days,
            },
        }

    async def health(self) -> bool:
        try:
            await self.query("SELECT 1")
        except ClickHouseUnavailable:
            return False
        return True


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
