"""Stopping a task: its cancellation is its normal end, its error is raised, and a caller
cancelled while it waits stays cancelled (a stop path that swallowed it kept a detection loop
running past its gateway's stop)."""

from __future__ import annotations

import asyncio

import pytest

from core.tasks import cancel_and_wait


async def test_a_task_is_cancelled_and_awaited() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(forever())
    await started.wait()
    await cancel_and_wait(task)
    assert task.cancelled()
    await cancel_and_wait(None)  # nothing to stop
    await cancel_and_wait(task)  # already ended


async def test_an_error_the_task_ended_with_is_raised() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(fails())
    await asyncio.wait([task])
    with pytest.raises(ValueError, match="broken"):
        await cancel_and_wait(task)


async def test_a_caller_cancelled_while_it_waits_stays_cancelled() -> None:
    """The task takes a while to end once cancelled; the caller waiting for it is cancelled
    meanwhile: the caller ends cancelled instead of going on."""
    cleaning = asyncio.Event()
    may_end = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await may_end.wait()

    inner = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    went_on = False

    async def stopper() -> None:
        nonlocal went_on
        await cancel_and_wait(inner)
        went_on = True

    outer = asyncio.create_task(stopper())
    await cleaning.wait()  # the stopper waits for the inner task's clean-up
    outer.cancel()
    await asyncio.wait([outer])
    assert outer.cancelled()
    assert not went_on
    may_end.set()
    await asyncio.wait([inner])
    assert inner.cancelled()
