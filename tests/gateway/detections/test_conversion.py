"""The Sigma converter's worker processes: a conversion past its time budget is stopped (its
worker killed) and answered AURORA-4222 naming the budget; past the queue, AURORA-5030 with
Retry-After; a worker that dies is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from core.errors import AuroraError, ServiceUnavailable, SigmaValidationFailed
from gateway.detections.conversion import SigmaConverter

RULE = """
title: cmd
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\\\cmd.exe'
  condition: selection
"""
SLOW_RULE = (
    "title: many values\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n"
    "  condition: selection\n"
    "  selection:\n"
    "    CommandLine|contains|all:\n" + "".join(f"      - -flag{n:06d}\n" for n in range(60_000))
)
"""A valid rule whose conversion takes seconds (some 60 us a value), far past the budget of
half a second given below, while :data:`RULE` takes milliseconds."""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def converter() -> AsyncIterator[SigmaConverter]:
    converter = SigmaConverter(workers=1, queue=1)
    try:
        yield converter
    finally:
        await converter.close()


async def test_a_conversion_past_its_budget_is_stopped() -> None:
    converter = SigmaConverter(workers=1, queue=0, budget_seconds=0.5)
    try:
        await budget_stops_the_work(converter)
    finally:
        await converter.close()


async def budget_stops_the_work(converter: SigmaConverter) -> None:
    assert converter.processes == ()  # no worker until one is needed
    assert "endsWith" in (await converter.convert(RULE)).condition
    (worker,) = converter.processes
    with pytest.raises(SigmaValidationFailed) as caught:
        await converter.convert(SLOW_RULE)
    assert (caught.value.code, caught.value.status) == ("AURORA-4222", 422)
    assert caught.value.detail["budget_seconds"] == 0.5
    assert "longer than 0.5 s, the time budget" in caught.value.detail["errors"][0]["message"]
    # the work stopped with its worker; the next conversion gets a fresh one
    assert not alive(worker)
    assert converter.processes == ()
    assert "endsWith" in (await converter.convert(RULE)).condition
    assert converter.processes != (worker,)


async def test_past_the_queue_a_conversion_is_refused_with_retry_after(
    converter: SigmaConverter,
) -> None:
    # One running, one waiting: the third is refused at once, before any worker is free.
    results = await asyncio.gather(
        *(converter.convert(RULE) for _ in range(3)), return_exceptions=True
    )
    refused = results[2]
    assert isinstance(refused, ServiceUnavailable)
    assert (refused.code, refused.status) == ("AURORA-5030", 503)
    assert refused.headers == {"Retry-After": "10"}  # the budget: at most that to a free slot
    assert refused.detail["max_running"] == 1
    assert refused.detail["max_waiting"] == 1
    assert all(not isinstance(r, BaseException) for r in results[:2])


async def test_invalid_rules_answer_pysigmas_errors_from_the_worker(
    converter: SigmaConverter,
) -> None:
    with pytest.raises(SigmaValidationFailed) as caught:
        await converter.convert("title: t\ndetection: {sel: {A: 1}, condition: nope}\n")
    assert caught.value.code == "AURORA-4222"
    assert caught.value.detail["errors"]
    assert len(converter.processes) == 1  # a refusal costs no worker


async def test_a_worker_that_died_is_replaced(converter: SigmaConverter) -> None:
    await converter.convert(RULE)
    (worker,) = converter.processes
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(AuroraError) as caught:
        await converter.convert(RULE)
    assert (caught.value.code, caught.value.status) == ("AURORA-5030", 503)
    assert "endsWith" in (await converter.convert(RULE)).condition
    assert converter.processes != (worker,)


async def test_closing_stops_every_worker() -> None:
    converter = SigmaConverter(workers=2, queue=0)
    await asyncio.gather(converter.convert(RULE), converter.convert(RULE))
    workers = converter.processes
    assert len(workers) == 2
    await converter.close()
    assert not any(alive(pid) for pid in workers)
