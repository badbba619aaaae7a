"""Where ingest bodies are parsed: worker processes, or a thread of the gateway.

Parsing is pure Python and CPU-bound; on a thread it holds the interpreter lock, so one
gateway process parses one body at a time however many cores the machine has. With workers
(``AURORA_INGEST_WORKERS``; by default one per core, at most four) bodies parse in parallel in
their own processes while the gateway's own process serves requests and inserts. Workers are
started with ``spawn`` (never forked from a process running an event loop and the embedded
ClickHouse engine) when the gateway starts, and they stay up; they end with the gateway, even
when it is killed outright.

A worker that dies (killed, out of memory) breaks the pool: the body it held is parsed again on
a thread, so the request still succeeds, and a fresh pool serves the next ones.

:func:`ingest_body` reads a body as it arrives and never holds it whole: a body read line by
line (NDJSON, syslog, CEF) is cut at line boundaries into pieces of at most
:data:`PIECE_BYTES`, each parsed as soon as it is cut (a few at once, so the workers parse one
body in parallel while the rest of it arrives); a document that must be parsed whole (a JSON
array, EVTX) is spooled to a temporary file, which a worker reads. A worker writes the encoded
rows of its piece to a temporary file of its own (they never cross its pipe); rows parsed on a
thread wait in memory up to :data:`SPOOL_MEMORY_BYTES`, in a temporary file past it. They are
inserted in one batch once the whole body was read within its limit (the embedded engine reads
the files itself): a body refused on the way (too large, stalled, cut short) stores nothing.

A body whose :class:`BodyInfo` asks for content ids (``ids="content"``: network telemetry) is
stored once per record: its events get ids derived from what they say
(:func:`tools.logs.rows.content_id`), a repeat within the body is dropped, and so is an event
whose id the store already holds (looked up among the stored events of the body's time span).
The body is kept in a temporary file while it is read; when it repeats itself across pieces or
the store holds some of its events, it is parsed again, whole, without them (the rare path: a
sender that re-sends). The look-up and the insert of such bodies run one body at a time
(:attr:`IngestParser.unique_lock`), so two senders of the same records store them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Final, TypedDict

from core.logstore.store import LogStore
from core.validation import field_error, field_errors
from gateway.siem.schemas import IngestResult, Rejection
from gateway.supervisor import die_with_parent
from tools.logs.common import excerpt
from tools.logs.payload import FormatGate, Layout, Rejected, body_layout
from tools.logs.rows import IdKind, ParsedRows, parse_rows, parse_rows_file, warm

log = logging.getLogger("aurora.siem")

MAX_AUTO_WORKERS: Final = 4
PIECE_BYTES: Final = 4 << 20
"""The most of a body handed to the parser at once (a line longer than this is rejected)."""
SPOOL_MEMORY_BYTES: Final = 16 << 20
"""Encoded rows of one body kept in memory until its insert; past this, in a temporary file."""
KEPT: Final = 1000
"""Rejections (and ids) kept for the answer; past it they are only counted."""
LOOKUP_IDS: Final = 10_000
"""Ids looked up in the store per query (content ids, :func:`stored_ids`)."""


class BodyFields(TypedDict):
    content_type: str | None
    source: str | None
    format: str | None
    filename: str | None
    gate: FormatGate | None
    ids: IdKind


@dataclass(frozen=True, slots=True)
class BodyInfo:
    """What a request says of its body: its ``Content-Type``, the ``source`` label and
    ``format`` it asks for, the name of the file it came from (each may be absent)."""

    content_type: str | None = None
    source: str | None = None
    format: str | None = None
    filename: str | None = None
    gate: FormatGate | None = None
    """Which events to keep (:class:`tools.logs.payload.FormatGate`; None: all)."""
    ids: IdKind = "random"
    """``content``: each record is stored once (see the module docstring)."""

    def fields(self) -> BodyFields:
        """The parser's keyword arguments."""
        return BodyFields(
            content_type=self.content_type,
            source=self.source,
            format=self.format,
            filename=self.filename,
            gate=self.gate,
            ids=self.ids,
        )

    def layout(self, head: bytes, *, complete: bool) -> Layout | None:
        """How a body starting with ``head`` is read (:func:`tools.logs.payload.body_layout`)."""
        return body_layout(
            head,
            complete=complete,
            content_type=self.content_type,
            format=self.format,
            filename=self.filename,
        )


