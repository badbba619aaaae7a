"""The log store on a real embedded chDB: schema, durable batched inserts, search with the query
language, cursor pages, sources, stats, and detection-style conditions."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from core.errors import ClickHouseUnavailable, ValidationFailed
from core.logstore.query import compile_query
from core.logstore.schema import (
    TABLE_SETTINGS,
    WIDE_PART_ROWS,
    LogEvent,
    create_table_sql,
    usable_settings,
)
from core.logstore.store import (
    COLUMNS,
    TABLE,
    WIRE_TYPES,
    LogStore,
    SearchRequest,
    TimeSlices,
    decode_cursor,
    encode_events,
    event_row,
    write_events,
)
from core.settings import Settings
from tests.conftest import PROJECT_ROOT
from tools.logs import rows as rows_module
from tools.logs.rows import random_ids

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def event(minute: int, **values: Any) -> LogEvent:
    fields = {k: str(v) for k, v in values.items()}
    if "process.name" in values:
        fields["Image"] = f"C:\\Windows\\System32\\{values['process.name']}"
    return LogEvent(
        timestamp=T0 + timedelta(minutes=minute),
        format="windows",
        source=str(values.pop("source", "sysmon")) if "source" in values else "sysmon",
        raw=str({"minute": minute, **values}),
        values=dict(values),
        fields=fields,
    )


EVENTS = [
    event(
        0,
        **{
            "event.code": "1",
            "host.name": "ws-17",
            "process.name": "powershell.exe",
            "process.command_line": "powershell -enc SQBFAFgA Invoke-Mimikatz",
            "process.pid": 4242,
            "user.name": "alice",
        },
    ),
    event(
        1,
        **{
            "event.code": "3",
            "host.name": "ws-17",
            "process.name": "powershell.exe",
            "destination.ip": "45.33.32.156",
            "destination.port": 443,
            "source.ip": "10.1.2.3",
            "source.port": 50123,
        },
    ),
    event(
        2,
        **{
            "event.code": "1",
            "host.name": "dc-01",
            "process.name": "cmd.exe",
            "user.name": "svc_backup",
        },
    ),
    event(3, **{"event.code": "22", "host.name": "ws-18", "dns.question.name": "evil.example"}),
]


@pytest.fixture
async def store(empty_store: LogStore) -> LogStore:
    await empty_store.insert(EVENTS)
    return empty_store


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(module_store: LogStore) -> LogStore:
    """:data:`EVENTS` in a store shared by the tests that only read them."""
    await module_store.insert(EVENTS)
    return module_store


reads_only = pytest.mark.asyncio(loop_scope="module")


async def names(store: LogStore, q: str | None = None, **kwargs: Any) -> list[str]:
    page = await store.search(SearchRequest(query=q, order="asc", **kwargs))
    return [item.get("process.name") or item.get("dns.question.name", "") for item in page.items]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("process.name:powershell.exe", ["powershell.exe", "powershell.exe"]),
        ("process.name:POWERSHELL.EXE AND event.code:1", ["powershell.exe"]),
        ("event.code:(1 OR 22)", ["powershell.exe", "cmd.exe", "evil.example"]),
        ("NOT host.name:ws-17", ["cmd.exe", "evil.example"]),
        ("-host.name:ws-17 user.name:svc_*", ["cmd.exe"]),
        ("destination.port:>=443 source.ip:10.0.0.0/8", ["powershell.exe"]),
        ("destination.port:[400 TO 500]", ["powershell.exe"]),
        ("process.pid:*", ["powershell.exe"]),
        ('"invoke-mimikatz"', ["powershell.exe"]),
        ("mimikatz OR dns.question.name:?vil.example", ["powershell.exe", "evil.example"]),
        ("Image:*\\\\cmd.exe", ["cmd.exe"]),  # an original field, not a normalised one
        ('Image:"c:\\\\windows\\\\system32\\\\cmd.exe"', ["cmd.exe"]),
        ("source.ip:192.168.0.0/16", []),
        ("", ["powershell.exe", "powershell.exe", "cmd.exe", "evil.example"]),
    ],
)
@reads_only
async def test_the_query_language(seeded: LogStore, query: str, expected: list[str]) -> None:
    assert await names(seeded, query) == expected


@pytest.mark.parametrize(
    ("query", "condition"),
    [
        ("Image:*\\\\cmd.exe", "fields['Image'] ILIKE '%\\\\\\\\cmd.exe'"),
        ("Image:*", "fields['Image'] != ''"),
        ("NOT Image:*powershell.exe", "NOT fields['Image'] ILIKE '%powershell.exe'"),
    ],
)
@reads_only
async def test_a_promoted_field_reads_its_column_and_matches_what_the_map_holds(
    seeded: LogStore, query: str, condition: str
) -> None:
    compiled = compile_query(query)
    assert "x_" in compiled.sql
    assert "fields[" not in compiled.sql
    window = {"start": T0 - timedelta(days=1), "end": T0 + timedelta(days=1), "limit": 100}
    by_column = await seeded.matching(compiled.sql, compiled.parameters, **window)
    by_map = await seeded.matching(condition, {}, **window)
    assert by_column[0] > 0
    assert by_column == by_map


@reads_only
async def test_time_range_filters_and_pages(seeded: LogStore) -> None:
    store = seeded
    window = {"start": T0 + timedelta(minutes=1), "end": T0 + timedelta(minutes=3)}
    assert await names(store, None, **window) == ["powershell.exe", "cmd.exe"]
    assert await names(store, filters={"host.name": "ws-17"}) == ["powershell.exe"] * 2
    first = await store.search(SearchRequest(limit=3))
    assert [i["timestamp"] for i in first.items] == [
        "2026-11-20T08:03:00Z",
        "2026-11-20T08:02:00Z",
        "2026-11-20T08:01:00Z",
    ]
    assert first.next_cursor is not None
    rest = await store.search(SearchRequest(limit=3, cursor=first.next_cursor))
    assert [i["timestamp"] for i in rest.items] == ["2026-11-20T08:00:00Z"]
    assert rest.next_cursor is None
    item = first.items[2]
    assert item["destination.port"] == 443  # a number stays a number
    assert item["source"] == "sysmon"
    assert "user.name" not in item  # empty fields are left out
    assert (await store.get(item["id"]))["destination.ip"] == "45.33.32.156"  # type: ignore[index]
    assert await store.get(str(uuid.uuid4())) is None
    assert await store.get("not-a-uuid") is None


async def test_a_window_keeps_every_event_at_its_edges_and_its_hours(empty_store: LogStore) -> None:
    """The time conditions bound the sorting key's hour too (the engine then reads only the
    window's hours of a part): every event of the window is still found at the edges of its
    hours, whether the window's end is in or out, and the primary index is searched on the
    hour."""
    store = empty_store
    ms = timedelta(milliseconds=1)
    hour = T0 + timedelta(hours=1)
    moments = [T0 - ms, T0, T0 + timedelta(minutes=30), hour - ms, hour, hour + ms]
    events = [
        replace(event(0, **{"event.code": str(n)}), timestamp=at) for n, at in enumerate(moments)
    ]
    await store.insert(events)

    async def codes(start: datetime, end: datetime) -> list[str]:
        page = await store.search(SearchRequest(start=start, end=end, order="asc"))
        return [item["event.code"] for item in page.items]

    assert await codes(T0, hour) == ["1", "2", "3"]
    assert await codes(T0 - ms, hour + ms) == ["0", "1", "2", "3", "4"]
    assert await codes(T0 + timedelta(minutes=30), hour - ms) == ["2"]
    assert await codes(hour - ms, hour + timedelta(minutes=5)) == ["3", "4", "5"]
    everything = await store.search(SearchRequest(limit=10))
    ids = {item["event.code"]: item["id"] for item in everything.items}
    found = await store.by_ids(list(ids.values()), start=hour - ms, end=hour)
    assert [item["event.code"] for item in found] == ["3", "4"]
    stats = await store.stats(start=T0, end=hour)
    assert stats["events_in_window"] == 3
    where, parameters = store._where(SearchRequest(start=T0, end=hour))
    plan = await store.query(
        f"EXPLAIN indexes = 1 SELECT count() FROM {store.table} WHERE {where}",  # noqa: S608 - the store's own table; values bound
        parameters,
    )
    keys = "\n".join(row[0] for row in plan.result_rows).split("PrimaryKey", 1)[1]
    assert "toStartOfHour(timestamp)" in keys


def test_windows_mean_utc_whatever_the_zone_of_the_process(tmp_path: Path) -> None:
    """The embedded engine reads a naive time parameter in its process's zone: the store's reads
    run in UTC, so a window means the same in a gateway started under another zone (here one
    of half-hour offset, where an hour's bound would fall inside the hour)."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from datetime import UTC, datetime, timedelta
        from pathlib import Path
        from core.logstore.schema import LogEvent
        from core.logstore.store import LogStore, SearchRequest, _chdb_client

        async def main(path):
            store = LogStore(
                lambda: _chdb_client(path), database="zoned", retention_days=0,
                local_files=True, writer_factory=lambda: _chdb_client(path, role="insert"),
            )
            await store.start()
            at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
            await store.insert(
                [LogEvent(timestamp=at, format="json", source="s", raw="", values={}, fields={})]
            )
            start, end = at - timedelta(minutes=1), at + timedelta(minutes=1)
            page = await store.search(SearchRequest(start=start, end=end))
            stats = await store.stats(start=start, end=end)
            print(len(page.items), stats["events_in_window"])
            await store.close()

        asyncio.run(main(Path(sys.argv[1])))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "chdb")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TZ": "Asia/Kolkata"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "1"]


