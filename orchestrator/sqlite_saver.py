"""LangGraph's SQLite checkpointer with one trip to aiosqlite's worker thread an operation.

``AsyncSqliteSaver`` drives its connection statement by statement: a checkpoint written is three
trips to the worker thread (execute, close the cursor, commit), a task's writes four, reading a
checkpoint back six. Each trip is a queue put, a wake-up of the event loop and a future; an
investigation writes some ten checkpoints and writes, so on SQLite these trips were a good part
of what the gateway spent on the graph. Here the same SQL runs in one trip an operation: the
statements, their rows and the commit together on the worker thread. Serialising and
deserialising stay on the event loop, where the stock saver does them, so no object the graph
holds is read from another thread.

Only the graph's hot operations are replaced (``aput``, ``aput_writes``, ``aget_tuple``); the
rest (listing, deleting a thread) is the stock saver's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.checkpoint.sqlite.utils import load_pending_writes, pending_writes_sql

from orchestrator.checkpoints import HeldWrites, saved_as

_PUT = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_WRITES = (
    "INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, "
    "type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BY_ID = (
    "SELECT thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
    "FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
)
_LATEST = (
    "SELECT thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
    "FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
    "ORDER BY checkpoint_id DESC LIMIT 1"
)


def _write(
    connection: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]], many: bool
) -> None:
    """On the worker thread: the statement and its commit."""
    if many:
        connection.executemany(sql, rows)
    else:
        connection.execute(sql, rows[0])
    connection.commit()


def _read(
    connection: sqlite3.Connection,
    sql: str,
    parameters: tuple[Any, ...],
    writes_sql: str,
    checkpoint_ns: str,
) -> tuple[Any, list[Any]] | None:
    """On the worker thread: the checkpoint's row and its pending writes' rows."""
    row = connection.execute(sql, parameters).fetchone()
    if row is None:
        return None
    writes = connection.execute(writes_sql, (str(row[0]), checkpoint_ns, str(row[1]))).fetchall()
    return row, writes


class OneTripSqliteSaver(AsyncSqliteSaver):
    """:class:`AsyncSqliteSaver` whose writes and reads take one worker-thread trip each."""

    async def _trip(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(connection, *args)`` on aiosqlite's worker thread, in its queue."""
        execute = cast(Callable[..., Awaitable[Any]], self.conn._execute)
        return await execute(function, self.conn._conn, *args)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        await self.setup()
        thread_id = config["configurable"]["thread_id"]
        checkpoint_ns = config["configurable"]["checkpoint_ns"]
        type_, serialized = self.serde.dumps_typed(checkpoint)
        serialized_metadata = json.dumps(
            get_checkpoint_metadata(config, metadata), ensure_ascii=False
        ).encode("utf-8", "ignore")
        row = (
            str(thread_id),
            checkpoint_ns,
            checkpoint["id"],
            config["configurable"].get("checkpoint_id"),
            type_,
            serialized,
            serialized_metadata,
        )
        async with self.lock:
            await self._trip(_write, _PUT, [row], False)
        return saved_as(config, checkpoint)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        verb = (
            "INSERT OR REPLACE "
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else "INSERT OR IGNORE "
        )
        await self.setup()
        configurable = config["configurable"]
        rows = [
            (
                str(configurable["thread_id"]),
                str(configurable["checkpoint_ns"]),
                str(configurable["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        async with self.lock:
            await self._trip(_write, verb + _WRITES, rows, True)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        await self.setup()
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        thread = str(config["configurable"]["thread_id"])
        checkpoint_id = get_checkpoint_id(config)
        sql, parameters = (
            (_BY_ID, (thread, checkpoint_ns, checkpoint_id))
            if checkpoint_id
            else (_LATEST, (thread, checkpoint_ns))
        )
        writes_sql = pending_writes_sql(self._has_task_path)
        async with self.lock:
            found = await self._trip(_read, sql, parameters, writes_sql, checkpoint_ns)
        if found is None:
            return None
        (thread_id, found_id, parent_id, type_, checkpoint, metadata), writes = found
        if not checkpoint_id:
            config = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": found_id,
                }
            }
        return CheckpointTuple(
            config,
            self.serde.loads_typed((type_, checkpoint)),
            cast(CheckpointMetadata, json.loads(metadata) if metadata is not None else {}),
            (
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": checkpoint_ns,
                        "checkpoint_id": parent_id,
                    }
                }
                if parent_id
                else None
            ),
            load_pending_writes(writes, self.serde),
        )


class HeldSqliteSaver(HeldWrites, OneTripSqliteSaver):
    """:class:`OneTripSqliteSaver` whose writes a run can hold
    (:func:`~orchestrator.checkpoints.holding`)."""
