"""Migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

import gateway.app  # noqa: F401  (imports every domain's models)
from core.db import LAST, Base, create_database
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
            synchronous = (await connection.execute(text("PRAGMA synchronous"))).scalar_one()
        # FULL (2): each commit is synced to disk before it returns, so what the platform
        # acknowledged survives a power loss too (NORMAL, in WAL mode, may lose the last ones).
        assert (mode, keys, synchronous) == ("wal", 1, 2)
    finally:
        await database.dispose()


class Trips:
    """Counts a SQLAlchemy connection's trips to its aiosqlite worker thread."""

    def __init__(self) -> None:
        self.count = 0

    @classmethod
    async def of(cls, connection: Any) -> Trips:
        trips = cls()
        raw = await connection.get_raw_connection()
        worker = raw.driver_connection
        assert worker is not None
        real = worker._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            trips.count += 1
            return await real(fn, *args, **kwargs)

        worker._execute = counted
        return trips


async def test_sqlite_statements_take_one_trip_and_keep_dbapi_behaviour(tmp_path: Any) -> None:
    """``sqlite+aiosqlite`` URLs run on the one-trip adapter (core.db.sqlite_async): rows, row
    counts, RETURNING, executemany, errors and rollback behave as the stock adapter's."""
    database = create_database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        async with database.engine.connect() as connection:
            trips = await Trips.of(connection)
            await connection.execute(
                text("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT UNIQUE)")
            )
            trips.count = 0
            got = await connection.execute(text("INSERT INTO t (v) VALUES ('a') RETURNING id"))
            assert got.all() == [(1,)]
            assert trips.count == 1  # open, execute, fetch and close: one trip
            await connection.execute(
                text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}]
            )
            changed = await connection.execute(text("UPDATE t SET v = v || '!' WHERE id > 1"))
            assert changed.rowcount == 2
            rows = await connection.execute(text("SELECT id, v FROM t ORDER BY id"))
            assert rows.all() == [(1, "a"), (2, "b!"), (3, "c!")]
            await connection.commit()
            with pytest.raises(IntegrityError, match="UNIQUE"):
                await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
            await connection.rollback()
            count = await connection.execute(text("SELECT count(*) FROM t"))
            assert count.scalar_one() == 3
            # Outside a transaction (a read opens none) commit and rollback take no trip;
            # inside one they still do their work.
            trips.count = 0
            await connection.commit()
            await connection.rollback()
            assert trips.count == 0
            await connection.execute(text("DELETE FROM t WHERE id = 3"))
            await connection.rollback()
            await connection.execute(text("DELETE FROM t WHERE id = 2"))
            await connection.commit()
            remaining = await connection.execute(text("SELECT id FROM t ORDER BY id"))
            assert remaining.all() == [(1,), (3,)]
        assert database.engine.dialect.driver == "aurora"
    finally:
        await database.dispose()


async def test_a_transactions_last_statement_commits_in_its_own_trip(tmp_path: Any) -> None:
    """With ``LAST`` the statement and its commit take one trip on SQLite: what it wrote is
    visible to another connection before the caller's commit, which then takes none. Many rows
    in one ``executemany`` are one transaction; a statement that fails commits nothing."""
    path = tmp_path / "a.db"
    database = create_database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
        async with database.begin() as connection:
            trips = await Trips.of(connection)
            await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
            rows = [{"v": "b"}, {"v": "c"}]
            await connection.execute(
                text("INSERT INTO t (v) VALUES (:v)"), rows, execution_options=LAST
            )
            assert trips.count == 2
            other = sqlite3.connect(path)
            try:  # committed: another connection sees it
                seen = other.execute("SELECT v FROM t ORDER BY id").fetchall()
            finally:
                other.close()
            assert seen == [("a",), ("b",), ("c",)]
        assert trips.count == 2  # the block's commit had nothing left to do
        async with database.begin() as connection:
            await connection.execute(text("INSERT INTO t (v) VALUES ('d')"))
            duplicate = text("INSERT INTO t (v) VALUES ('a')")
            with pytest.raises(IntegrityError):
                await connection.execute(duplicate, execution_options=LAST)
            await connection.rollback()
        async with database.begin() as connection:
            count = await connection.execute(text("SELECT count(*) FROM t"))
            assert count.scalar_one() == 3  # 'd' rolled back with the failed statement's
    finally:
        await database.dispose()


def test_a_many_row_insert_split_into_batches_is_not_committed_batch_by_batch() -> None:
    from sqlalchemy.engine.interfaces import ExecuteStyle

    from core.db.sqlite_async import _commits

    class Context:
        execution_options = LAST
        execute_style = ExecuteStyle.INSERTMANYVALUES

    assert not _commits(Context())
    Context.execute_style = ExecuteStyle.EXECUTEMANY
    assert _commits(Context())
    Context.execution_options = {}  # type: ignore[assignment]
    assert not _commits(Context())


class _Recorded(sqlite3.Connection):
    """A ``sqlite3`` connection that tells when it is closed."""

    closed: threading.Event

    def close(self) -> None:
        super().close()
        self.closed.set()


async def test_a_connect_cancelled_while_the_file_opens_leaves_nothing_open(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request cancelled while its session's connection is being opened (a client gone, a
    timeout, a shutdown): the ``sqlite3`` connection the worker thread opens anyway is closed,
    not dropped open (aiosqlite alone never assigns it, so nothing would close it)."""
    database = create_database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    opening, release, closed = threading.Event(), threading.Event(), threading.Event()
    real_connect = sqlite3.connect

    def held_open(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opening.set()
        release.wait(10)
        connection = real_connect(*args, factory=_Recorded, **kwargs)
        connection.closed = closed
        return connection

    monkeypatch.setattr(sqlite3, "connect", held_open)

    async def one_read() -> None:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    reading = asyncio.create_task(one_read())
    try:
        assert await asyncio.to_thread(opening.wait, 10)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        release.set()
        assert await asyncio.to_thread(closed.wait, 10), "the connection was left open"
    finally:
        release.set()
        monkeypatch.undo()
        await database.dispose()