@pytest.mark.parametrize(
    "bad",
    [
        "process.name:",
        "(process.name:cmd.exe",
        "destination.port:abc",
        "destination.port:[1 TO",
        "source.ip:10.0.0.0/99",
        "AND",
        'x" OR 1=1 --',
        "a" * 5000,
    ],
)
@reads_only
async def test_bad_queries_are_4220_and_never_reach_sql(seeded: LogStore, bad: str) -> None:
    with pytest.raises(ValidationFailed):
        await seeded.search(SearchRequest(query=bad))


@reads_only
async def test_values_are_bound_never_spliced(seeded: LogStore) -> None:
    hostile = "x') OR 1=1 OR ('"
    compiled = compile_query(f'host.name:"{hostile}"')
    assert hostile not in compiled.sql
    assert await names(seeded, f'host.name:"{hostile}"') == []
    assert await names(seeded, f'"{hostile}"') == []
    with pytest.raises(ValidationFailed):
        decode_cursor("Zm9vYmFy")


async def test_sources_stats_and_conditions(store: LogStore) -> None:
    await store.insert([event(5, source="zeek", **{"host.name": "sensor-1"})])
    sources = {s["source"]: s for s in await store.sources()}
    assert sources["sysmon"]["events"] == 4
    assert sources["zeek"]["events"] == 1
    assert sources["sysmon"]["formats"] == ["windows"]
    stats = await store.stats(start=T0, end=T0 + timedelta(hours=1))
    assert stats["events_total"] == 5
    assert stats["events_in_window"] == 5
    assert sum(b["events"] for b in stats["over_time"]) == 5
    assert stats["storage"]["rows"] == 5
    assert stats["storage"]["bytes_on_disk"] > 0
    assert stats["storage"]["merges_running"] >= 0
    assert stats["ingest_rate"]["last_minute_per_second"] > 0
    total, rows = await store.matching(
        "process_name = {p:String}",
        {"p": "powershell.exe"},
        start=T0,
        end=T0 + timedelta(minutes=1),
        limit=10,
    )
    assert (total, [r["event.code"] for r in rows]) == (1, ["1"])


