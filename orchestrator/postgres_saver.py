"""LangGraph's PostgreSQL checkpointer, its writes held while a run holds them (the
``postgres`` extra; imported only where the platform database is PostgreSQL)."""

from __future__ import annotations

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from orchestrator.checkpoints import HeldWrites


class HeldPostgresSaver(HeldWrites, AsyncPostgresSaver):
    """:class:`AsyncPostgresSaver` whose writes a run can hold
    (:func:`~orchestrator.checkpoints.holding`)."""
