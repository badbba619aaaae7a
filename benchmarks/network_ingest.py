"""Network telemetry ingest against SIEM ingest and raw chDB inserts, in one process, one run.

Everything runs in this process on a fresh chDB data path (no network at all): the ingest
parser with its worker processes (``--workers``, default one per core as the gateway has it)
and the log store, exactly what the gateway's routes hand a body to. The bodies are NDJSON of
flow telemetry, ``--batch`` records each, half goflow2 NetFlow v9 records and half Zeek
conn.log lines, from 2,000 hosts to 200 servers; every body is new (its flows start later
than the previous body's), so the telemetry path looks its records up in the store and finds
none, its common case. In alternating rounds on fresh bodies (each path first in turn):

- telemetry: :func:`gateway.network.telemetry.ingest_telemetry` (telemetry formats only,
  content ids, the store look-up of each body's ids, the insert);
- siem: :func:`gateway.siem.parsing.ingest_body` of the same kind of body (random ids);
- raw: the same body parsed and encoded beforehand (not timed), then only
  ``LogStore.insert_block`` of its Native block: what the engine takes to store the rows,
  durably (the floor both paths pay).

Then each telemetry body of the last round is sent again (every record a duplicate): the cost
of a re-send, which parses the body and looks it up but stores nothing.

Reported: events per second of each (median of rounds) and the ratios telemetry/siem,
siem/raw and telemetry/raw. Target: telemetry at least 90% of siem (it keeps the SIEM ingest
ratio against raw).

    .venv/bin/python -m benchmarks.network_ingest --batch 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from core.logstore.store import LogStore
from core.settings import Settings
from gateway.network.configuration import TelemetrySource
from gateway.network.telemetry import ingest_telemetry
from gateway.siem.parsing import BodyInfo, IngestParser, ingest_body, spool_dir
from tools.logs.rows import parse_rows

TARGET_RATIO: Final = 0.9
START_NS: Final = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
CHUNK: Final = 1 << 16


def flow_body(batch: int, size: int) -> bytes:
    """``size`` NDJSON telemetry records, the ``batch``-th body (later flows than the last)."""
    lines = []
    for i in range(size):
        n = batch * size + i
        start = START_NS + n * 5_000_000
        client = f"10.{(n // 250) % 8}.{n % 250}.{(n * 7) % 250 + 1}"
        server = f"172.16.{n % 200 // 250}.{n % 200 + 1}"
        port = (443, 53, 22, 80, 3389)[n % 5]
        if n % 2:
            record: dict[str, Any] = {
                "type": "NETFLOW_V9",
                "time_received_ns": start + 60_000_000_000,
                "sequence_num": n,
                "sampling_rate": 1,
                "sampler_address": f"192.168.255.{n % 4 + 1}",
                "time_flow_start_ns": start,
                "time_flow_end_ns": start + (n % 997) * 1_000_000,
                "bytes": 200 + n % 50_000,
                "packets": 2 + n % 40,
                "src_addr": client,
                "dst_addr": server,
                "etype": "IPv4",
                "proto": "TCP" if port != 53 else "UDP",
                "src_port": 1024 + n % 60_000,
                "dst_port": port,
                "in_if": 1,
                "out_if": 2,
            }
        else:
            record = {
                "ts": start / 1e9,
                "uid": f"C{n:017d}",
                "id.orig_h": client,
                "id.orig_p": 1024 + n % 60_000,
                "id.resp_h": server,
                "id.resp_p": port,
                "proto": "udp" if port == 53 else "tcp",
                "service": {443: "ssl", 53: "dns", 22: "ssh", 80: "http", 3389: "rdp"}[port],
                "duration": (n % 997) / 1000,
                "orig_bytes": 100 + n % 20_000,
                "resp_bytes": 300 + n % 90_000,
                "conn_state": "SF",
                "missed_bytes": 0,
                "history": "ShADadfF",
                "orig_pkts": 3 + n % 30,
                "orig_ip_bytes": 200 + n % 20_000,
                "resp_pkts": 4 + n % 60,
                "resp_ip_bytes": 500 + n % 90_000,
                "_system_name": "zeek-1",
            }
        lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


async def chunks_of(body: bytes) -> AsyncIterator[bytes]:
    for offset in range(0, len(body), CHUNK):
        yield body[offset : offset + CHUNK]


async def timed(call: Callable[[], Coroutine[Any, Any, int]]) -> tuple[float, int]:
    started = time.perf_counter()
    stored = await call()
    return time.perf_counter() - started, stored


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp / "data", chdb_path=tmp / "chdb", clickhouse_database="bench")
    store = LogStore.from_settings(settings)
    await store.start()
    parser = IngestParser(args.workers)
    parser.start()
    spool = spool_dir(tmp)
    sources = list(TelemetrySource)
    info = BodyInfo(content_type="application/x-ndjson")
    rates: dict[str, list[float]] = {"telemetry": [], "siem": [], "raw": []}
    batch = 0
    last_telemetry: list[bytes] = []
    try:
        # Warm the workers, both paths and the table (not counted).
        await ingest_body(
            chunks_of(flow_body(1_000_000, 100)), parser=parser, store=store, spool=spool, info=info
        )
        await ingest_telemetry(
            chunks_of(flow_body(1_000_001, 100)),
            parser=parser,
            store=store,
            spool=spool,
            sources=sources,
            content_type="application/x-ndjson",
        )
        for round_index in range(args.rounds):
            last_telemetry = []
            counts = dict.fromkeys(rates, 0.0)
            seconds = dict.fromkeys(rates, 0.0)
            order = ("telemetry", "siem", "raw")
            for turn in range(args.round_batches):
                shift = (round_index + turn) % 3  # each path first in turn (load drifts)
                for name in order[shift:] + order[:shift]:
                    data = flow_body(batch, args.batch)
                    batch += 1
                    if name == "telemetry":
                        last_telemetry.append(data)

                        async def telemetry(data: bytes = data) -> int:
                            result = await ingest_telemetry(
                                chunks_of(data),
                                parser=parser,
                                store=store,
                                spool=spool,
                                sources=sources,
                                content_type="application/x-ndjson",
                            )
                            return result.accepted

                        took, stored = await timed(telemetry)
                    elif name == "siem":

                        async def siem(data: bytes = data) -> int:
                            result = await ingest_body(
                                chunks_of(data), parser=parser, store=store, spool=spool, info=info
                            )
                            return result.accepted

                        took, stored = await timed(siem)
                    else:
                        parsed = parse_rows(
                            data, content_type="application/x-ndjson", source=None, format=None
                        )
                        block = b"".join(parsed.blocks)

                        async def raw(block: bytes = block, n: int = len(parsed.ids)) -> int:
                            await store.insert_block(block)
                            return n

                        took, stored = await timed(raw)
                    if stored != args.batch:
                        raise RuntimeError(f"{name} stored {stored} of {args.batch} records")
                    counts[name] += stored
                    seconds[name] += took
            for name in rates:
                rates[name].append(counts[name] / seconds[name])
            print(
                f"round {round_index + 1}: "
                + ", ".join(f"{name} {rates[name][-1]:,.0f} ev/s" for name in rates),
                file=sys.stderr,
            )
        resend_seconds = 0.0
        resent = 0
        for data in last_telemetry:
            started = time.perf_counter()
            result = await ingest_telemetry(
                chunks_of(data),
                parser=parser,
                store=store,
                spool=spool,
                sources=sources,
                content_type="application/x-ndjson",
            )
            resend_seconds += time.perf_counter() - started
            if result.accepted or result.duplicates != args.batch:
                raise RuntimeError(f"a re-sent body stored {result.accepted} records")
            resent += result.duplicates
        stored_rows = await store.query(f"SELECT count() FROM {store.table}")  # noqa: S608
    finally:
        await parser.close()
        await store.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "batch": args.batch,
        "rounds": args.rounds,
        "round_batches": args.round_batches,
        "workers": parser.workers,
        "events_per_second": {name: round(value) for name, value in median.items()},
        "rounds_events_per_second": {
            name: [round(v) for v in values] for name, values in rates.items()
        },
        "resend_events_per_second": round(resent / resend_seconds),
        "ratios": {
            "telemetry_over_siem": round(median["telemetry"] / median["siem"], 3),
            "siem_over_raw": round(median["siem"] / median["raw"], 3),
            "telemetry_over_raw": round(median["telemetry"] / median["raw"], 3),
        },
        "rows_in_store": int(stored_rows.result_rows[0][0]),
        "target_telemetry_over_siem": TARGET_RATIO,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20_000, help="records per body")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--round-batches", type=int, default=2, help="bodies of each per round")
    parser.add_argument(
        "--workers", type=int, default=None, help="ingest workers (default: one per core, max 4)"
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if min(args.batch, args.rounds, args.round_batches) < 1:
        parser.error("--batch and the rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="aurora-bench-") as tmp:
        report = asyncio.run(run(args, Path(tmp)))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    ratio = report["ratios"]["telemetry_over_siem"]
    print(
        f"telemetry ingest at {ratio:.0%} of SIEM ingest (target {TARGET_RATIO:.0%})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
