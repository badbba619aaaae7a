"""Search pages read from a key-value table beside the log table, and the full-text term read
from a text index: what each would cost and what it would give the search figure, measured on a
store of a few days at the rate of ``benchmarks/siem.py``'s 5M events (each day merged into one
part, as the days of a store at rest are). Only the log table and its search
(``LogStore.search``) are the platform's: they are the baseline every other side is measured
against, in the same run. See "Measured and not kept: pages from a RocksDB table, the phrase
from the text index" in docs/performance.md.

What it builds, in a temporary directory of its own (one chDB engine, started with a
configuration that gives RocksDB a ZSTD dictionary):

- the log table, filled with the benchmark's corpus through ``LogStore.insert_block``;
- a copy of it with a text index on ``raw``;
- the engine's ``EmbeddedRocksDB`` table keyed by id, holding what a page reads, filled two
  hours at a time as inserts would fill it, then compacted.

What it measures: the disk of each; 100, 10 and 1 events of a day read by id from each; the
keys of a day's page for a phrase as the platform's scan, as the text index's dictionary scan
(the same meaning) and as whole tokens (another meaning); what a materialised view writing the
RocksDB table adds to an insert; and the search shapes of ``benchmarks/siem.py`` that cover a day
or two, through the platform's search against the same search with its page read from RocksDB
(and the phrase read from the text index), alternated window by window.

    .venv/bin/python benchmarks/page_store.py [--days 3] [--windows 30]

It reads the shared corpus (``$AURORA_SHARED_DATA``) for realistic events, and takes about
2 GB of disk (at its peak) and two minutes on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.siem import (
    CORPUS,
    DAYS,
    HOSTS,
    NDJSON,
    SOURCE,
    Corpus,
    host_name,
    load_templates,
)
from core.logstore.schema import in_key_order, time_bounds
from core.logstore.store import (
    _PAGE,
    COLUMNS,
    PAGE_COLUMNS,
    SPLIT_READS,
    UNORDERED_SLICE,
    LogStore,
    SearchPage,
    SearchRequest,
    TimeSlices,
    _event,
)
from tools.logs.rows import parse_rows

EVENTS_A_MONTH: Final = 5_000_000
BATCH: Final = 10_000
START: Final = datetime(2026, 10, 1, tzinfo=UTC)
PHRASE: Final = "DownloadString"
"""The phrase of ``benchmarks/siem.py``'s "full text, 1 day" search."""
ROCKSDB_CONFIG: Final = """<clickhouse><rocksdb><column_family_options>
<compression_opts>{max_dict_bytes=65536;zstd_max_train_bytes=4194304;level=3}</compression_opts>
</column_family_options></rocksdb></clickhouse>"""
"""A ZSTD dictionary for RocksDB's blocks (the engine compresses them with ZSTD, 4 KiB each)."""
TEXT_INDEX: Final = (
    "INDEX ix_raw raw TYPE text(tokenizer = splitByNonAlpha, preprocessor = lower(raw)) "
    "GRANULARITY 100000000"
)

type Phrase = Literal["scan", "dictionary", "tokens"]


class PagedStore(LogStore):
    """The platform's search with its slices finding only (time, id), the page then read from
    the RocksDB table by id in one query; a quoted term read as ``phrase`` says. (No cursor:
    the benchmark's searches are first pages.)"""

    pages: str = ""
    phrase: Phrase = "scan"

    async def search(self, request: SearchRequest) -> SearchPage:
        direction: Literal["ASC", "DESC"] = "DESC" if request.order == "desc" else "ASC"
        want = int(request.limit) + 1
        extra: list[tuple[str, dict[str, Any]]] = []
        term = (request.query or "").strip('"')
        whole_window = False
        if self.phrase != "scan" and request.query == f'"{term}"' and term.isalnum():
            condition = {
                "dictionary": "raw ILIKE {term_like:String}",
                "tokens": "hasAnyTokens(raw, [{term_token:String}])",
            }[self.phrase]
            extra.append((condition, {"term_like": f"%{term}%", "term_token": term.lower()}))
            request = replace(request, query=None)
            whole_window = True  # the index answers a day in one read; slices read it again
        found: list[Any] = []
        slices = TimeSlices(request.start, request.end, request.order)
        windows = iter([(request.start, request.end)]) if whole_window else None
        while True:
            window = next(windows, None) if windows else slices.next(len(found), want)
            if window is None:
                break
            lo, hi = window
            where, parameters = self._where(replace(request, start=lo, end=hi), extra)
            settings = dict(SPLIT_READS)
            if lo is not None and hi is not None and hi - lo <= UNORDERED_SLICE:
                settings["optimize_read_in_order"] = 0
            keys = await self.query(
                f"SELECT timestamp, id FROM {self.table} WHERE {where} "  # noqa: S608
                f"ORDER BY {in_key_order(direction)} LIMIT {want - len(found)}",
                parameters,
                settings,
            )
            found += keys.result_rows
        found = found[: request.limit]
        rows: list[dict[str, Any]] = []
        if found:
            result = await self.query(
                f"SELECT {_PAGE} FROM {self.pages} WHERE id IN {{ids:Array(UUID)}}",  # noqa: S608
                {"ids": [str(key[1]) for key in found]},
            )
            by_id = {row[0]: row for row in result.result_rows}
            rows = [_event(by_id[key[1]]) for key in found]
        return SearchPage(rows, None, 0.0)


