"""The gateway's resources start in order and stop in reverse, and a failed start leaves
nothing running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from core.logstore.store import LogStore
from core.loops import Periodic
from core.settings import Settings
from gateway import app as gateway_app
from gateway.app import create_app
from gateway.detections.conversion import SigmaConverter
from gateway.fleet.service import ToolCallRecorder
from gateway.lifecycle import background, resource, step
from gateway.server import GatewayRunner
from gateway.siem.parsing import IngestParser

log = logging.getLogger("tests.lifecycle")
ONE: web.AppKey[str] = web.AppKey("one")
TWO: web.AppKey[str] = web.AppKey("two")


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_a_failed_start_closes_what_started_in_reverse(settings: Settings) -> None:
    journal: list[str] = []
    steps = asyncio.Event()

    def opener(name: str) -> Any:
        @contextlib.asynccontextmanager
        async def open_(app: web.Application) -> AsyncIterator[str]:
            journal.append(f"open {name}")
            try:
                yield name
            finally:
                journal.append(f"close {name}")

        return open_

    async def loaded(app: web.Application) -> None:
        journal.append(f"step sees {app[ONE]}")

    def beat(app: web.Application) -> Any:
        async def once() -> None:
            steps.set()

        return once

    async def broken(app: web.Application) -> None:
        await steps.wait()  # the loop has run once: it is started
        raise RuntimeError("the third resource cannot start")

    before = _others()
    app = web.Application()
    app.cleanup_ctx.extend(
        [
            resource(ONE, opener("one")),
            step(loaded),
            background("beat", beat, lambda app: 3600.0, log=log),
            resource(TWO, opener("two")),
            step(broken),
        ]
    )
    runner = GatewayRunner(app, settings)
    with pytest.raises(RuntimeError, match="cannot start"):
        await runner.setup()
    assert journal == [
        "open one",
        "step sees one",
        "open two",
        "close two",
        "close one",
    ]
    assert _others() == before


async def test_the_gateway_stops_every_started_resource_when_a_later_one_fails(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The investigation runner starts last: when it cannot, the scheduler, the recorder,
    the loops, the ingest workers, the stores and the database are closed again."""

    def no_checkpoints(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("checkpoints unavailable")

    monkeypatch.setattr(gateway_app, "open_checkpointer", no_checkpoints)
    closed: list[str] = []
    for cls, method in (
        (IngestParser, "close"),
        (SigmaConverter, "close"),
        (LogStore, "close"),
        (ToolCallRecorder, "close"),
    ):
        original = getattr(cls, method)

        async def wrapped(self: Any, *a: Any, _o: Any = original, _n: str = cls.__name__) -> Any:
            closed.append(_n)
            return await _o(self, *a)

        monkeypatch.setattr(cls, method, wrapped)
    before = _others()
    runner = GatewayRunner(create_app(settings), settings)
    with pytest.raises(RuntimeError, match="checkpoints unavailable"):
        await runner.setup()
    assert closed == ["SigmaConverter", "IngestParser", "LogStore", "ToolCallRecorder"]
    assert _others() == before  # no scheduler, prober, refresher or writer left running


async def test_periodic_logs_a_failing_step_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    third = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first step fails")
        if calls == 3:
            third.set()

    loop = Periodic("flaky", flaky, 0.0, log=log)
    async with loop:
        async with asyncio.timeout(5):
            await third.wait()
    assert not loop.running
    failure = [r for r in caplog.records if r.name == log.name]
    assert failure
    assert failure[0].exc_info is not None
    assert "first step fails" in str(failure[0].exc_info[1])


async def test_periodic_wakes_early() -> None:
    ran = asyncio.Event()

    async def once() -> None:
        ran.set()

    loop = Periodic("sleepy", once, 3600.0, log=log, first_wait=True)
    loop.start()
    try:
        await asyncio.sleep(0)
        assert not ran.is_set()
        loop.wake()
        async with asyncio.timeout(5):
            await ran.wait()
    finally:
        await loop.stop()
