"""The one-trip SQLite checkpointer stores and reads back what LangGraph's own saver does."""

from pathlib import Path
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, create_checkpoint, empty_checkpoint
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from orchestrator.checkpoints import holding, open_checkpointer, strict_serializer
from orchestrator.sqlite_saver import HeldSqliteSaver, OneTripSqliteSaver

ERROR = "__error__"
"""LangGraph's channel for a task's error (a special write: its index is fixed)."""


async def exercise(saver: AsyncSqliteSaver) -> list[CheckpointTuple | None]:
    """Two checkpoints of a thread (the second the first's child) with writes of two tasks,
    read back latest, by id, and for a thread that has none."""
    base: RunnableConfig = {"configurable": {"thread_id": "INV-1", "checkpoint_ns": ""}}
    first = empty_checkpoint()
    first["channel_values"] = {"subject": {"text": "185.220.101.4 beaconing"}, "round": 1}
    saved = await saver.aput(base, first, {"source": "input", "step": -1}, {})
    await saver.aput_writes(saved, [("findings", {"agent": "malware"}), ("round", 2)], "task-a")
    await saver.aput_writes(saved, [(ERROR, "the responder timed out")], "task-b", "~path")
    second = create_checkpoint(first, None, 1)
    second["channel_values"] = {"round": 2, "verdict": "malicious"}
    child = await saver.aput(saved, second, {"source": "loop", "step": 0}, {})
    await saver.aput_writes(child, [("report", "done")], "task-c")
    by_id: RunnableConfig = {"configurable": {**saved["configurable"]}}
    missing: RunnableConfig = {"configurable": {"thread_id": "INV-2", "checkpoint_ns": ""}}
    return [
        await saver.aget_tuple(base),
        await saver.aget_tuple(by_id),
        await saver.aget_tuple(missing),
    ]


async def test_it_reads_and_writes_what_the_stock_saver_does(tmp_path: Path) -> None:
    results: dict[str, list[Any]] = {}
    for name, kind in (("stock", AsyncSqliteSaver), ("one_trip", OneTripSqliteSaver)):
        async with aiosqlite.connect(str(tmp_path / f"{name}.db")) as conn:
            saver = kind(conn, serde=strict_serializer())
            await saver.setup()
            results[name] = await exercise(saver)
            # What it wrote, as the stock saver's own listing reads it.
            listed = [
                t async for t in AsyncSqliteSaver(conn, serde=strict_serializer()).alist(None)
            ]
            results[name].append([(t.config, t.metadata, t.pending_writes) for t in listed])
    stock, one_trip = results["stock"], results["one_trip"]
    latest, by_id, missing, listed = one_trip
    assert latest is not None
    assert by_id is not None
    assert missing is None
    assert latest.checkpoint["channel_values"] == {"round": 2, "verdict": "malicious"}
    assert latest.parent_config == by_id.config
    assert sorted(w[1] for w in by_id.pending_writes or []) == [ERROR, "findings", "round"]
    # The checkpoints' ids and timestamps differ between the two runs: compare the rest.
    for ours, theirs in zip(one_trip[:3], stock[:3], strict=True):
        assert (ours is None) == (theirs is None)
        if ours is not None and theirs is not None:
            assert ours.checkpoint["channel_values"] == theirs.checkpoint["channel_values"]
            assert ours.metadata == theirs.metadata
            assert ours.pending_writes == theirs.pending_writes
            assert (ours.parent_config is None) == (theirs.parent_config is None)
    assert [(m, w) for _, m, w in listed] == [(m, w) for _, m, w in stock[3]]


async def test_each_operation_is_one_trip_to_the_worker_thread(tmp_path: Path) -> None:
    async with aiosqlite.connect(str(tmp_path / "c.db")) as conn:
        saver = OneTripSqliteSaver(conn, serde=strict_serializer())
        await saver.setup()
        trips = 0
        real = conn._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal trips
            trips += 1
            return await real(fn, *args, **kwargs)

        conn._execute = counted  # type: ignore[method-assign]
        base: RunnableConfig = {"configurable": {"thread_id": "INV-9", "checkpoint_ns": ""}}
        saved = await saver.aput(base, empty_checkpoint(), {"step": -1}, {})
        assert trips == 1
        await saver.aput_writes(saved, [("a", 1), ("b", 2)], "task")
        assert trips == 2
        found = await saver.aget_tuple(base)
        assert trips == 3
        assert found is not None
        assert len(found.pending_writes or []) == 2


async def test_the_platforms_checkpointer_syncs_each_commit(tmp_path: Path) -> None:
    async with open_checkpointer(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", tmp_path) as saver:
        assert isinstance(saver, HeldSqliteSaver)
        async with saver.conn.execute("PRAGMA journal_mode") as cursor:
            assert await cursor.fetchone() == ("wal",)
        async with saver.conn.execute("PRAGMA synchronous") as cursor:
            assert await cursor.fetchone() == (2,)  # FULL: on disk before a step goes on


async def test_writes_held_by_a_run_are_made_in_order_or_dropped(tmp_path: Path) -> None:
    async with aiosqlite.connect(str(tmp_path / "h.db")) as conn:
        saver = HeldSqliteSaver(conn, serde=strict_serializer())
        await saver.setup()

        def config(thread: str) -> RunnableConfig:
            return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}

        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"round": 1}
        with holding() as held:
            saved = await saver.aput(config("kept"), checkpoint, {"step": 0}, {})
            await saver.aput_writes(saved, [("findings", {"agent": "malware"})], "task")
            # Answered as the saver answers, nothing written yet.
            assert saved == {
                "configurable": {
                    "thread_id": "kept",
                    "checkpoint_ns": "",
                    "checkpoint_id": checkpoint["id"],
                }
            }
            assert await saver.aget_tuple(config("kept")) is None
        await held.write()
        kept = await saver.aget_tuple(config("kept"))
        assert kept is not None
        assert kept.checkpoint["channel_values"] == {"round": 1}
        assert [w[1:] for w in kept.pending_writes or []] == [("findings", {"agent": "malware"})]

        with holding() as held:
            await saver.aput(config("dropped"), empty_checkpoint(), {"step": 0}, {})
        assert held.drop() == 1
        await held.write()  # nothing left to write
        assert await saver.aget_tuple(config("dropped")) is None

        # Outside a hold (another task, or after it) a write is made at once.
        await saver.aput(config("direct"), empty_checkpoint(), {"step": 0}, {})
        assert await saver.aget_tuple(config("direct")) is not None