async def test_a_server_that_is_down_is_aurora_5032() -> None:
    settings = Settings(clickhouse_url="http://127.0.0.1:9/", data_dir=Path("/nonexistent"))
    store = LogStore.from_settings(settings)
    with pytest.raises(ClickHouseUnavailable) as raised:
        await store.start()
    assert raised.value.code == "AURORA-5032"
    assert "127.0.0.1" not in str(raised.value.detail)
    await store.close()


async def test_a_table_made_before_a_promoted_column_gets_it(store: LogStore) -> None:
    await store.query("SELECT 1")  # the client exists
    drop = f"ALTER TABLE {store.table} DROP COLUMN x_OriginalFileName"
    await store._run(lambda client: client.command(drop))  # an older table
    names = ", ".join(name for name, _ in TABLE_SETTINGS)
    reset = f"ALTER TABLE {store.table} RESET SETTING {names}"
    await store._run(lambda client: client.command(reset))
    made = (
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} "
        "AND name = 'logs'"
    )
    before = (await store.query(made, {"db": store.database})).result_rows[0][0]
    assert not any(name in before for name, _ in TABLE_SETTINGS)
    await store.start()
    after = (await store.query(made, {"db": store.database})).result_rows[0][0]
    assert all(f"{name} = {value}" in after for name, value in TABLE_SETTINGS)
    total, _ = await store.matching(
        "`x_OriginalFileName` = ''", {}, start=T0, end=T0 + timedelta(hours=1), limit=0
    )
    assert total == len(EVENTS)


