"""The chat rate limit is one count in the shared database: replicas charging at once admit
exactly the limit, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from core.db import create_database
from core.errors import RateLimited
from core.settings import Settings
from gateway.chat import service

pytestmark = pytest.mark.asyncio


async def test_replicas_share_one_count(settings: Settings) -> None:
    replicas = [create_database(settings.effective_database_url) for _ in range(2)]
    now = 1_800_000_000.0  # a minute's start
    try:

        async def one(index: int) -> int | None:
            """None when admitted, else the Retry-After it was given."""
            async with replicas[index % 2].session() as db:
                try:
                    await service.charge(db, username="alice", limit=4, now=now + 1)
                except RateLimited as err:
                    return err.retry_after
                return None

        results = await asyncio.gather(*(one(i) for i in range(10)))
        assert results.count(None) == 4
        assert set(results) - {None} == {59}
        # Another user has an allowance of their own; the next minute starts afresh.
        async with replicas[0].session() as db:
            await service.charge(db, username="bob", limit=4, now=now + 2)
            await service.charge(db, username="alice", limit=4, now=now + 61)
    finally:
        for database in replicas:
            await database.dispose()
