"""An in-process event bus: publishers never wait, each subscriber has a bounded queue.

When a subscriber falls behind, its oldest events are dropped and the next thing it reads is a
:class:`Gap` saying how many it missed, so a slow consumer never blocks a producer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from core.db.base import utcnow


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened: a dotted ``topic`` (``users.deleted``) and a JSON-able payload."""

    topic: str
    payload: dict[str, Any]
    at: str = field(default_factory=lambda: utcnow().isoformat())
    origin: str | None = None
    """The replica it was published on when another one (:mod:`core.bridge`); None: here."""
    encoded: dict[object, str] = field(default_factory=dict, init=False, compare=False, repr=False)
    """Its text as each stream renders it, made by the first subscriber that sends it (every
    subscriber gets this one object): a thousand subscribers, one serialisation."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Stands in the stream where ``dropped`` events were discarded for a slow subscriber."""

    dropped: int


def topic_matches(pattern: str, topic: str) -> bool:
    """``*`` matches everything; ``a.*`` matches ``a`` and every topic under it; else exact."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        stem = pattern[:-2]
        return topic == stem or topic.startswith(stem + ".")
    return pattern == topic


class Subscription:
    """One subscriber's bounded queue; iterate it, or call :meth:`get`."""

    def __init__(
        self,
        bus: EventBus,
        patterns: tuple[str, ...],
        maxsize: int,
        where: Callable[[Event], bool] | None,
    ) -> None:
        self._bus = bus
        self.patterns = patterns
        self.where = where
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._dropped = 0
        self._held: Event | None = None
        self.dropped_total = 0
        self.closed = False

    def wants(self, event: Event) -> bool:
        if not any(topic_matches(p, event.topic) for p in self.patterns):
            return False
        return self.where is None or self.where(event)

    def offer(self, event: Event) -> None:
        """Enqueue without waiting, dropping the oldest event when full."""
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
            self.dropped_total += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event | Gap:
        """The next event, or a :class:`Gap` first when events were dropped since the last read."""
        if self._held is not None:
            held, self._held = self._held, None
            return held
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return Gap(dropped)
        event = await self._queue.get()
        if self._dropped:
            # Events were dropped while we waited, and all of them came before this one.
            self._held = event
            dropped, self._dropped = self._dropped, 0
            return Gap(dropped)
        return event

    def ready(self, most: int) -> list[Event]:
        """Up to ``most`` of the events queued now, oldest first, without waiting, and none past
        a gap: when events were dropped since the last read, none (the next :meth:`get` reports
        the gap first). A consumer that handles a burst together takes them with the event it
        got."""
        if self._held is not None or self._dropped:
            return []
        taken: list[Event] = []
        while len(taken) < most and not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    def drain(self) -> list[Event]:
        """Every event queued now, without waiting (a consumer that is shutting down, or a
        test, taking what is left)."""
        taken = [self._held] if self._held is not None else []
        self._held = None
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._remove(self)

    def __aiter__(self) -> AsyncIterator[Event | Gap]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event | Gap]:
        while not self.closed:
            yield await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of events to subscribers inside one process."""

    def __init__(self, *, default_maxsize: int = 1000) -> None:
        self.default_maxsize = default_maxsize
        self._subscriptions: list[Subscription] = []
        self._taps: list[Callable[[Event], None]] = []
        self.published = 0

    def subscribe(
        self,
        *patterns: str,
        maxsize: int | None = None,
        where: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        """Receive events whose topic matches any pattern (and ``where``, when given)."""
        if not patterns:
            raise ValueError("subscribe needs at least one topic pattern")
        size = self.default_maxsize if maxsize is None else maxsize
        if size < 1:
            raise ValueError("maxsize must be at least 1")
        subscription = Subscription(self, patterns, size, where)
        self._subscriptions.append(subscription)
        return subscription

    def publish(self, topic: str, payload: dict[str, Any] | None = None) -> Event:
        """Deliver to every matching subscriber; never waits."""
        event = Event(topic, dict(payload or {}))
        self.published += 1
        self.deliver(event)
        for tap in tuple(self._taps):
            tap(event)
        return event

    def deliver(self, event: Event) -> None:
        """Offer ``event`` to the matching subscribers (an event heard from another replica
        comes in here, past the taps)."""
        for subscription in tuple(self._subscriptions):
            if subscription.wants(event):
                subscription.offer(event)

    def tap(self, tap: Callable[[Event], None]) -> None:
        """Call ``tap`` (without waiting) with every event published here."""
        self._taps.append(tap)

    def untap(self, tap: Callable[[Event], None]) -> None:
        with contextlib.suppress(ValueError):
            self._taps.remove(tap)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def _remove(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)
