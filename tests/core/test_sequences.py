"""Identifier counters: numbers taken one at a time or in a block, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from core.db import create_database
from core.db.base import utcnow
from core.db.migrate import upgrade
from core.db.sequences import next_id, next_ids, next_number, next_numbers


async def test_numbers_are_taken_one_at_a_time_or_in_a_block(database_url: str) -> None:
    database = create_database(database_url)
    try:
        await upgrade(database)
        async with database.session() as db:
            assert await next_numbers(db, "X", 3) == range(1, 4)  # the counter made
            assert await next_number(db, "X") == 4
            assert await next_numbers(db, "X", 2) == range(5, 7)
            assert await next_number(db, "Y") == 1  # counters are apart
            year = utcnow().year
            assert await next_id(db, "ALRT") == f"ALRT-{year}-00001"
            assert await next_ids(db, "ALRT", 2) == [f"ALRT-{year}-00002", f"ALRT-{year}-00003"]
            with pytest.raises(ValueError, match="at least 1"):
                await next_numbers(db, "X", 0)
            await db.commit()
        async with database.session() as db:
            assert await next_number(db, "X") == 7  # what was taken stays taken
            await db.rollback()
        async with database.session() as db:
            assert await next_number(db, "X") == 7  # what was rolled back is taken again
    finally:
        await database.dispose()
