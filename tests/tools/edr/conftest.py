"""Shared helpers of the EDR connector tests: recorded sleeps and the no-secret check."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest


class Sleeps:
    """Stands in for asyncio.sleep: records the waits, so Retry-After tests take no time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def shown(error: BaseException) -> str:
    """Everything a caller or a log could show of an error."""
    text = "".join(traceback.format_exception(error))
    return (
        text + repr(error) + str(getattr(error, "detail", "")) + str(getattr(error, "headers", ""))
    )


@pytest.fixture
def assert_no_secret() -> Callable[..., None]:
    def check(error: BaseException, *secrets: str) -> None:
        text = shown(error)
        for secret in secrets:
            assert secret not in text
            assert secret[-10:] not in text

    return check
