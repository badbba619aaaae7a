"""Hunts: saved searches over the logs (the search language, or a Sigma rule converted once),
run over a window on demand, each run and its first results kept."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.db.base import utcnow
from core.db.commit import check_version, commit_versioned
from core.db.lookup import get_or_404
from core.db.pages import fetch_page
from core.db.sequences import next_id
from core.errors import AuroraError
from core.logstore.query import compile_query
from core.logstore.store import LogStore
from core.schemas import PageQuery
from core.validation import EARLIEST, field_error
from gateway.detections.api import SigmaConverter
from gateway.siem.models import Hunt, HuntRun
from gateway.siem.schemas import HuntCreate, HuntLastRun, HuntRead, HuntUpdate
from tools.sigma import check_logsource

HUNT_RESULTS_KEPT: Final = 500


async def _condition(kind: str, query: str, converter: SigmaConverter) -> str | None:
    """The converted condition of a Sigma hunt (AURORA-4222 when it is not valid Sigma, or when
    its logsource maps to no events: it would find nothing); a search is checked now
    (AURORA-4220) rather than at its first run."""
    if kind == "sigma":
        conversion = await converter.convert(query)
        check_logsource(conversion)
        return conversion.condition
    compile_query(query)
    return None


async def create_hunt(
    *, db: AsyncSession, converter: SigmaConverter, actor: str, body: HuntCreate
) -> Hunt:
    hunt = Hunt(
        id=await next_id(db, "HUNT"),
        name=body.name,
        description=body.description,
        kind=body.kind,
        query=body.query,
        condition=await _condition(body.kind, body.query, converter),
        lookback_seconds=body.lookback_seconds,
        created_by=actor,
    )
    db.add(hunt)
    await db.commit()
    return hunt


async def get_hunt(*, db: AsyncSession, hunt_id: str) -> Hunt:
    """The hunt; AURORA-4040 naming ``hunt_id`` when there is none."""
    return await get_or_404(db, Hunt, hunt_id, name="hunt_id")


async def update_hunt(
    *, db: AsyncSession, converter: SigmaConverter, hunt_id: str, body: HuntUpdate
) -> Hunt:
    """Apply the changes; AURORA-4090 when ``body.version`` is stale or another writer changed
    the hunt first."""
    hunt = await get_hunt(db=db, hunt_id=hunt_id)
    check_version(kind="hunt", ident=hunt_id, current=hunt.version, wanted=body.version)
    kind = body.kind or hunt.kind
    query = body.query or hunt.query
    if body.kind is not None or body.query is not None:
        hunt.condition = await _condition(kind, query, converter)
        hunt.kind, hunt.query = kind, query
    for name in ("name", "description", "lookback_seconds"):
        value = getattr(body, name)
        if value is not None:
            setattr(hunt, name, value)
    hunt.updated_at = utcnow()
    await commit_versioned(db, kind="hunt", ident=hunt_id)
    return hunt


async def list_hunts(*, db: AsyncSession, query: PageQuery) -> tuple[list[HuntRead], int]:
    """A page of hunts, newest first, each with its newest run in brief."""
    rows, total = await fetch_page(
        db, Hunt, where=[], sort="-created_at", limit=query.limit, offset=query.offset
    )
    latest = await _last_runs(db, [h.id for h in rows])
    items = [
        HuntRead.model_validate(h).model_copy(update={"last_run": latest.get(h.id)}) for h in rows
    ]
    return items, total


async def _last_runs(db: AsyncSession, hunt_ids: list[str]) -> dict[str, HuntLastRun]:
    latest: dict[str, HuntLastRun] = {}
    runs = await db.scalars(
        select(HuntRun).where(HuntRun.hunt_id.in_(hunt_ids)).order_by(HuntRun.started_at)
    )
    for run in runs:
        latest[run.hunt_id] = HuntLastRun.model_validate(run)  # the newest wins
    return latest


async def run_hunt(
    *,
    database: Database,
    store: LogStore,
    hunt_id: str,
    start: datetime | None,
    end: datetime | None,
    actor: str,
) -> HuntRun:
    """Run the hunt over ``[start, end)`` (by default its lookback up to now) and keep the run
    and its first results; AURORA-4220 when the window is empty."""
    async with database.session() as db:
        hunt = await get_hunt(db=db, hunt_id=hunt_id)
        end = end or utcnow()
        # A lookback from an early end stops where the store's timestamps begin.
        start = start or max(EARLIEST, end - timedelta(seconds=hunt.lookback_seconds))
        if end <= start:
            raise field_error(["body", "end"], "end must be after start")
        kind, query, condition = hunt.kind, hunt.query, hunt.condition
    started = time.perf_counter()
    run = HuntRun(
        hunt_id=hunt_id, window_start=start, window_end=end, requested_by=actor, results=[]
    )
    try:
        if kind == "sigma":
            sql, parameters = condition or "0", {}
        else:
            compiled = compile_query(query)
            sql, parameters = compiled.sql, compiled.parameters
        total, events = await store.matching(
            sql, parameters, start=start, end=end, limit=HUNT_RESULTS_KEPT
        )
        run.matches, run.results, run.status = total, events, "succeeded"
    except AuroraError as err:
        run.status, run.error = "failed", err.message
    run.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    run.finished_at = utcnow()
    async with database.session() as db:
        db.add(run)
        await db.commit()
        await db.refresh(run)
    return run
