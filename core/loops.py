"""Background loops: one way to run work every so often until stopped.

A :class:`Periodic` runs its step, waits ``interval`` seconds (or until :meth:`Periodic.wake`
is called) and runs it again. A step that fails is logged with its traceback and the loop goes
on; only :meth:`Periodic.stop` ends it. It is also an async context manager, so a gateway
resource can hold it for exactly as long as the resource lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

Interval = float | Callable[[], float]


class Periodic:
    """Run ``step`` now (or after ``interval`` with ``first_wait``) and then every
    ``interval`` seconds (a number, or a callable read before each wait)."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval: Interval,
        *,
        log: logging.Logger,
        first_wait: bool = False,
    ) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._log = log
        self._first_wait = first_wait
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Run the next step now instead of at the end of the current wait."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the loop and wait for it (a step in flight is cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Periodic:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _seconds(self) -> float:
        interval = self._interval() if callable(self._interval) else self._interval
        return max(0.0, float(interval))

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._seconds()):
                await self._wake.wait()
        self._wake.clear()

    async def _run(self) -> None:
        if self._first_wait:
            await self._wait()
        while True:
            try:
                await self._step()
            except Exception:
                self._log.exception("%s: a step failed; the loop goes on", self.name)
            await self._wait()