def _worker_started(parent: int) -> None:
    """In each worker: end with the gateway even when it is killed outright, and leave Ctrl-C
    to the gateway (which stops the workers itself)."""
    die_with_parent()
    if os.getppid() != parent:  # the gateway died before the line above took effect
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _collector_paused[T](call: Callable[[], T]) -> T:
    """``call()`` with the cyclic garbage collector off, in a worker. A parse allocates some
    five containers an event (its values, its fields, the event) that live until its block is
    encoded; the collector, run every 2,000 of them, walks them again and again and, now and
    then, the worker's whole heap (the libraries the encoder loads): a tenth of a worker's CPU
    (41-42 against 36-37 µs an event, measured on the benchmark's pieces). Nothing the parse
    keeps refers to itself, so its garbage is freed by reference counting all the same, and
    the collector, on again after the call, finds any cycle it left."""
    gc.disable()
    try:
        return call()
    finally:
        gc.enable()


def auto_workers() -> int:
    """One worker per core, at most :data:`MAX_AUTO_WORKERS`; none on a single core (a worker
    would only add copying there)."""
    cores = os.process_cpu_count() or 1
    return 0 if cores < 2 else min(cores, MAX_AUTO_WORKERS)


class IngestParser:
    """Parses ingest bodies into store rows (see the module docstring)."""

    def __init__(self, workers: int | None) -> None:
        self.workers = auto_workers() if workers is None else workers
        if self.workers and multiprocessing.current_process().daemon:
            log.warning("a daemonic process cannot start ingest workers; parsing on a thread")
            self.workers = 0
        self._pool: ProcessPoolExecutor | None = None
        self.unique_lock = asyncio.Lock()
        """Held while a body of content ids is checked against the store and inserted."""

    def start(self) -> None:
        """Start the workers now, in the background, so that the first bodies do not wait for
        them to spawn, import the parsers and load the encoder."""
        if self.workers > 0:
            pool = self._executor()
            for _ in range(self.workers):
                pool.submit(warm)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def _call[T](self, call: Callable[[], T]) -> T:
        if self.workers <= 0:
            return await asyncio.to_thread(call)
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, partial(_collector_paused, call)
            )
        except BrokenProcessPool:
            log.warning("an ingest worker died; this body is parsed on a thread, the pool renewed")
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            return await asyncio.to_thread(call)

    async def parse(
        self,
        body: bytes,
        info: BodyInfo,
        *,
        layout: Layout | None = None,
        first_line: int = 1,
        blocks_to: Path | None = None,
    ) -> ParsedRows:
        """Parse a whole body, or with a line ``layout`` a piece of one (see
        :func:`tools.logs.rows.parse_rows`); with ``blocks_to``, its blocks are written there."""
        return await self._call(
            partial(
                parse_rows,
                body,
                **info.fields(),
                layout=layout,
                first_line=first_line,
                blocks_to=None if blocks_to is None else str(blocks_to),
                ids_up_to=KEPT,  # more are only counted (Ingested.add)
            )
        )

    async def parse_file(
        self, path: Path, info: BodyInfo, *, blocks_to: Path, exclude: Collection[str] = ()
    ) -> ParsedRows:
        """Parse the body stored at ``path``, its blocks written to ``blocks_to`` (content ids
        in ``exclude`` left out)."""
        return await self._call(
            partial(
                parse_rows_file,
                str(path),
                blocks_to=str(blocks_to),
                exclude=frozenset(exclude),
                **info.fields(),
            )
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


@dataclass(slots=True)
class Ingested:
    """What :func:`ingest_body` stored: counts, the first :data:`KEPT` rejections, the ids
    (only while there are at most :data:`KEPT`)."""

    accepted: int = 0
    ids: list[str] = field(default_factory=list)
    rejected: int = 0
    rejections: list[Rejected] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    largest_piece: int = 0
    """The most bytes of the body handed to the parser at once (0: parsed from a file)."""
    duplicates: int = 0
    """Records not stored because the body repeats them or the store holds them already
    (content ids only)."""
    every_id: list[str] | None = None
    """Every id parsed so far, kept only for content ids (the store look-up)."""
    earliest: datetime | None = None
    latest: datetime | None = None

    def add(self, parsed: ParsedRows) -> None:
        self.accepted += parsed.count
        if self.accepted <= KEPT:
            self.ids.extend(parsed.ids)
        else:
            self.ids.clear()
        self.reject(parsed.rejected)
        for name, count in parsed.formats.items():
            self.formats[name] = self.formats.get(name, 0) + count
        self.duplicates += parsed.duplicates
        if self.every_id is not None:
            self.every_id.extend(parsed.ids)
        if parsed.earliest is not None:
            self.earliest = min(self.earliest or parsed.earliest, parsed.earliest)
        if parsed.latest is not None:
            self.latest = max(self.latest or parsed.latest, parsed.latest)

    def parsed_again(self, parsed: ParsedRows) -> None:
        """Take the stored events of ``parsed`` (the whole body parsed again, without the
        records already stored) instead of those added so far; the rejections stay."""
        self.accepted = parsed.count
        self.ids = list(parsed.ids) if self.accepted <= KEPT else []
        self.formats = dict(parsed.formats)
        self.duplicates = parsed.duplicates

    def reject(self, rejected: list[Rejected]) -> None:
        self.rejected += len(rejected)
        self.rejections.extend(rejected[: max(0, KEPT - len(self.rejections))])


SPOOL_PREFIXES: Final = (".body-", ".blocks-")


def spool_dir(data_dir: Path) -> Path:
    """Where bodies and encoded blocks wait on disk while an ingest is read."""
    return data_dir / "spool"


def clear_spool(directory: Path) -> int:
    """Remove what an earlier gateway left in its spool (killed mid-body: nothing in those
    files was acknowledged); returns how many files. Run once at start, before any ingest."""
    removed = 0
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith(SPOOL_PREFIXES) and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _temporary(directory: Path, prefix: str) -> tuple[IO[bytes], Path]:
    """A new temporary file in ``directory`` (owner-only), open for writing."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, name = tempfile.mkstemp(dir=directory, prefix=prefix)
    return os.fdopen(handle, "wb"), Path(name)


class _Blocks:
    """Encoded blocks of one body waiting for their insert: in memory up to a budget, then in
    a temporary file; one Native stream either way. Pieces parsed by workers write their
    blocks to files of their own (:meth:`piece_file`), which are inserted as they are."""

    def __init__(self, directory: Path, budget: int) -> None:
        self.directory = directory
        self.budget = budget
        self.kept: list[bytes] = []
        self.kept_bytes = 0
        self.path: Path | None = None
        self._out: IO[bytes] | None = None
        self.pieces: list[Path] = []

    def piece_file(self) -> Path:
        """A new, empty temporary file for the blocks of one piece (a worker writes it)."""
        out, path = _temporary(self.directory, SPOOL_PREFIXES[1])
        out.close()
        self.pieces.append(path)
        return path

    def file(self) -> Path:
        """The temporary file (made now if need be); what is in memory moves there."""
        if self.path is None:
            self._out, self.path = _temporary(self.directory, SPOOL_PREFIXES[1])
            for block in self.kept:
                self._out.write(block)
            self.kept, self.kept_bytes = [], 0
        return self.path

    def add(self, blocks: list[bytes]) -> None:
        size = sum(len(b) for b in blocks)
        if self.path is None and self.kept_bytes + size <= self.budget:
            self.kept.extend(blocks)
            self.kept_bytes += size
            return
        self.file()
        assert self._out is not None
        for block in blocks:
            self._out.write(block)

    @contextlib.contextmanager
    def stream(self) -> Iterator[bytes | IO[bytes] | list[Path] | None]:
        """The blocks as one insert payload (None when there are none): the files holding
        them once pieces were written to files."""
        if self.pieces:
            if self.kept:
                self.file()
            if self._out is not None:
                self._out.close()
                self._out = None
            yield [f for f in self._files() if f.stat().st_size] or None
            return
        if self.path is None:
            if len(self.kept) > 1:
                yield b"".join(self.kept)
            else:
                yield self.kept[0] if self.kept else None
            return
        if self._out is not None:
            self._out.close()
            self._out = None
        with self.path.open("rb") as handle:
            yield handle if os.fstat(handle.fileno()).st_size else None

    def _files(self) -> list[Path]:
        """The files holding this body's blocks: its own spill file, then the pieces'."""
        return [self.path, *self.pieces] if self.path is not None else list(self.pieces)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
        for path in self._files():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _line_too_long(line: int, start: bytes) -> Rejected:
    return Rejected(
        f"line is longer than {PIECE_BYTES} bytes",
        line=line,
        excerpt=excerpt(start[:200].decode("utf-8", "backslashreplace")),
    )


_MILLISECOND: Final = timedelta(milliseconds=1)


async def _store_once(
    result: Ingested,
    blocks: _Blocks,
    *,
    parser: IngestParser,
    store: LogStore,
    info: BodyInfo,
    body: Path,
) -> _Blocks:
    """The blocks to insert for a body of content ids: ``blocks`` as they are when the body
    repeats nothing across its pieces and the store holds none of its events; else the whole
    ``body`` parsed again without them (``result`` updated to match)."""
    every_id = result.every_id or []
    assert result.earliest is not None
    assert result.latest is not None
    known = await stored_ids(store, every_id, earliest=result.earliest, latest=result.latest)
    if not known and len(set(every_id)) == len(every_id):
        return blocks
    again = _Blocks(blocks.directory, 0)
    try:
        parsed = await parser.parse_file(body, info, blocks_to=again.file(), exclude=known)
    except BaseException:
        again.close()
        raise
    blocks.close()
    result.parsed_again(parsed)
    return again


async def stored_ids(
    store: LogStore, ids: Sequence[str], *, earliest: datetime, latest: datetime
) -> set[str]:
    """Which of ``ids`` the store holds among its events of ``[earliest, latest]`` (content ids
    carry their event's time, so a stored copy lies in the span of the body that repeats it)."""
    found: set[str] = set()
    unique = sorted(set(ids))
    sql = (
        f"SELECT toString(id) FROM {store.table} WHERE timestamp >= {{lo:DateTime64(3)}} "  # noqa: S608 - the table name is the store's own; values are bound
        "AND timestamp <= {hi:DateTime64(3)} AND id IN {ids:Array(UUID)}"
    )
    for offset in range(0, len(unique), LOOKUP_IDS):
        result = await store.query(
            sql,
            {
                "lo": earliest - _MILLISECOND,
                "hi": latest + _MILLISECOND,
                "ids": unique[offset : offset + LOOKUP_IDS],
            },
        )
        found.update(row[0] for row in result.result_rows)
    return found


async def ingest_body(
    chunks: AsyncIterator[bytes],
    *,
    parser: IngestParser,
    store: LogStore,
    spool: Path,
    info: BodyInfo,
) -> Ingested:
    """Read, parse and store a body as it arrives (see the module docstring); the good events
    are stored, durably, when this returns. Nothing is stored when reading fails or when no
    event is valid (the caller answers AURORA-4220 for that)."""
    result = Ingested()
    blocks = _Blocks(spool, SPOOL_MEMORY_BYTES)
    in_flight: list[asyncio.Task[ParsedRows]] = []
    limit = max(2, parser.workers)  # pieces of this body parsing at once
    document: IO[bytes] | None = None
    document_path: Path | None = None
    unique = info.ids == "content"
    copy: IO[bytes] | None = None  # the whole body, to parse again (content ids)
    copy_path: Path | None = None
    if unique:
        result.every_id = []
        copy, copy_path = _temporary(spool, SPOOL_PREFIXES[0])

    async def settle(keep: int) -> None:
        while len(in_flight) > keep:
            parsed = await in_flight.pop(0)
            result.add(parsed)
            blocks.add(parsed.blocks)

    def submit(piece: bytes, layout: Layout, first_line: int) -> None:
        result.largest_piece = max(result.largest_piece, len(piece))
        # A worker writes the piece's blocks to a file the insert reads, instead of sending
        # them back through its pipe (a thread keeps them in memory: nothing to copy there).
        blocks_to = blocks.piece_file() if parser.workers > 0 else None
        in_flight.append(
            asyncio.ensure_future(
                parser.parse(piece, info, layout=layout, first_line=first_line, blocks_to=blocks_to)
            )
        )

    try:
        buffer = bytearray()
        layout: Layout | None = None
        line = 1
        skipping = False  # inside a line longer than a piece, until its end
        async for chunk in chunks:
            if copy is not None:
                copy.write(chunk)
            if document is not None:
                document.write(chunk)
                continue
            if skipping:
                end = chunk.find(b"\n")
                if end < 0:
                    continue
                skipping, line = False, line + 1
                chunk = chunk[end + 1 :]
            buffer += chunk
            if layout is None:
                undecided = len(buffer) - len(chunk) >= 8  # and the first line still going on
                if undecided and b"\n" not in chunk and len(buffer) < PIECE_BYTES:
                    continue
                layout = info.layout(bytes(buffer[:PIECE_BYTES]), complete=False)
                if layout is None and len(buffer) < PIECE_BYTES:
                    continue
                if layout is None or layout == "document":
                    layout = "document"
                    document, document_path = _temporary(spool, SPOOL_PREFIXES[0])
                    document.write(buffer)
                    buffer = bytearray()
                    continue
            while len(buffer) >= PIECE_BYTES:
                cut = buffer.rfind(b"\n", 0, PIECE_BYTES)
                if cut < 0:  # one line longer than a piece: rejected, skipped to its end
                    await settle(0)  # the rejections stay in line order
                    result.reject([_line_too_long(line, bytes(buffer[:200]))])
                    end = buffer.find(b"\n", PIECE_BYTES)
                    if end < 0:
                        buffer, skipping = bytearray(), True
                        break
                    del buffer[: end + 1]
                    line += 1
                    continue
                with memoryview(buffer) as view:  # one copy, and released before the del
                    piece = bytes(view[: cut + 1])
                del buffer[: cut + 1]
                submit(piece, layout, line)
                line += piece.count(b"\n")
                await settle(limit)
        if document is not None and document_path is not None:
            document.close()
            parsed = await parser.parse_file(document_path, info, blocks_to=blocks.file())
            result.add(parsed)
        else:
            if skipping:
                pass  # the long line ran to the end of the body: already rejected
            elif buffer or layout is None:
                final = layout or info.layout(bytes(buffer), complete=True)
                if final == "document":  # short: parsed whole from memory
                    result.largest_piece = max(result.largest_piece, len(buffer))
                    parsed = await parser.parse(bytes(buffer), info)
                    result.add(parsed)
                    blocks.add(parsed.blocks)
                elif buffer and final is not None:
                    submit(bytes(buffer), final, line)
            buffer = bytearray()
            await settle(0)
        if not unique:
            if result.accepted:
                with blocks.stream() as payload:
                    if payload is not None:
                        await store.insert_block(payload)
            return result
        assert copy is not None
        assert copy_path is not None
        copy.close()
        async with parser.unique_lock:
            if result.accepted:
                blocks = await _store_once(
                    result, blocks, parser=parser, store=store, info=info, body=copy_path
                )
            if result.accepted:
                with blocks.stream() as payload:
                    if payload is not None:
                        await store.insert_block(payload)
        return result
    finally:
        for task in in_flight:
            task.cancel()
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        if document is not None:
            document.close()
        if document_path is not None:
            with contextlib.suppress(FileNotFoundError):
                document_path.unlink()
        if copy is not None:
            copy.close()
        if copy_path is not None:
            with contextlib.suppress(FileNotFoundError):
                copy_path.unlink()
        blocks.close()


SHOWN: Final = 1000
"""Rejections (and ids) an ingest answer shows."""


def ingest_answer(stored: Ingested, *, started: float, nothing_new: bool = False) -> IngestResult:
    """The answer to an ingest that stored ``stored`` (``started``: its ``perf_counter()``):
    AURORA-4220 with the reason of each line when nothing in the body was valid (unless
    ``nothing_new``: every record was valid and had been stored before), naming the body when
    it held nothing at all."""
    rejections = [
        Rejection(line=r.line, index=r.index, reason=r.reason, excerpt=r.excerpt or None)
        for r in stored.rejections[:SHOWN]
    ]
    if not stored.accepted and not nothing_new:
        if not rejections:
            raise field_error(["body"], "no events in the body", "empty")
        raise field_errors(
            (["body", r.line if r.line is not None else r.index or 0], r.reason, "event_rejected")
            for r in rejections
        )
    return IngestResult(
        accepted=stored.accepted,
        rejected=stored.rejected,
        rejections=rejections,
        ids=stored.ids if stored.accepted <= SHOWN else [],
        formats=stored.formats,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )
