"""Ingest through worker processes: the same stored events as parsing on a thread, a worker
killed mid-body costing nothing, and the workers gone when the gateway stops."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.logstore.store import SearchRequest
from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import INGEST
from gateway.siem import parsing
from gateway.siem.parsing import BodyInfo, IngestParser, auto_workers, ingest_body
from tests.conftest import Gateway, start_gateway
from tests.core.logstore.conftest import open_store
from tests.gateway.siem.test_siem import EVENTS, ingest, ndjson
from tests.waiting import until

BODY = ndjson(EVENTS) + b"\n{not json\n"
NDJSON_BODY = BodyInfo(content_type="application/x-ndjson", source="s")
COMPARED = ("timestamp", "host.name", "process.command_line", "process.pid", "fields", "raw")


async def stored(gateway: Gateway, headers: dict[str, str], source: str) -> list[dict[str, Any]]:
    response = await gateway.client.get(
        "/api/v1/siem/logs",
        headers=headers,
        params={"q": f"source:{source}", "sort": "timestamp", "limit": "100"},
    )
    assert response.status == 200
    items = (await response.json())["items"]
    return [{k: item[k] for k in COMPARED} for item in items]


def children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


async def test_workers_store_what_a_thread_stores_and_stop_with_the_gateway(
    settings: Settings,
) -> None:
    before = children()
    client = await start_gateway(settings.model_copy(update={"ingest_workers": 2}))
    try:
        gateway = Gateway(client)
        assert gateway.app[INGEST].workers == 2
        analyst = await gateway.user(Role.ANALYST, "ana")
        bodies = [BODY] * 4  # in flight together: two workers parse at once
        results = await asyncio.gather(
            *(ingest(gateway, analyst, b, source=f"w{i}") for i, b in enumerate(bodies))
        )
        for status, result in results:
            assert status == 200, result
            assert (result["accepted"], result["rejected"]) == (4, 1)
            assert result["rejections"][0]["line"] == 5
            assert result["formats"] == {"windows": 4}
        workers = children() - before
        assert len(workers) == 2  # started with the gateway
        # The same body parsed on a thread stores the same events.
        gateway.app[INGEST].workers = 0
        status, result = await ingest(gateway, analyst, BODY, source="thread")
        assert status == 200, result
        on_thread = await stored(gateway, analyst, "thread")
        assert len(on_thread) == 4
        for i in range(len(bodies)):
            assert await stored(gateway, analyst, f"w{i}") == on_thread
    finally:
        await client.close()
    assert not (children() - before), "ingest workers outlived the gateway"


async def test_a_killed_worker_costs_no_event() -> None:
    parser = IngestParser(1)
    try:
        first = await parser.parse(BODY, NDJSON_BODY)
        assert len(first.ids) == 4
        assert len(first.blocks) == 1
        (worker,) = multiprocessing.active_children()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        again = await parser.parse(BODY, NDJSON_BODY)
        assert len(again.ids) == 4
        assert [r.reason for r in again.rejected] == [r.reason for r in first.rejected]
        after = await parser.parse(  # a fresh pool serves the next body
            BODY, NDJSON_BODY
        )
        assert len(after.ids) == 4
    finally:
        await parser.close()


async def test_pieces_parsed_by_workers_are_stored_from_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body cut into pieces: each worker writes its piece's blocks to a file of the spool,
    the store inserts them all at once, and the spool is empty afterwards; what is stored is
    what parsing on a thread stores."""
    monkeypatch.setattr(parsing, "PIECE_BYTES", 2048)
    body = BODY * 6  # 30 lines, a rejected one in each fifth: many pieces
    spool = tmp_path / "spool"

    async def chunks() -> Any:
        for offset in range(0, len(body), 1000):
            yield body[offset : offset + 1000]

    async with open_store() as store:
        payloads: list[Any] = []
        insert = store.insert_block

        async def watched(block: Any) -> None:
            payloads.append(block)
            await insert(block)

        monkeypatch.setattr(store, "insert_block", watched)
        stored_by: dict[int, list[tuple[str, str]]] = {}
        for workers in (2, 0):
            parser = IngestParser(workers)
            info = BodyInfo(content_type="application/x-ndjson", source=f"p{workers}")
            try:
                result = await ingest_body(
                    chunks(), parser=parser, store=store, spool=spool, info=info
                )
            finally:
                await parser.close()
            assert result.largest_piece <= 2048
            assert (result.accepted, result.rejected) == (24, 6)
            assert [r.line for r in result.rejections] == [5, 10, 15, 20, 25, 30]
            assert not list(spool.iterdir())
            page = await store.search(
                SearchRequest(query=f"source:p{workers}", order="asc", limit=100)
            )
            stored_by[workers] = sorted((e["timestamp"], e["raw"]) for e in page.items)
        assert len(stored_by[2]) == 24
        assert stored_by[2] == stored_by[0]
        from_workers, from_thread = payloads
        assert isinstance(from_workers, list)  # the pieces' files, one insert
        assert len(from_workers) > 3
        assert isinstance(from_thread, bytes)


async def test_a_worker_parses_with_the_collector_off_and_turns_it_on_after() -> None:
    workers, thread = IngestParser(1), IngestParser(0)
    try:
        assert await workers._call(gc.isenabled) is False
        # The worker's collector is on again for whatever it runs next, and a parse on a
        # thread of the gateway leaves the gateway's collector alone.
        assert await asyncio.wrap_future(workers._executor().submit(gc.isenabled)) is True
        assert await thread._call(gc.isenabled) is True
        assert gc.isenabled()
    finally:
        await workers.close()


def test_auto_workers_follow_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, expected in ((1, 0), (2, 2), (3, 3), (16, 4)):
        monkeypatch.setattr(os, "process_cpu_count", lambda c=cores: c)
        assert auto_workers() == expected
        assert IngestParser(None).workers == expected
    assert IngestParser(0).workers == 0


WORKER_HOST = """
import asyncio, multiprocessing, time
from gateway.siem.parsing import IngestParser

async def main():
    parser = IngestParser(2)
    parser.start()
    while len(multiprocessing.active_children()) < 2:
        await asyncio.sleep(0.05)
    print(*(p.pid for p in multiprocessing.active_children()), flush=True)
    time.sleep(120)  # a gateway busy until the test kills it

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_workers_end_with_a_gateway_killed_outright() -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", WORKER_HOST],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout is not None
        workers = [int(pid) for pid in host.stdout.readline().split()]
        assert len(workers) == 2
        assert all(alive(pid) for pid in workers)
        host.kill()
        host.wait(10)
        until(
            lambda: not any(alive(pid) for pid in workers),
            interval=0.05,
            what="ingest workers ended with the killed gateway",
        )
        assert host.stdout.read() == ""  # the pipe closed: nobody holds it open
    finally:
        if host.poll() is None:
            host.kill()
        host.wait()
        if host.stdout is not None:
            host.stdout.close()
