import asyncio

import pytest

from core.events import Event, EventBus, Gap, topic_matches


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("*", "alerts.created", True),
        ("alerts.*", "alerts.created", True),
        ("alerts.*", "alerts", True),
        ("alerts.*", "alertsx.created", False),
        ("alerts.created", "alerts.created", True),
        ("alerts.created", "alerts.updated", False),
    ],
)
def test_topic_matching(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


async def test_fan_out_to_matching_subscribers_only() -> None:
    bus = EventBus()
    alerts = bus.subscribe("alerts.*")
    users = bus.subscribe("users.deleted")
    bus.publish("alerts.created", {"id": "a1"})
    bus.publish("users.deleted", {"username": "bob"})
    first = await asyncio.wait_for(alerts.get(), 1)
    assert isinstance(first, Event)
    assert (first.topic, first.payload) == ("alerts.created", {"id": "a1"})
    second = await asyncio.wait_for(users.get(), 1)
    assert isinstance(second, Event)
    assert second.payload == {"username": "bob"}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(alerts.get(), 0.05)


async def test_slow_subscriber_never_blocks_and_gets_a_gap() -> None:
    bus = EventBus()
    slow = bus.subscribe("ticks", maxsize=3)
    fast = bus.subscribe("ticks", maxsize=100)
    for n in range(10):
        bus.publish("ticks", {"n": n})  # returns at once although `slow` is full
    gap = await slow.get()
    assert gap == Gap(dropped=7)
    kept = [await slow.get() for _ in range(3)]
    assert [e.payload["n"] for e in kept if isinstance(e, Event)] == [7, 8, 9]
    assert slow.dropped_total == 7
    got = [await fast.get() for _ in range(10)]
    assert [e.payload["n"] for e in got if isinstance(e, Event)] == list(range(10))


async def test_filter_and_close() -> None:
    bus = EventBus()
    sub = bus.subscribe("inv.*", where=lambda e: e.payload.get("investigation") == "i1")
    bus.publish("inv.thought", {"investigation": "i2"})
    bus.publish("inv.thought", {"investigation": "i1", "text": "hello"})
    event = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(event, Event)
    assert event.payload["text"] == "hello"
    assert bus.subscriber_count == 1
    sub.close()
    assert bus.subscriber_count == 0
    bus.publish("inv.thought", {"investigation": "i1"})
    with pytest.raises(ValueError, match="at least one"):
        bus.subscribe()
    with pytest.raises(ValueError, match="maxsize"):
        bus.subscribe("x", maxsize=0)


async def test_gap_comes_before_the_event_a_waiting_reader_wakes_to() -> None:
    bus = EventBus()
    sub = bus.subscribe("t", maxsize=2)
    reader = asyncio.create_task(sub.get())
    # One turn of the loop, not a timed wait: the reader runs until it waits on the empty queue.
    await asyncio.sleep(0)
    for n in range(5):
        bus.publish("t", {"n": n})
    assert await reader == Gap(dropped=3)
    rest = [await sub.get(), await sub.get()]
    assert [e.payload["n"] for e in rest if isinstance(e, Event)] == [3, 4]


async def test_ready_takes_what_is_queued_and_stops_at_a_gap() -> None:
    bus = EventBus()
    sub = bus.subscribe("t", maxsize=3)
    assert sub.ready(10) == []
    for n in range(3):
        bus.publish("t", {"n": n})
    first = await sub.get()
    assert isinstance(first, Event)
    assert [e.payload["n"] for e in [first, *sub.ready(10)]] == [0, 1, 2]
    assert sub.ready(10) == []
    for n in range(3, 8):  # two more than it holds: the first two are dropped
        bus.publish("t", {"n": n})
    assert sub.ready(10) == []  # the gap is reported first, by get
    assert await sub.get() == Gap(dropped=2)
    assert [e.payload["n"] for e in sub.ready(2)] == [5, 6]  # at most two
    assert [e.payload["n"] for e in sub.ready(2)] == [7]