def median_ms(
    client: Any, sql: str, parameters: dict[str, Any], settings: dict[str, Any] | None = None
) -> float:
    """The median wall time of ``sql`` over 9 runs, after one that warms."""
    settings = {"use_query_condition_cache": 0} | (settings or {})
    client.query(sql, parameters=parameters, settings=settings)
    spent = []
    for _ in range(9):
        started = time.perf_counter()
        client.query(sql, parameters=parameters, settings=settings)
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


def mib(count: float) -> str:
    return f"{count / 1048576:.1f} MiB"


def write_batch(corpus: Corpus, k: int, path: Path) -> Path:
    """Batch ``k`` of the corpus parsed as the ingest parses it, into Native blocks at ``path``."""
    parse_rows(
        corpus.make(k)[0],
        content_type=NDJSON,
        source=SOURCE,
        format=None,
        layout="json_lines",
        blocks_to=str(path),
    )
    return path


async def build(client: Any, work: Path, corpus: Corpus, days: int) -> tuple[LogStore, str]:
    """The log table, its copy with a text index and the RocksDB table of its pages."""
    store = LogStore(lambda: client, database="bench", retention_days=0, local_files=True)
    await store.start()
    batches = -(-EVENTS_A_MONTH * days // (DAYS * BATCH))
    started = time.perf_counter()
    for k in range(batches):
        path = write_batch(corpus, k, work / f"batch{k}.native")
        await store.insert_block([path])
        path.unlink()
    client.command(f"OPTIMIZE TABLE {store.table} FINAL")
    print(f"loaded {batches * BATCH:,} events in {time.perf_counter() - started:.0f} s")

    columns = ", ".join(f"`{c}`" for c in PAGE_COLUMNS)
    written = ", ".join(f"`{c}`" for c in COLUMNS)
    client.command("CREATE DATABASE IF NOT EXISTS bench_text")
    client.command(f"CREATE TABLE bench_text.logs AS {store.table}")
    client.command(f"ALTER TABLE bench_text.logs ADD {TEXT_INDEX}")
    client.command(f"INSERT INTO bench_text.logs ({written}) SELECT {written} FROM {store.table}")  # noqa: S608
    client.command("OPTIMIZE TABLE bench_text.logs FINAL")

    types = client.query(
        "SELECT name, type FROM system.columns WHERE database = 'bench' AND table = 'logs' "
        "AND has({names:Array(String)}, name) ORDER BY position",
        parameters={"names": list(PAGE_COLUMNS)},
    ).result_rows
    definition = ", ".join(f"`{name}` {kind}" for name, kind in types)
    pages = "bench.pages"
    client.command(f"CREATE TABLE {pages} ({definition}) ENGINE = EmbeddedRocksDB PRIMARY KEY id")
    started = time.perf_counter()
    end = START + timedelta(days=days)
    at = START
    while at < end:
        client.command(
            f"INSERT INTO {pages} SELECT {columns} FROM {store.table} "  # noqa: S608
            "WHERE timestamp >= {lo:DateTime64(3)} AND timestamp < {hi:DateTime64(3)}",
            parameters={
                "lo": at.replace(tzinfo=None),
                "hi": (at + timedelta(hours=2)).replace(tzinfo=None),
            },
        )
        at += timedelta(hours=2)
    filled = time.perf_counter() - started
    started = time.perf_counter()
    client.command(f"OPTIMIZE TABLE {pages}")
    print(
        f"the RocksDB table filled in {filled:.1f} s, compacted in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return store, pages


def disk(client: Any, days: int) -> None:
    table, index = client.query(
        "SELECT sum(bytes_on_disk), sum(secondary_indices_compressed_bytes) FROM system.parts "
        "WHERE database = 'bench_text' AND table = 'logs' AND active"
    ).result_rows[0]
    logs = client.query(
        "SELECT sum(bytes_on_disk) FROM system.parts "
        "WHERE database = 'bench' AND table = 'logs' AND active"
    ).result_rows[0][0]
    pages = client.query(
        "SELECT total_bytes FROM system.tables WHERE database = 'bench' AND name = 'pages'"
    ).result_rows[0][0]
    print(f"disk a day: the log table {mib(logs / days)}")
    print(f"  the RocksDB table {mib(pages / days)} ({pages / logs:.0%} of it, beside it)")
    print(
        f"  the text index {mib(index / days)} ({index / logs:+.0%}; its table {mib(table / days)})"
    )


def reads(client: Any, pages: str) -> None:
    day = START + timedelta(days=1)
    bounded, bounds = time_bounds(day, day + timedelta(days=1))  # as the platform reads
    window = " AND ".join(bounded)
    ids = [
        str(row[0])
        for row in client.query(
            f"SELECT id FROM bench.logs WHERE {window} ORDER BY cityHash64(id) LIMIT 100",  # noqa: S608
            parameters=bounds,
        ).result_rows
    ]
    print("events of the second day read by id (median of 9):")
    for count in (100, 10, 1):
        wanted = {**bounds, "ids": ids[:count]}
        table = median_ms(
            client,
            f"SELECT {_PAGE} FROM bench.logs WHERE {window} AND id IN {{ids:Array(UUID)}}",  # noqa: S608
            wanted,
        )
        kv = median_ms(
            client,
            f"SELECT {_PAGE} FROM {pages} WHERE id IN {{ids:Array(UUID)}}",  # noqa: S608
            wanted,
        )
        print(f"  {count:3d}: the log table {table:6.2f} ms, the RocksDB table {kv:5.2f} ms")

    print(f"the keys of a day's page for {PHRASE!r} (one query over the day, median of 9):")
    conditions = {
        "the platform's scan": ("bench", "positionCaseInsensitive(raw, {t:String}) > 0", PHRASE),
        "the text index's dictionary": ("bench_text", "raw ILIKE {t:String}", f"%{PHRASE}%"),
        "whole tokens from the index": (
            "bench_text",
            "hasAnyTokens(raw, [{t:String}])",
            PHRASE.lower(),
        ),
    }
    for name, (database, condition, term) in conditions.items():
        sql = (
            f"SELECT timestamp, id FROM {database}.logs WHERE {window} AND {condition} "  # noqa: S608
            "ORDER BY timestamp DESC, id DESC LIMIT 101"
        )
        parameters = {**bounds, "t": term}
        spent = median_ms(client, sql, parameters, SPLIT_READS)
        found = len(client.query(sql, parameters=parameters).result_rows)
        print(f"  {name:30s} {spent:6.1f} ms ({found} rows)")


async def insert_rounds(
    client: Any, work: Path, corpus: Corpus, store: LogStore, pages: str
) -> None:
    """A materialised view writing the RocksDB table at each insert, against the insert alone
    (10,000-event blocks of the corpus into fresh tables without merges, 3 alternated rounds;
    the engine runs in this process, so its CPU is this process's)."""
    files = [write_batch(corpus, k, work / f"insert{k}.native") for k in range(10)]
    columns = ", ".join(f"`{c}`" for c in PAGE_COLUMNS)
    sides: dict[str, LogStore] = {}
    for name, database in (("the log table", "ins_plain"), ("and the RocksDB table", "ins_kv")):
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        client.command(f"CREATE TABLE {database}.logs AS {store.table}")
        client.command(f"SYSTEM STOP MERGES {database}.logs")
        sides[name] = LogStore(
            lambda: client, database=database, retention_days=0, local_files=True
        )
    client.command(f"CREATE TABLE ins_kv.pages AS {pages}")
    client.command(
        "CREATE MATERIALIZED VIEW ins_kv.pages_view TO ins_kv.pages "  # noqa: S608
        f"AS SELECT {columns} FROM ins_kv.logs"
    )
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    wall: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(3):
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        for name in order:
            for path in files:
                started, spent = time.perf_counter(), time.process_time()
                await sides[name].insert_block([path])
                cpu[name].append((time.process_time() - spent) / BATCH * 1e6)
                wall[name].append((time.perf_counter() - started) / BATCH * 1e6)
    print("an insert, µs an event (median of 30 blocks):")
    for name in sides:
        print(
            f"  {name:24s} CPU {statistics.median(cpu[name]):5.1f}, "
            f"wall {statistics.median(wall[name]):5.1f}"
        )


SHAPES: Final[dict[str, tuple[int, Callable[[random.Random], dict[str, Any]]]]] = {
    "host, 1 day": (
        24,
        lambda rng: {
            "filters": {"host.name": host_name(min(int(rng.expovariate(1 / 80)), HOSTS - 1))}
        },
    ),
    "process.name, 2 days": (48, lambda rng: {"query": "process.name:powershell.exe"}),
    "full text, 1 day": (24, lambda rng: {"query": f'"{PHRASE}"'}),
    "Image wildcard, 1 day": (24, lambda rng: {"query": "Image:*\\\\powershell.exe"}),
    "CIDR + code, 2 days": (
        48,
        lambda rng: {"query": "source.ip:10.0.0.0/8 AND event.code:(4624 OR 4769)"},
    ),
}
"""The shapes of ``benchmarks/siem.py`` that read a day or two (its 7-day ones over two days,
the store's span; its 30-day ones were already the fastest)."""


async def shapes(client: Any, store: LogStore, pages: str, days: int, windows: int) -> None:
    sides: dict[str, LogStore] = {"the platform's search": store}
    variants: tuple[tuple[str, str, Phrase], ...] = (
        ("pages from RocksDB", "bench", "scan"),
        ("and the dictionary scan", "bench_text", "dictionary"),
        ("and whole tokens", "bench_text", "tokens"),
    )
    for name, database, phrase in variants:
        paged = PagedStore(lambda: client, database=database, retention_days=0, local_files=True)
        paged.pages, paged.phrase = pages, phrase
        sides[name] = paged
    spent: dict[str, dict[str, list[float]]] = {n: {s: [] for s in SHAPES} for n in sides}
    differed: dict[str, int] = {}
    rng = random.Random(11)
    end = START + timedelta(days=days)
    for round_ in range(windows + 2):  # the first two of each warm, and are left out
        for shape, (hours, make) in SHAPES.items():
            slack = (end - START - timedelta(hours=hours)).total_seconds()
            lo = START + timedelta(seconds=rng.uniform(0, slack))
            request = SearchRequest(
                start=lo, end=lo + timedelta(hours=hours), limit=100, **make(rng)
            )
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            ids: dict[str, list[str]] = {}
            for name in order:
                started = time.perf_counter()
                page = await sides[name].search(request)
                if round_ >= 2:
                    spent[name][shape].append((time.perf_counter() - started) * 1000)
                ids[name] = [event["id"] for event in page.items]
            for name, found in ids.items():
                if found != ids["the platform's search"]:
                    differed[name] = differed.get(name, 0) + 1
    print(f"searches, {windows} random windows a shape, alternated (p50 / p90 ms):")
    for name, by_shape in spent.items():
        every = sorted(v for values in by_shape.values() for v in values)
        print(f"  {name}:")
        for shape, values in by_shape.items():
            ordered = sorted(values)
            print(
                f"    {shape:24s} {statistics.median(ordered):6.1f} / "
                f"{ordered[int(len(ordered) * 0.9)]:6.1f}"
            )
        print(
            f"    all: p50 {statistics.median(every):.1f}, "
            f"p95 {every[int(len(every) * 0.95)]:.1f}, worst {every[-1]:.1f}"
        )
    for name, count in differed.items():
        print(f"  {name} returned another page than the platform's in {count} searches")


async def main(days: int, windows: int) -> None:
    import clickhouse_connect

    work = Path(tempfile.mkdtemp(prefix="aurora-page-store-"))
    try:
        config = work / "rocksdb.xml"
        config.write_text(ROCKSDB_CONFIG)
        client = clickhouse_connect.get_client(
            interface="chdb", path=str(work / "db"), chdb_options={"config-file": str(config)}
        )
        corpus = Corpus(load_templates(CORPUS)[0], EVENTS_A_MONTH, BATCH, START)
        store, pages = await build(client, work, corpus, days)
        disk(client, days)
        reads(client, pages)
        await insert_rounds(client, work, corpus, store, pages)
        await shapes(client, store, pages, days, windows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--windows", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.days, args.windows))
