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
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Final

from gateway.supervisor import die_with_parent
from tools.logs.rows import ParsedRows, parse_rows

log = logging.getLogger("aurora.siem")

MAX_AUTO_WORKERS: Final = 4


def _worker_started(parent: int) -> None:
    """In each worker: end with the gateway even when it is killed outright, and leave Ctrl-C
    to the gateway (which stops the workers itself)."""
    die_with_parent()
    if os.getppid() != parent:  # the gateway died before the line above took effect
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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

    def start(self) -> None:
        """Start the workers now, in the background, so that the first bodies do not wait for
        them to spawn and import the parsers."""
        if self.workers > 0:
            pool = self._executor()
            for _ in range(self.workers):
                pool.submit(os.getpid)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def parse(
        self,
        body: bytes,
        *,
        content_type: str | None,
        source: str | None,
        format: str | None,
        filename: str | None,
    ) -> ParsedRows:
        call = partial(
            parse_rows,
            body,
            content_type=content_type,
            source=source,
            format=format,
            filename=filename,
        )
        if self.workers <= 0:
            return await asyncio.to_thread(call)
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        except BrokenProcessPool:
            log.warning("an ingest worker died; this body is parsed on a thread, the pool renewed")
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            return await asyncio.to_thread(call)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