async def test_full_text_is_case_insensitive_for_ascii_and_other_letters(store: LogStore) -> None:
    await store.insert(
        [
            LogEvent(
                timestamp=T0 + timedelta(minutes=9),
                format="json",
                source="bank",
                raw='{"memo": "Überweisung an Straße 7 — Invoke-WebRequest"}',
                values={"host.name": "fin-01"},
                fields={"memo": "Überweisung an Straße 7 — Invoke-WebRequest"},
            )
        ]
    )
    for term in ('"überweisung"', '"ÜBERWEISUNG"', '"STRAßE"', '"invoke-webREQUEST"', "STRA"):
        page = await store.search(SearchRequest(query=term))
        assert [i["host.name"] for i in page.items] == ["fin-01"], term
    for term in ('"ueberweisung"', '"strasse"'):
        assert (await store.search(SearchRequest(query=term))).items == [], term
    assert "positionCaseInsensitive(raw" in compile_query("mimikatz").sql
    assert "positionCaseInsensitiveUTF8(raw" in compile_query('"überweisung"').sql


async def test_a_native_block_stores_every_value_as_given(empty_store: LogStore) -> None:
    """Rows go in as Native blocks with LowCardinality columns sent as plain strings: what comes
    back is what went in, to the millisecond, with absent numbers NULL, not 0."""
    at = datetime(2026, 11, 20, 8, 0, 1, 987_000, tzinfo=UTC)
    full = LogEvent(
        timestamp=at,
        format="windows",
        source="sysmon-ü",
        raw='{"CommandLine": "naïve — 𝄞"}',
        values={
            "event.code": "4688",
            "host.name": "WS-ÄÖ",
            "process.pid": 4_294_967_295,
            "destination.port": 65535,
            "event.severity": 0,
            "process.command_line": "naïve — 𝄞",
        },
        fields={"CommandLine": "naïve — 𝄞", "Ключ": "значение", "Empty": ""},
    )
    bare = LogEvent(timestamp=at, format="json", source="s", raw="{}", values={}, fields={})
    ids = await empty_store.insert([full, bare])
    stored = await empty_store.get(ids[0])
    assert stored is not None
    assert stored["timestamp"] == "2026-11-20T08:00:01.987000Z"
    assert stored["source"] == "sysmon-ü"
    assert stored["raw"] == full.raw
    for name, value in full.values.items():
        assert stored[name] == value, name
    assert stored["fields"] == full.fields
    empty = await empty_store.get(ids[1])
    assert empty is not None
    assert empty["fields"] == {}
    assert empty["id"] == ids[1]
    assert "process.pid" not in empty
    assert "event.code" not in empty
    sql = f"SELECT process_pid IS NULL, event_severity IS NULL, toTypeName(host_name) FROM {empty_store.table} WHERE id = {{id:UUID}}"  # noqa: E501, S608
    nulls = await empty_store.query(sql, {"id": ids[1]})
    assert nulls.result_rows == [(1, 1, "LowCardinality(String)")]


def _library_block(events: list[LogEvent], ids: list[int], now: datetime) -> bytes:
    """The block clickhouse-connect itself writes for the rows :func:`event_row` builds (what
    ``client.insert`` sends), without the ``INSERT`` line an HTTP body starts with."""
    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext
    from clickhouse_connect.driver.transform import NativeTransform

    rows = [event_row(e, i, now) for e, i in zip(events, ids, strict=True)]
    types = [get_from_name(name) for name in WIRE_TYPES]
    context = InsertContext(TABLE, COLUMNS, types, data=rows, block_size=len(rows))
    body = b"".join(NativeTransform.build_insert(context))
    assert context.insert_exception is None
    return body[body.index(b"\n") + 1 :]


