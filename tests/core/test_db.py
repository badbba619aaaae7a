"""Migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

import gateway.app  # noqa: F401  (imports every domain's models)
from core.db import Base, create_database
from core.db.migrate import current_revision, head_revision, is_current, upgrade


async def test_migrations_match_models(database_url: str) -> None:
    database = create_database(database_url)
    try:
        assert await current_revision(database) is None
        assert not await is_current(database)
        await upgrade(database)
        assert await current_revision(database) == head_revision(database_url)
        assert await is_current(database)
        await upgrade(database)  # idempotent

        def diff(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with database.engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await database.dispose()


async def test_sqlite_runs_in_wal_mode(tmp_path: Any) -> None:
    database = create_database(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'a.db'}")
    try:
        async with database.engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
        assert (mode, keys) == ("wal", 1)
    finally:
        await database.dispose()
