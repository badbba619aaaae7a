"""Shared fixtures of the intel tests: a store on a settable clock, and the test feeds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tools.intel import IntelStore

DATA = Path(__file__).resolve().parent / "data"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[IntelStore]:
    with IntelStore(":memory:", clock=clock) as opened:
        yield opened