def test_a_block_built_by_columns_is_the_block_of_the_rows() -> None:
    """:func:`encode_events` writes the very bytes clickhouse-connect writes for the rows: values
    in any order, of the wrong kind for their field (left out, as the row builder leaves them),
    unknown names, a column only some events have, one no event has, non-ASCII text."""
    at = datetime(2026, 11, 20, 8, 0, 1, 987_000, tzinfo=UTC)
    odd = LogEvent(
        timestamp=at,
        format="windows",
        source="sysmon-ü",
        raw='{"x": "naïve — 𝄞"}',
        values={
            "process.command_line": "naïve — 𝄞",
            "event.code": "4688",
            "process.pid": 4_294_967_295,
            "event.severity": True,
            "destination.port": "80",  # text in a number field: not stored
            "host.name": 5,  # a number in a text field: stored as its text
            "user.name": "",
            "not.a.field": 1,
        },
        fields={"CommandLine": "naïve — 𝄞", "Ключ": "значение", "Empty": ""},
    )
    bare = LogEvent(timestamp=at, format="json", source="s", raw="{}", values={}, fields={})
    # The same keys in another order, and the same keys with other values: the map's keys
    # are encoded once per key sequence.
    turned = replace(odd, fields=dict(reversed(odd.fields.items())))
    other = replace(odd, fields=dict.fromkeys(odd.fields, "x"))
    now = datetime(2026, 11, 21, tzinfo=UTC)
    for events in ([*EVENTS, odd, bare, turned, other, *EVENTS], [odd], [bare], EVENTS[:1]):
        ids = [uuid.uuid4().int for _ in events]
        assert encode_events(events, ids, now) == _library_block(events, ids, now)
        # The ids' column given as its Native data already: the same block.
        texts, column = random_ids(len(events))
        assert encode_events(events, column, now) == _library_block(
            events, [uuid.UUID(t).int for t in texts], now
        )
        written = io.BytesIO()
        assert write_events(written, events, column, now) == len(written.getvalue())
        assert written.getvalue() == encode_events(events, column, now)
    with pytest.raises(ValueError, match="no rows"):
        encode_events([], [], now)
    with pytest.raises(ValueError, match="1 events, 2 ids"):
        encode_events(EVENTS[:1], random_ids(2)[1], now)


async def test_events_written_before_the_doc_column_read_back_the_same(store: LogStore) -> None:
    """Whole events are read from the ``doc`` column. A table made before it existed gets it,
    and its old rows compute it from their columns: they read back exactly as the ingest path's
    own docs do."""
    before = (await store.search(SearchRequest(order="asc"))).items
    await store.query("SELECT 1")  # the client exists
    drop = f"ALTER TABLE {store.table} DROP COLUMN doc"
    await store._run(lambda client: client.command(drop))  # an older table
    await store.start()
    after = (await store.search(SearchRequest(order="asc"))).items
    assert after == before
    assert before[0]["process.pid"] == 4242
    assert before[1]["destination.port"] == 443
    # A row inserted without a doc (an older writer) gets the column's default, too.
    insert = (
        f"INSERT INTO {store.table} (id, ingested_at, timestamp, event_code, process_pid, "  # noqa: S608
        "source, format, raw) VALUES (generateUUIDv4(), now64(3), "
        "'2026-11-20 09:00:00', '4688', 77, 'old', 'json', '{}')"
    )
    await store._run(lambda client: client.command(insert))
    (old,) = (await store.search(SearchRequest(query="source:old"))).items
    assert old["event.code"] == "4688"
    assert old["process.pid"] == 77
    assert old["fields"] == {}


def windows(slices: TimeSlices, counts: list[int], want: int = 101) -> list[Any]:
    """The windows ``slices`` gives when successive slices find ``counts`` rows."""
    out: list[Any] = []
    found = 0
    while (window := slices.next(found, want)) is not None:
        out.append(window)
        found += counts[len(out) - 1] if len(out) <= len(counts) else 0
    return out


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_time_slices_cover_the_window_once_from_the_end_read_first(order: str) -> None:
    start, end = T0, T0 + timedelta(days=30)
    # A term found nowhere: an hour, then four times wider each time, then the rest.
    slices = windows(TimeSlices(start, end, order), [])  # type: ignore[arg-type]
    assert len(slices) == 6  # 1 h, 4 h, 16 h, 64 h, 256 h, the rest
    ordered = slices if order == "asc" else list(reversed(slices))
    assert ordered[0][0] == start
    assert ordered[-1][1] == end
    for (_, hi), (lo, _) in itertools.pairwise(ordered):
        assert hi == lo
    first_lo, first_hi = slices[0]
    assert first_hi - first_lo == timedelta(hours=1)
    assert (first_hi == end) == (order == "desc")
    # Common events: the first hour fills the page.
    assert len(windows(TimeSlices(start, end, order), [101])) == 1  # type: ignore[arg-type]
    # 30 in the first hour: the next slice is sized for the other 71, with the margin.
    lo, hi = windows(TimeSlices(start, end, order), [30, 71])[1]  # type: ignore[arg-type]
    assert hi - lo == timedelta(hours=1) * (71 / 30) * 1.5
    # A rare host over a day: two in the first hour, so the second slice is the rest.
    day = windows(TimeSlices(start, start + timedelta(days=1), order), [2, 5])  # type: ignore[arg-type]
    assert len(day) == 2
    assert windows(TimeSlices(None, None, order), []) == [(None, None)]  # type: ignore[arg-type]
    open_ended = windows(TimeSlices(None, end, "desc"), [])
    assert open_ended[-1][0] is None
    assert len(open_ended) < 10


