"""The async SQLAlchemy engine and session factory: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import immutabledict

from core import jsontext
from core.db import sqlite_async


def upsert_into(db: AsyncSession, model: Any) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` into ``model`` in the session's dialect, for ``on_conflict_do_update``: an
    atomic upsert on PostgreSQL and SQLite alike (counters, throttles, leases)."""
    if db.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


LAST: Final = immutabledict({sqlite_async.LAST_STATEMENT: True})
"""Execution options of a transaction's last statement, for the hot writes: on SQLite it is
committed in the statement's own trip (:data:`core.db.sqlite_async.LAST_STATEMENT`), so the
write lock is held no longer than the write; elsewhere the commit comes as before."""


class DatabaseDisposed(RuntimeError):
    """A session or connection asked of a database after :meth:`Database.dispose`."""


@dataclass(slots=True, eq=False)
class Database:
    """An engine and its session factory, opened once per process and passed down (one
    handle: compared and hashed by identity).

    Once disposed it opens nothing more: SQLAlchemy would open a new pool for a later use,
    which nothing would close (its connections collected unclosed, their files left open), so
    a use after disposal, always a bug of shutdown order, is an error where it happens."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    disposed: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def _check_open(self) -> None:
        if self.disposed:
            raise DatabaseDisposed("the database was disposed: nothing may open it again")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for one unit of work; commit explicitly, rolled back on error."""
        self._check_open()
        async with self.sessions() as session:
            yield session

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a transaction, committed when the block ends (rolled back on error):
        for Core statements on a hot path, without a session's bookkeeping (about a fifth of
        a one-row write's CPU on SQLite)."""
        self._check_open()
        return self.engine.begin()

    async def dispose(self) -> None:
        """Close every pooled connection; the database opens none after."""
        self.disposed = True
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it is answered
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_database(url: str, *, echo: bool = False) -> Database:
    """Open an engine for ``url``; for SQLite, create the parent directory and enable WAL."""
    parsed = make_url(url)
    # JSON columns (receipts, subjects) written with orjson (core.jsontext).
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": jsontext.dumps}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.get_driver_name() == "aiosqlite":
            # The same driver, one trip to its thread a statement (core.db.sqlite_async).
            parsed = parsed.set(drivername=f"sqlite+{sqlite_async.DRIVER}")
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return Database(engine=engine, sessions=async_sessionmaker(engine, expire_on_commit=False))
