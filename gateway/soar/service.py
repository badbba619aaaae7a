"""Playbooks (versioned definitions), their executions and step logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.lookup import get_or_404
from core.db.pages import fetch_page
from gateway.soar.definition import PlaybookDefinition
from gateway.soar.models import ExecutionStep, Playbook, PlaybookExecution, PlaybookVersion
from gateway.soar.schemas import (
    ExecutionQuery,
    ExecutionRead,
    PlaybookQuery,
    PlaybookRead,
    PlaybookSummary,
    StepRead,
    VersionRead,
)

log = logging.getLogger("aurora.soar")

SYSTEM_ACTOR = "system"


def _stored(definition: PlaybookDefinition) -> dict[str, Any]:
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)


_SUMMARY_COLUMNS = tuple(c for c in PlaybookSummary.model_fields if c not in {"steps", "inputs"})


def summary(playbook: Playbook) -> PlaybookSummary:
    """A playbook as lists show it."""
    definition = playbook.definition
    return PlaybookSummary.model_validate(
        {
            **{
                c: getattr(playbook, c)
                for c in PlaybookSummary.model_fields
                if hasattr(playbook, c)
            },
            "steps": len(definition.get("steps") or []),
            "inputs": definition.get("inputs") or {},
        }
    )


async def list_playbooks(*, db: AsyncSession, query: PlaybookQuery) -> tuple[list[Playbook], int]:
    """The playbooks the query's filters match, by id."""
    where: list[Any] = []
    if query.enabled is not None:
        where.append(Playbook.enabled.is_(query.enabled))
    if query.builtin is not None:
        where.append(Playbook.builtin.is_(query.builtin))
    if query.search:
        pattern = f"%{query.search.lower()}%"
        where.append(
            or_(
                func.lower(Playbook.id).like(pattern),
                func.lower(Playbook.name).like(pattern),
                func.lower(func.coalesce(Playbook.description, "")).like(pattern),
            )
        )
    return await fetch_page(
        db, Playbook, where=where, sort="id", limit=query.limit, offset=query.offset
    )


async def save_playbook(
    *,
    db: AsyncSession,
    actor: str,
    definition: PlaybookDefinition,
    source: str,
    media: str,
    builtin: bool = False,
) -> tuple[Playbook, bool]:
    """Store ``definition`` as a new playbook (version 1) or as the next version of the one
    with its id; a definition equal to the newest version adds nothing. The playbook, and
    whether a version was added."""
    stored = _stored(definition)
    playbook = await db.get(Playbook, definition.id, with_for_update=True)
    now = utcnow()
    if playbook is not None and playbook.definition == stored:
        return playbook, False
    if playbook is None:
        playbook = Playbook(
            id=definition.id,
            name=definition.name,
            description=definition.description,
            enabled=True,
            version=1,
            definition=stored,
            builtin=builtin,
            created_by=actor,
            created_at=now,
            updated_by=actor,
            updated_at=now,
        )
        db.add(playbook)
    else:
        playbook.version += 1
        playbook.name = definition.name
        playbook.description = definition.description
        playbook.definition = stored
        playbook.builtin = playbook.builtin and builtin
        playbook.updated_by, playbook.updated_at = actor, now
    db.add(
        PlaybookVersion(
            playbook_id=playbook.id,
            version=playbook.version,
            definition=stored,
            source=source,
            media=media,
            created_by=actor,
            created_at=now,
        )
    )
    await db.commit()
    await db.refresh(playbook)
    return playbook, True


async def install_builtin(*, db: AsyncSession, definitions: Iterable[PlaybookDefinition]) -> int:
    """Add the shipped playbooks a database lacks (and a new version of a shipped one whose
    definition changed, unless an analyst has versioned it since); how many were written."""
    written = 0
    for definition in definitions:
        current = await db.get(Playbook, definition.id)
        if current is not None and not current.builtin:
            continue
        _, added = await save_playbook(
            db=db,
            actor=SYSTEM_ACTOR,
            definition=definition,
            source=definition.model_dump_json(by_alias=True, exclude_none=True),
            media="application/json",
            builtin=True,
        )
        written += added
    return written


async def get_playbook(*, db: AsyncSession, playbook_id: str) -> PlaybookRead:
    """The playbook with its definition, versions and execution counts; AURORA-4040."""
    playbook = await get_or_404(db, Playbook, playbook_id, name="playbook_id")
    versions = await db.scalars(
        select(PlaybookVersion)
        .where(PlaybookVersion.playbook_id == playbook_id)
        .order_by(PlaybookVersion.version.desc())
        .limit(100)
    )
    counts = await db.execute(
        select(PlaybookExecution.status, func.count())
        .where(PlaybookExecution.playbook_id == playbook_id)
        .group_by(PlaybookExecution.status)
    )
    return PlaybookRead.model_validate(
        {
            **summary(playbook).model_dump(),
            "definition": playbook.definition,
            "versions": [VersionRead.model_validate(v) for v in versions],
            "executions": {status: int(n) for status, n in counts.all()},
        }
    )


async def toggle_playbook(
    *, db: AsyncSession, actor: str, playbook_id: str, enabled: bool | None
) -> Playbook:
    """Enable or disable the playbook (flip it when ``enabled`` is None); AURORA-4040.
    Executions already queued still run: a disabled playbook only refuses new ones."""
    playbook = await get_or_404(db, Playbook, playbook_id, name="playbook_id", for_update=True)
    playbook.enabled = (not playbook.enabled) if enabled is None else enabled
    playbook.updated_by, playbook.updated_at = actor, utcnow()
    await db.commit()
    await db.refresh(playbook)
    return playbook


async def list_executions(
    *, db: AsyncSession, query: ExecutionQuery
) -> tuple[list[ExecutionRead], int]:
    """The executions the query's filters match, newest first, each with its step log."""
    where: list[Any] = []
    if query.playbook_id is not None:
        where.append(PlaybookExecution.playbook_id == query.playbook_id)
    if query.status is not None:
        where.append(PlaybookExecution.status == query.status)
    if query.since is not None:
        where.append(PlaybookExecution.created_at >= query.since)
    if query.until is not None:
        where.append(PlaybookExecution.created_at < query.until)
    rows, total = await fetch_page(
        db,
        PlaybookExecution,
        where=where,
        sort="-created_at",
        limit=query.limit,
        offset=query.offset,
    )
    steps: dict[str, list[StepRead]] = {row.id: [] for row in rows}
    if rows:
        for step in await db.scalars(
            select(ExecutionStep)
            .where(ExecutionStep.execution_id.in_(list(steps)))
            .order_by(ExecutionStep.position, ExecutionStep.item, ExecutionStep.started_at)
        ):
            steps[step.execution_id].append(StepRead.model_validate(step))
    return [
        ExecutionRead.model_validate({**_columns(row), "steps": steps[row.id]}) for row in rows
    ], total


async def get_execution(*, db: AsyncSession, execution_id: str) -> ExecutionRead:
    """One execution with its step log; AURORA-4040."""
    row = await get_or_404(db, PlaybookExecution, execution_id, name="execution_id")
    steps = await db.scalars(
        select(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id)
        .order_by(ExecutionStep.position, ExecutionStep.item, ExecutionStep.started_at)
    )
    return ExecutionRead.model_validate(
        {**_columns(row), "steps": [StepRead.model_validate(s) for s in steps]}
    )


def _columns(row: PlaybookExecution) -> dict[str, Any]:
    return {c: getattr(row, c) for c in ExecutionRead.model_fields if c != "steps"}
