"""The client rebuilds every AURORA error an agent answers with, whatever its constructor."""

from __future__ import annotations

import random

import pytest

from agents.acp.client import RetryPolicy, _rebuild
from agents.acp.protocol import PLATFORM_ERROR, RpcError
from core.errors import CATALOGUE, RateLimited


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_catalogued_code_is_rebuilt(code: str) -> None:
    error = RpcError(PLATFORM_ERROR, "failed", {"aurora_code": code, "detail": {"why": "x"}})
    rebuilt = _rebuild(error)
    assert type(rebuilt) is CATALOGUE[code]
    assert getattr(rebuilt, "detail", None) == {"why": "x"}


def test_a_rebuilt_rate_limit_still_says_when_to_retry() -> None:
    rebuilt = _rebuild(RpcError(PLATFORM_ERROR, "slow down", {"aurora_code": "AURORA-4290"}))
    assert isinstance(rebuilt, RateLimited)
    assert rebuilt.headers["Retry-After"] == "1"


def test_retry_jitter_leaves_the_global_generator_alone() -> None:
    random.seed(7)
    expected = random.random()
    random.seed(7)
    RetryPolicy().delay(3)
    assert random.random() == expected
