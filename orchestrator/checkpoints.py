"""Where investigation graphs keep their checkpoints: one LangGraph thread per investigation.

``AsyncSqliteSaver`` (one worker-thread trip an operation: :mod:`orchestrator.sqlite_saver`) in
a file of its own beside a SQLite platform database, and
``AsyncPostgresSaver`` (a connection pool) in the platform's PostgreSQL database. Both
deserialise with the strict msgpack allow-list, and both can hold a run's writes
(:func:`holding`): the runner makes them only when the run did not finish, since a finished
investigation's receipt is its record and nothing resumes it. :func:`prune` is the retention
job's tool: it deletes finished threads.
"""

from __future__ import annotations

import asyncio
import enum
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from orchestrator.state import InvestigationState


def state_types(root: Any = InvestigationState) -> set[tuple[str, str]]:
    """The classes an investigation's state can hold (its pydantic models and enums, found by
    walking the state's annotations), as ``(module, name)`` pairs for the msgpack allow-list."""
    found: set[tuple[str, str]] = set()
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        hint = pending.pop()
        if id(hint) in seen:
            continue
        seen.add(id(hint))
        pending += typing.get_args(hint)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            found.add((hint.__module__, hint.__name__))
            pending += [field.annotation for field in hint.model_fields.values()]
            pending += [base for base in hint.__mro__[1:] if issubclass(base, BaseModel)]
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            found.add((hint.__module__, hint.__name__))
        elif isinstance(hint, type) and typing.is_typeddict(hint):
            pending += list(typing.get_type_hints(hint, include_extras=True).values())
    found.discard((BaseModel.__module__, BaseModel.__name__))
    return found


def strict_serializer() -> JsonPlusSerializer:
    """Only the investigation state's own types (and LangGraph's safe ones) come back out of a
    checkpoint; never pickle. The list is given here rather than left to LangGraph, which
    builds one only when ``LANGGRAPH_STRICT_MSGPACK`` was set before it was first imported."""
    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=state_types())


def saved_as(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
    """What a saver's ``aput`` answers: the thread, its namespace and the checkpoint's id."""
    configurable = config["configurable"]
    return {
        "configurable": {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable["checkpoint_ns"],
            "checkpoint_id": checkpoint["id"],
        }
    }


type Write = Callable[[], Awaitable[object]]
_HELD: ContextVar[list[Write] | None] = ContextVar("aurora_held_checkpoint_writes", default=None)


class HeldWrites(BaseCheckpointSaver[str]):
    """A saver whose writes (``aput``, ``aput_writes``) wait, in order, while the run that makes
    them is :func:`holding` them; otherwise they are made at once. A held checkpoint is answered
    as the saver would answer it (its thread, namespace and id)."""

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        held = _HELD.get()
        if held is None:
            return await super().aput(config, checkpoint, metadata, new_versions)
        held.append(partial(super().aput, config, checkpoint, metadata, new_versions))
        return saved_as(config, checkpoint)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        held = _HELD.get()
        if held is None:
            await super().aput_writes(config, writes, task_id, task_path)
        else:
            held.append(partial(super().aput_writes, config, writes, task_id, task_path))


class Held:
    """The writes a run made while held: :meth:`write` makes them, in the order they came."""

    __slots__ = ("writes",)

    def __init__(self) -> None:
        self.writes: list[Write] = []

    async def write(self) -> None:
        writes = list(self.writes)
        self.writes.clear()
        for write in writes:
            await write()

    def drop(self) -> int:
        """Forget the writes (nothing will resume the run); how many there were."""
        count = len(self.writes)
        self.writes.clear()
        return count


@contextmanager
def holding() -> Iterator[Held]:
    """Hold the writes of a :class:`HeldWrites` saver made in this context (the graph's tasks
    inherit it) until the caller writes or drops them."""
    held = Held()
    token = _HELD.set(held.writes)
    try:
        yield held
    finally:
        _HELD.reset(token)


def postgres_conninfo(database_url: str) -> str | None:
    """The libpq connection string for a SQLAlchemy PostgreSQL URL, None for other engines."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


SETUP_LOCK = 0x4155524F5241  # "AURORA": the advisory lock key of the saver's setup
SETUP_POLL_SECONDS = 0.2


@asynccontextmanager
async def open_checkpointer(
    database_url: str, data_dir: Path
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """A ready saver (tables created) for the platform database at ``database_url``."""
    conninfo = postgres_conninfo(database_url)
    if conninfo is None:
        import aiosqlite

        from orchestrator.sqlite_saver import HeldSqliteSaver

        async with aiosqlite.connect(str(data_dir / "checkpoints.db")) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            sqlite_saver = HeldSqliteSaver(conn, serde=strict_serializer())
            await sqlite_saver.setup()
            yield sqlite_saver
        return
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow, dict_row
    from psycopg_pool import AsyncConnectionPool

    from orchestrator.postgres_saver import HeldPostgresSaver

    pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=8,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open(wait=True)
    try:
        pg_saver = HeldPostgresSaver(pool, serde=strict_serializer())
        await _set_up_alone(pool, pg_saver)
        yield pg_saver
    finally:
        await pool.close()


async def _set_up_alone(pool: Any, saver: Any) -> None:
    """The saver's setup, one replica at a time: replicas starting together would race to
    create its tables and types. The lock is a session-level advisory lock, polled: a replica
    waiting inside a statement would hold a snapshot that the setup's concurrent index builds
    wait for."""
    async with pool.connection() as locking:
        while True:
            row = await (
                await locking.execute("SELECT pg_try_advisory_lock(%s) AS got", (SETUP_LOCK,))
            ).fetchone()
            if row is not None and row["got"]:
                break
            await asyncio.sleep(SETUP_POLL_SECONDS)
        try:
            await saver.setup()
        finally:
            await locking.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


async def prune(saver: BaseCheckpointSaver[str], thread_ids: Iterable[str]) -> int:
    """Delete every checkpoint of ``thread_ids``; the number of threads deleted."""
    count = 0
    for thread_id in thread_ids:
        await saver.adelete_thread(thread_id)
        count += 1
    return count
