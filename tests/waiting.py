"""Waiting in tests for something to become true, never for a fixed time.

A test that sleeps "long enough" for a server to subscribe, a task to start or a record to be
written is slow on a fast machine and flaky on a loaded one. These helpers poll a condition
instead: they return as soon as it holds, and fail the test, naming what did not happen and what
was last seen, when the deadline passes first.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import overload

DEADLINE_SECONDS = 15.0
"""Long enough for a loaded two-core machine; a condition that holds returns at once anyway."""
INTERVAL_SECONDS = 0.01


class NotYet(AssertionError):
    """The condition did not hold before the deadline."""


def _failure(what: str, within: float, last: object) -> NotYet:
    return NotYet(f"{what}: still not true after {within:g} s (last: {last!r})")


def _name(predicate: Callable[[], object]) -> str:
    return getattr(predicate, "__qualname__", repr(predicate))


@overload
async def eventually[T](
    predicate: Callable[[], Awaitable[T]],
    *,
    within: float = ...,
    interval: float = ...,
    what: str | None = ...,
) -> T: ...
@overload
async def eventually[T](
    predicate: Callable[[], T],
    *,
    within: float = ...,
    interval: float = ...,
    what: str | None = ...,
) -> T: ...
async def eventually(
    predicate: Callable[[], object],
    *,
    within: float = DEADLINE_SECONDS,
    interval: float = INTERVAL_SECONDS,
    what: str | None = None,
) -> object:
    """Call ``predicate`` (plain or async) every ``interval`` seconds until it returns a truthy
    value, and return that value; raise :class:`NotYet` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise _failure(what or _name(predicate), within, value)
        await asyncio.sleep(interval)


def until[T](
    predicate: Callable[[], T],
    *,
    within: float = DEADLINE_SECONDS,
    interval: float = INTERVAL_SECONDS,
    what: str | None = None,
) -> T:
    """:func:`eventually` for code outside an event loop (other processes, threads)."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(what or _name(predicate), within, value)
        time.sleep(interval)
