"""The tests' waiting helpers: they return what held as soon as it holds, and fail naming what
did not happen."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import NotYet, eventually, until


async def test_eventually_returns_the_first_truthy_value_of_a_plain_or_async_predicate() -> None:
    seen: list[int] = []

    def grows() -> list[int]:
        seen.append(len(seen))
        return seen if len(seen) >= 3 else []

    assert await eventually(grows, interval=0) == [0, 1, 2]

    async def later() -> str:
        await asyncio.sleep(0)
        return "ready"

    assert await eventually(later) == "ready"


async def test_eventually_fails_naming_what_and_the_last_value() -> None:
    with pytest.raises(NotYet, match=r"the door opened: still not true after 0.05 s \(last: 0\)"):
        await eventually(lambda: 0, within=0.05, what="the door opened")


def test_until_waits_outside_an_event_loop() -> None:
    calls: list[None] = []

    def third_time() -> bool:
        calls.append(None)
        return len(calls) == 3

    assert until(third_time, interval=0) is True
    with pytest.raises(NotYet, match="third_time"):
        until(lambda: False, within=0.02, what="third_time")
