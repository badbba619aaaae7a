"""SQLite for the async engine with one thread hop a statement.

SQLAlchemy's ``aiosqlite`` adapter makes four trips to aiosqlite's worker thread for each
statement (open a cursor, execute, fetch the rows, close the cursor), each a queue put, a
wake-up of the event loop through its self-pipe and a future: on the gateway's hot paths that
was most of what a statement cost. This adapter runs the whole statement in one trip: the
worker executes it, reads every row and the cursor's description, row count and last row id,
and closes the cursor; the event loop gets them back together. It is the same driver, the same
connection and the same SQL; only the trips are fewer.

The dialect registers as ``sqlite+aurora``; :func:`core.db.create_database` uses it for
``sqlite+aiosqlite`` URLs, so settings keep naming the driver users know.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import aiosqlite
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.util.concurrency import await_

DRIVER = "aurora"

LAST_STATEMENT: Final = "aurora_last_statement"
"""An execution option: the statement is its transaction's last, committed right after it. On
SQLite it is committed on the worker thread in the statement's own trip, so the write lock is
held for the statement and its sync alone; without it the lock stays taken until the
commit's trip, one more turn of a busy event loop, while other writers wait in SQLite's busy
handler (which sleeps up to 100 ms between looks). The caller's commit then has nothing to do.
Other databases commit as before."""

type _Outcome = tuple[Any, int, int | None, list[Any] | None]
"""What one trip brings back: description, row count, last row id and the rows (None when the
statement returns none)."""


def _run(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool, commit: bool
) -> _Outcome:
    """On the worker thread: the statement executed, its rows read, its cursor closed; with
    ``commit``, the transaction committed after it."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        outcome = description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()
    if commit and connection.in_transaction:
        connection.commit()
    return outcome


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A DBAPI cursor whose statements each take one trip to the worker thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # No aiosqlite cursor is opened here: each statement opens and closes its own on the
        # worker thread.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return  # nothing is held open between statements

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None, *, commit: bool = False) -> Any:
        try:
            await_(self._trip(operation, parameters, many=False, commit=commit))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(
        self, operation: Any, seq_of_parameters: Sequence[Any], *, commit: bool = False
    ) -> Any:
        try:
            await_(self._trip(operation, seq_of_parameters, many=True, commit=commit))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _trip(self, operation: Any, parameters: Any, *, many: bool, commit: bool) -> None:
        connection = self._connection
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await connection._execute(
                _run, connection._conn, operation, parameters, many, commit
            )
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows) if rows is not None else collections.deque()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    _cursor_cls = OneTripCursor

    def _idle(self) -> bool:
        """No transaction is open: a commit or rollback has nothing to do. The pool rolls back
        every connection it takes back, and most sessions only read (SQLite opens no
        transaction for a read): a trip each, for nothing. ``in_transaction`` is SQLite's own
        autocommit flag, readable from any thread; no statement of this connection is running
        when it is asked (SQLAlchemy awaits each)."""
        connection = self._connection._connection
        return connection is None or not connection.in_transaction

    def rollback(self) -> None:
        if not self._idle():
            super().rollback()

    def commit(self) -> None:
        if not self._idle():
            super().commit()


def _close_if_opened(opening: asyncio.Future[aiosqlite.Connection]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().stop()  # closes the file on the worker thread, then ends it


async def _awaited(connection: aiosqlite.Connection) -> aiosqlite.Connection:
    return await connection


async def _open(connection: aiosqlite.Connection) -> aiosqlite.Connection:
    """``await connection``, with a cancellation that comes while the worker thread opens the
    file leaving nothing open. aiosqlite alone then drops the ``sqlite3`` connection the
    worker made (it is never assigned), unclosed: a leaked file handle, and a
    ``ResourceWarning`` wherever it is collected. Here the open finishes, shielded, and is
    closed when it does."""
    opening = asyncio.ensure_future(_awaited(connection))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_if_opened)
        raise


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's adapter: never holds up an exit
        opened: Any = await_(_open(connection))  # SQLAlchemy types it as its own protocol
        return OneTripConnection(self, opened)


def _commits(context: Any) -> bool:
    """Whether a statement carries :data:`LAST_STATEMENT` and runs as one call (not one of the
    batches SQLAlchemy splits a many-row insert into)."""
    return (
        context is not None
        and context.execution_options.get(LAST_STATEMENT, False)
        and context.execute_style is not ExecuteStyle.INSERTMANYVALUES
    )


class OneTripSQLiteDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        if _commits(context):
            cursor.execute(statement, parameters, commit=True)
        else:
            cursor.execute(statement, parameters)

    def do_executemany(
        self, cursor: Any, statement: str, parameters: Any, context: Any = None
    ) -> None:
        if _commits(context):
            cursor.executemany(statement, parameters, commit=True)
        else:
            cursor.executemany(statement, parameters)

    @classmethod
    def import_dbapi(cls) -> OneTripDBAPI:
        return OneTripDBAPI(aiosqlite, sqlite3)


registry.register(f"sqlite.{DRIVER}", __name__, "OneTripSQLiteDialect")