async def test_pages_run_across_time_slices_in_both_orders(empty_store: LogStore) -> None:
    """Events over six weeks, several at the same millisecond: paging in either order, a few at
    a time, gives every event exactly once, in order, across slice edges."""
    at = [T0 - timedelta(hours=h * h) for h in range(32)]  # ever sparser going back
    events = [
        event(0, **{"event.code": str(n % 3), "host.name": f"h{n}"}) for n in range(len(at) * 2)
    ]
    for n, e in enumerate(events):
        e.timestamp = at[n // 2]  # two events at each instant
    ids = await empty_store.insert(events)
    assert empty_store._lazy  # chDB reads the pages' whole events lazily
    when = {event_id: e.timestamp for e, event_id in zip(events, ids, strict=True)}
    window = {"start": T0 - timedelta(days=60), "end": T0 + timedelta(minutes=1)}
    for order in ("asc", "desc"):
        seen: list[str] = []
        cursor = None
        while True:
            page = await empty_store.search(
                SearchRequest(order=order, limit=7, cursor=cursor, **window)  # type: ignore[arg-type]
            )
            seen += [item["id"] for item in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(ids), order  # each exactly once
        times = [when[event_id] for event_id in seen]
        assert times == sorted(times, reverse=order == "desc"), order


async def test_a_slice_up_to_a_day_is_read_on_every_core_a_wider_one_in_key_order(
    empty_store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bounded slice of at most a day is read whole, split among the engine's threads, and
    sorted after; a wider or open-ended one in key order (it stops at the LIMIT). The page is
    the same either way (the paging test above crosses both kinds)."""
    await empty_store.insert(EVENTS)
    seen: list[dict[str, Any]] = []
    query = empty_store.query

    async def recording(sql: str, parameters: Any = None, settings: Any = None) -> Any:
        if sql.startswith("SELECT `id`"):
            seen.append(dict(settings or {}))
        return await query(sql, parameters, settings)

    monkeypatch.setattr(empty_store, "query", recording)
    month = SearchRequest(start=T0 - timedelta(days=30), end=T0 + timedelta(hours=1), query="zzqq")
    await empty_store.search(month)  # found nowhere: slices of 1, 4, 16, 64, 256 hours, the rest
    assert [s.get("optimize_read_in_order") for s in seen] == [0, 0, 0, None, None, None]
    assert all(s["merge_tree_min_rows_for_concurrent_read"] == 8192 for s in seen)
    seen.clear()
    await empty_store.search(SearchRequest(query="zzqq"))  # open-ended: one read in key order
    assert [s.get("optimize_read_in_order") for s in seen] == [None]


async def test_a_body_larger_than_a_block_is_stored_in_blocks(
    empty_store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rows_module, "BLOCK_ROWS", 2)
    body = "\n".join(
        json.dumps({"message": f"line {n}", "@timestamp": "2026-11-20T08:00:00Z"}) for n in range(5)
    ).encode()
    parsed = rows_module.parse_rows(body, content_type=None, source="s", format=None)
    assert len(parsed.blocks) == 3
    for block in parsed.blocks:
        await empty_store.insert_block(block)
    page = await empty_store.search(SearchRequest(order="asc"))
    assert sorted(item["id"] for item in page.items) == sorted(parsed.ids)
    assert sorted(item["fields"]["message"] for item in page.items) == [
        f"line {n}" for n in range(5)
    ]


@pytest.mark.parametrize("folder", ["plain", "a{b},c"])
async def test_blocks_in_files_are_stored_from_the_files(
    empty_store: LogStore, tmp_path: Path, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of blocks (a body's pieces, each written by a worker) are one insert: read by the
    embedded engine itself where their names can be given to ``file()``, sent as bytes where
    a name would read as a glob."""
    monkeypatch.setattr(rows_module, "BLOCK_ROWS", 2)
    body = "\n".join(
        json.dumps({"message": f"line {n}", "@timestamp": "2026-11-20T08:00:00Z"}) for n in range(5)
    ).encode()
    directory = tmp_path / folder
    directory.mkdir()
    files, ids = [], []
    for n, piece in enumerate((body, body)):
        path = directory / f".blocks-{n}"
        parsed = rows_module.parse_rows(
            piece, content_type=None, source="s", format=None, blocks_to=str(path)
        )
        assert parsed.blocks == []
        assert parsed.written == path.stat().st_size > 0
        files.append(path)
        ids += parsed.ids
    commands: list[str] = []
    original = empty_store._insert

    def watched(client: Any, block: Any) -> None:
        spy = type("Spy", (), {})()
        spy.command = lambda sql: (commands.append(sql), client.command(sql))[1]
        spy.raw_insert = client.raw_insert
        original(spy, block)

    monkeypatch.setattr(empty_store, "_insert", watched)
    await empty_store.insert_block(files)
    assert bool(commands) == (folder == "plain")  # INSERT ... SELECT FROM file(), or bytes sent
    page = await empty_store.search(SearchRequest(order="asc", limit=20))
    assert sorted(item["id"] for item in page.items) == sorted(ids)
    assert sorted(item["fields"]["message"] for item in page.items) == sorted(
        f"line {n}" for n in range(5) for _ in range(2)
    )


async def test_an_insert_does_not_wait_behind_a_long_read(empty_store: LogStore) -> None:
    # A read the engine takes two seconds over (sleeping, not computing), handed to the
    # readers' thread first: the insert goes through a client and thread of its own and is
    # stored while the read still runs (on one client it waited for the read to end).
    slow = asyncio.ensure_future(
        empty_store.query(
            "SELECT sum(sleepEachRow(0.5)) FROM numbers(4)", settings={"max_block_size": 1}
        )
    )
    try:
        await asyncio.sleep(0)  # one turn of the loop: the read's task hands it over
        await empty_store.insert([event(1, **{"host.name": "ws-1"})])
        assert not slow.done()
    finally:
        await slow
    page = await empty_store.search(SearchRequest(limit=10))
    assert [item["host.name"] for item in page.items] == ["ws-1"]


def test_a_server_gets_the_newer_table_settings_it_has() -> None:
    assert usable_settings({name for name, _ in TABLE_SETTINGS}) == TABLE_SETTINGS
    assert usable_settings(set()) == ()
    # A release with serialization_info_version but not its `with_missing_columns` value
    # (which came with skip_empty_columns_on_insert) gets neither.
    older = {"prewarm_mark_cache", "ratio_of_defaults_for_sparse_serialization"}
    assert usable_settings({*older, "serialization_info_version"}) == (
        ("prewarm_mark_cache", "1"),
        ("ratio_of_defaults_for_sparse_serialization", "1"),
    )
    # Forced merges only of whole partitions: without that kind, none.
    assert usable_settings({"min_age_to_force_merge_seconds"}) == ()


async def parts_of(store: LogStore) -> list[tuple[str, int]]:
    """The active parts of the store's table: (part type, rows), oldest first."""
    found = await store.query(
        "SELECT part_type, rows FROM system.parts WHERE database = {db:String} "
        "AND table = 'logs' AND active ORDER BY modification_time, name",
        {"db": store.database},
    )
    return [(kind, rows) for kind, rows in found.result_rows]


async def test_a_small_insert_is_compact_and_a_partition_at_rest_is_merged_into_one_wide_part(
    empty_store: LogStore,
) -> None:
    """An insert under WIDE_PART_ROWS is written Compact (cheap to write, slower to read); the
    merges of a partition that takes no more inserts leave none of it Compact, even where the
    merge selector would leave a small part beside a big one for good."""
    pad = "x" * 600  # 20,000 events of some 1.5 KB: a merge of them is Wide by its bytes too
    big = [event(m % 600, **{"host.name": f"ws-{m}", "note": pad}) for m in range(WIDE_PART_ROWS)]
    await empty_store.insert(big)
    assert await parts_of(empty_store) == [("Wide", WIDE_PART_ROWS)]
    await empty_store.insert([event(m, **{"host.name": "late"}) for m in range(100)])
    assert await parts_of(empty_store) == [("Wide", WIDE_PART_ROWS), ("Compact", 100)]
    # The store's age (FORCED_MERGE_AGE) made short, and the selector's sleeps with it.
    quick = (
        f"ALTER TABLE {empty_store.table} MODIFY SETTING min_age_to_force_merge_seconds = 1, "
        "merge_selecting_sleep_ms = 100, max_merge_selecting_sleep_ms = 500"
    )
    await empty_store._run(lambda client: client.command(quick))
    deadline = asyncio.get_running_loop().time() + 60
    while (parts := await parts_of(empty_store)) != [("Wide", WIDE_PART_ROWS + 100)]:
        assert asyncio.get_running_loop().time() < deadline, parts
        await asyncio.sleep(0.1)  # polling the engine's background merge, not a fixed wait
    total, _ = await empty_store.matching(
        "host_name = 'late'", {}, start=T0, end=T0 + timedelta(days=1), limit=0
    )
    assert total == 100


async def test_a_column_empty_in_a_whole_insert_is_not_written_and_reads_empty(
    empty_store: LogStore,
) -> None:
    without = [event(m, **{"host.name": "ws-1", "event.code": "4624"}) for m in range(3)]
    with_ip = [event(9, **{"host.name": "ws-2", "destination.ip": "10.1.2.3"})]
    await empty_store.insert(without)
    await empty_store.insert(with_ip)
    written = await empty_store.query(
        "SELECT part_name, groupArray(column) FROM system.parts_columns WHERE database = "
        "{db:String} AND table = 'logs' AND active GROUP BY part_name ORDER BY part_name",
        {"db": empty_store.database},
    )
    first, second = (set(columns) for _, columns in written.result_rows)
    assert "destination_ip" not in first
    assert "destination_ip" in second
    assert {"host_name", "event_code", "raw", "x_Image"} <= first  # written, or MATERIALIZED
    page = await empty_store.search(SearchRequest(order="asc", limit=10))
    assert [item.get("destination.ip") for item in page.items] == [None, None, None, "10.1.2.3"]
    assert [item["host.name"] for item in page.items] == ["ws-1"] * 3 + ["ws-2"]
    ips = await empty_store.query(
        "SELECT destination_ip FROM {db:Identifier}.logs ORDER BY timestamp",
        {"db": empty_store.database},
    )
    assert [row[0] for row in ips.result_rows] == ["", "", "", "10.1.2.3"]  # the type's default


def test_a_server_without_the_newer_table_settings_gets_a_table_without_them() -> None:
    assert "prewarm_mark_cache" in create_table_sql("d", "logs", retention_days=0)
    older = create_table_sql("d", "logs", retention_days=0, table_settings=())
    assert "prewarm_mark_cache" not in older
    assert older.rstrip().endswith("fsync_part_directory = 1")


@reads_only
async def test_matching_each_answers_each_condition_as_matching_would(seeded: LogStore) -> None:
    conditions = [
        "process_name = 'powershell.exe'",
        "host_name = 'ws-17'",
        "host_name = 'nowhere'",
        "event_code IN ('1', '3', '22')",
    ]
    window = {"start": T0, "end": T0 + timedelta(hours=1)}
    for limit in (0, 2, 10):
        each = await seeded.matching_each(conditions, **window, limit=limit)
        alone = [await seeded.matching(c, {}, **window, limit=limit) for c in conditions]
        assert [(t, [e["id"] for e in rows]) for t, rows in each] == [
            (t, [e["id"] for e in rows]) for t, rows in alone
        ]
    counts = [t for t, _ in await seeded.matching_each(conditions, **window, limit=0)]
    assert counts == [2, 2, 0, 4]


@reads_only
async def test_matching_each_keeps_to_its_scope_and_window(seeded: LogStore) -> None:
    each = await seeded.matching_each(
        ["host_name = 'ws-17'", "1"],
        scope="event_code = '1'",
        start=T0,
        end=T0 + timedelta(minutes=2),
        limit=10,
    )
    assert [(t, [e["host.name"] for e in rows]) for t, rows in each] == [
        (1, ["ws-17"]),
        (1, ["ws-17"]),
    ]
    assert await seeded.matching_each([], start=T0, end=T0, limit=1) == []


@reads_only
async def test_a_condition_the_engine_refuses_fails_the_shared_scan(seeded: LogStore) -> None:
    with pytest.raises(ClickHouseUnavailable):
        await seeded.matching_each(
            ["host_name = 'ws-17'", "no_such_function(host_name)"],
            start=T0,
            end=T0 + timedelta(hours=1),
            limit=10,
        )
