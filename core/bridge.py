"""Events across gateway replicas, through PostgreSQL.

Every event a replica publishes on its own bus (:class:`core.events.EventBus`) is also written
to the ``bus_events`` table and announced with ``NOTIFY``; every replica ``LISTEN``s, reads the
rows it has not seen, in id order, and delivers those of the other replicas to its own
subscribers, marked with the replica they came from (``Event.origin``). So a WebSocket client
connected to any replica sees the alerts, thoughts, receipts, tool calls and approvals of all of
them, and an approval decided on one replica wakes the investigation waiting on another.

Why PostgreSQL: it is the state store every replica already shares, so no broker is added; a
notification is only a wake-up, and the table is the log: a replica that missed notifications
(its listening connection dropped) reads on from its cursor, so delivery is at least once, and a
subscriber that falls behind gets its :class:`~core.events.Gap` notice as on one replica. Ids
are taken in insert order but committed in any order: a replica does not step past a missing
id until it has waited :data:`HOLE_SECONDS` for it (a rolled back insert leaves one for good).

Consumers that act on events (automation rules) act on their own replica's events only, so
that an event fires its rule once however many replicas hear it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import JSON, BigInteger, Integer, String, delete, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow
from core.db.engine import Database
from core.events import Event, EventBus

log = logging.getLogger("aurora.bridge")

CHANNEL: Final = "aurora_events"
HOLE_SECONDS: Final = 5.0
POLL_SECONDS: Final = 2.0
"""How often a replica reads the table when no notification came (a lost listener)."""
BATCH: Final = 500
OUTBOX: Final = 10_000
RETENTION_SECONDS: Final = 3600.0


class BusEvent(Base):
    """One published event, kept for the replicas to read (an hour by default)."""

    __tablename__ = "bus_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    topic: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[str] = mapped_column(String(40))
    origin: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class BusBridge:
    """The bridge of one replica's bus; ``async with`` it for as long as the gateway runs."""

    def __init__(
        self,
        bus: EventBus,
        database: Database,
        *,
        url: str,
        origin: str,
        poll_seconds: float = POLL_SECONDS,
        retention_seconds: float = RETENTION_SECONDS,
    ) -> None:
        self.bus = bus
        self.database = database
        self.origin = origin
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._poll = poll_seconds
        self._retention = retention_seconds
        self._outbox: asyncio.Queue[Event] = asyncio.Queue(OUTBOX)
        self._wake = asyncio.Event()
        self._cursor = 0
        self._seen: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Any = None
        self.sent = 0
        self.received = 0
        self.lost = 0

    async def __aenter__(self) -> BusBridge:
        async with self.database.session() as db:
            self._cursor = int(
                await db.scalar(select(func.coalesce(func.max(BusEvent.id), 0))) or 0
            )
        self.bus.tap(self._outgoing)
        self._tasks = [
            asyncio.create_task(self._write(), name="bridge-writer"),
            asyncio.create_task(self._read(), name="bridge-reader"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.bus.untap(self._outgoing)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._unlisten()

    # -- out ------------------------------------------------------------------------------

    def _outgoing(self, event: Event) -> None:
        if event.origin is not None:
            return  # heard from another replica: not sent back
        try:
            self._outbox.put_nowait(event)
        except asyncio.QueueFull:
            self.lost += 1  # never reaches the other replicas: counted, not hidden

    async def _write(self) -> None:
        while True:
            first = await self._outbox.get()
            batch = [first]
            while not self._outbox.empty() and len(batch) < BATCH:
                batch.append(self._outbox.get_nowait())
            try:
                await self._insert(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.lost += len(batch)
                log.exception("could not share %d event(s) with the other replicas", len(batch))

    async def _insert(self, batch: list[Event]) -> None:
        async with self.database.session() as db:
            await db.execute(
                insert(BusEvent),
                [
                    {"topic": e.topic, "payload": e.payload, "at": e.at, "origin": self.origin}
                    for e in batch
                ],
            )
            await db.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
            await db.commit()
        self.sent += len(batch)

    async def _flush(self) -> None:
        batch = []
        while not self._outbox.empty():
            batch.append(self._outbox.get_nowait())
        if batch:
            await self._insert(batch)

    # -- in -------------------------------------------------------------------------------

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # the postgres extra; no stubs

        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(CHANNEL, lambda *_: self._wake.set())

    async def _unlisten(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def _read(self) -> None:
        last_prune = 0.0
        while True:
            try:
                await self._listen()
            except Exception:
                log.warning("cannot listen for the other replicas' events; polling", exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while await self._read_batch() == BATCH:
                    pass
                if time.monotonic() - last_prune > 60:
                    last_prune = time.monotonic()
                    await self._prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the other replicas' events failed; trying again")

    async def _read_batch(self) -> int:
        async with self.database.session() as db:
            rows = (
                await db.execute(
                    select(
                        BusEvent.id, BusEvent.topic, BusEvent.payload, BusEvent.at, BusEvent.origin
                    )
                    .where(BusEvent.id > self._cursor)
                    .order_by(BusEvent.id)
                    .limit(BATCH)
                )
            ).all()
        now = time.monotonic()
        for ident, topic, payload, at, origin in rows:
            if ident in self._seen:
                continue
            self._seen[int(ident)] = now
            if origin != self.origin:
                self.received += 1
                self.bus.deliver(Event(topic, dict(payload), at, origin=origin))
        self._advance(now)
        return len(rows)

    def _advance(self, now: float) -> None:
        """Move the cursor over the ids read, and over a missing one waited for long enough."""
        while self._seen:
            following = self._cursor + 1
            if following in self._seen:
                del self._seen[following]
                self._cursor = following
                continue
            oldest = min(self._seen)
            if now - self._seen[oldest] < HOLE_SECONDS:
                return
            self._cursor = oldest - 1  # the hole never filled: a rolled back insert

    async def _prune(self) -> None:
        cutoff = utcnow() - timedelta(seconds=self._retention)
        async with self.database.session() as db:
            await db.execute(delete(BusEvent).where(BusEvent.created_at < cutoff))
            await db.commit()
