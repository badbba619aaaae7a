"""The gateway's resources and background loops, each one entry of the app's ``cleanup_ctx``.

Each resource is opened by an async context manager and published under its app key; aiohttp
enters them in order and, when one fails to start, exits the ones already started in reverse
order, so a failed start leaves nothing running. A loop is a resource too
(:func:`background`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from core.loops import Interval, Periodic

_log = logging.getLogger("aurora.gateway")

CleanupContext = Callable[[web.Application], AbstractAsyncContextManager[None]]


def resource[T](
    key: web.AppKey[T], opener: Callable[[web.Application], AbstractAsyncContextManager[T]]
) -> CleanupContext:
    """A ``cleanup_ctx`` entry that opens ``opener(app)`` and publishes what it yields as
    ``app[key]`` for as long as the app runs."""

    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with opener(app) as value:
            app[key] = value
            yield

    ctx.__qualname__ = ctx.__name__ = f"resource[{key!r}]"
    return ctx


def step(
    enter: Callable[[web.Application], Awaitable[object]],
) -> CleanupContext:
    """A ``cleanup_ctx`` entry for start-up work with nothing to close (a check, a
    migration of data, loading state)."""

    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await enter(app)
        yield

    ctx.__qualname__ = ctx.__name__ = f"step[{getattr(enter, '__name__', 'start')}]"
    return ctx


def background(
    name: str,
    build: Callable[[web.Application], Callable[[], Awaitable[object]]],
    interval: Callable[[web.Application], Interval],
    *,
    log: logging.Logger,
    first_wait: bool = False,
) -> CleanupContext:
    """A ``cleanup_ctx`` entry running ``build(app)`` (the step) every ``interval(app)``
    seconds from start-up to cleanup (see :class:`core.loops.Periodic`)."""

    @contextlib.asynccontextmanager
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with Periodic(name, build(app), interval(app), log=log, first_wait=first_wait):
            yield

    ctx.__qualname__ = ctx.__name__ = f"background[{name}]"
    return ctx
