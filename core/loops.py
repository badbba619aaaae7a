"""Background loops: one way to run work every so often until stopped.

A :class:`Periodic` runs its step, waits ``interval`` seconds (or until :meth:`Periodic.wake`
is called) and runs it again. A step that fails is logged with its traceback and the loop goes
on; only :meth:`Periodic.stop` ends it. It is also an async context manager, so a gateway
resource can hold it for exactly as long as the resource lives.

With a :class:`~core.db.leases.Lease`, the step runs only in the replica that holds the loop's
lease (named after the loop): each gateway runs the loop, one of them does the work, and when
that one stops (its lease released) or dies (its lease expired) another takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

from core.db.leases import Lease, hold, release
from core.tasks import cancel_and_wait

Interval = float | Callable[[], float]

STOP_LEASE_SECONDS = 10.0
"""How long stopping waits for a lease call in flight, then for the release: a database that
does not answer within it (its pool drained, its file locked by a stuck writer) does not hold
up the shutdown. A lease left behind runs out by itself and another replica takes over."""


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
        lease: Lease | None = None,
    ) -> None:
        self.name = name
        self.lease = lease
        self.holding = lease is None
        """Whether this replica does the loop's work now (always, without a lease)."""
        self._held_until = 0.0
        """When (monotonic) the lease this replica holds runs out unless renewed."""
        self._next_try = 0.0
        """When (monotonic) a replica without the lease tries to take it again."""
        self._step = step
        self._interval = interval
        self._log = log
        self._first_wait = first_wait
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lease_call: asyncio.Task[bool] | None = None
        """A take or renewal of the lease in flight (see :meth:`_hold`)."""

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
        """Cancel the loop and wait for it (a step in flight is cancelled), then give up its
        lease, so that another replica takes the work over at once."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        call, self._lease_call = self._lease_call, None
        if call is not None:
            # A renewal the cancellation caught in flight ends first: the release comes after.
            try:
                async with asyncio.timeout(STOP_LEASE_SECONDS):
                    self.holding = await asyncio.shield(call)
            except TimeoutError:
                self._log.warning(
                    "%s: its lease call did not end within %g s; the lease runs out by itself",
                    self.name,
                    STOP_LEASE_SECONDS,
                )
                return
            except Exception:  # noqa: S110 - the release below says whether the database answers
                pass
        if self.lease is not None and self.holding:
            self.holding = False
            try:
                async with asyncio.timeout(STOP_LEASE_SECONDS):
                    await release(self.lease.database, self.name, self.lease.holder)
            except Exception:
                self._log.warning("%s: could not give up its lease", self.name, exc_info=True)

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
                if await self._may_run():
                    await self._leased(self._step())
            except Exception:
                self._log.exception("%s: a step failed; the loop goes on", self.name)
            await self._wait()

    async def _hold(self, lease: Lease, ttl: float) -> bool:
        """Take or renew the lease. Not cut off when the loop is stopped meanwhile: a database
        session cancelled mid-statement can leave its connection neither returned nor closed,
        and the release that follows would wait for it; :meth:`stop` waits for this instead."""
        call = asyncio.ensure_future(hold(lease.database, self.name, lease.holder, ttl))
        self._lease_call = call
        try:
            return await asyncio.shield(call)
        finally:
            if call.done():
                self._lease_call = None

    async def _may_run(self) -> bool:
        """Whether this replica runs the next step: it holds (or has just taken) the lease.

        The database is asked only when it must be: a holder renews at half the lease's life,
        another replica tries to take it a quarter of its life apart (so that a loop ticking
        every second does not write every second)."""
        if self.lease is None:
            return True
        ttl = self.lease.ttl(self._seconds())
        now = time.monotonic()
        if self.holding and now < self._held_until - ttl / 2:
            return True
        if not self.holding and now < self._next_try:
            return False
        was = self.holding
        self.holding = await self._hold(self.lease, ttl)
        if self.holding:
            self._held_until = now + ttl
        else:
            self._next_try = now + self.lease.retry(self._seconds())
        if self.holding != was:
            self._log.info(
                "%s: %s its lease (%s)",
                self.name,
                "took" if self.holding else "lost",
                self.lease.holder,
            )
        return self.holding

    async def _leased(self, step: Awaitable[object]) -> None:
        """Run ``step``, renewing the lease while it runs (a step may outlast the lease)."""
        if self.lease is None:
            await step
            return
        lease = self.lease
        ttl = lease.ttl(self._seconds())

        async def renew() -> None:
            while True:
                await asyncio.sleep(ttl / 3)
                try:
                    renewed_at = time.monotonic()
                    self.holding = await self._hold(lease, ttl)
                    if self.holding:
                        self._held_until = renewed_at + ttl
                except Exception:
                    self._log.warning("%s: could not renew its lease", self.name, exc_info=True)

        renewal = asyncio.create_task(renew(), name=f"{self.name}-lease")
        try:
            await step
        finally:
            await cancel_and_wait(renewal)
