"""Suppressions (events a rule matches that raise no alert, until a time) and analysts'
feedback on a rule's alerts (the precision in its metrics)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.validation import field_error
from gateway.detections.events import field_value
from gateway.detections.models import Feedback, Suppression
from gateway.detections.rules import get_rule, rule_rows
from gateway.detections.schemas import FeedbackCreate, SuppressionCreate


async def create_suppression(
    *, db: AsyncSession, rule_id: str, actor: str, body: SuppressionCreate
) -> Suppression:
    """Suppress the rule's matches having ``body.match``'s values; AURORA-4220 when it would
    end in the past."""
    await get_rule(db=db, rule_id=rule_id)
    expires = body.until or utcnow() + timedelta(seconds=body.duration_seconds or 0)
    if expires <= utcnow():
        raise field_error(["body", "until"], "must be in the future")
    suppression = Suppression(
        rule_id=rule_id, match=body.match, reason=body.reason, expires_at=expires, created_by=actor
    )
    db.add(suppression)
    await db.commit()
    return suppression


list_suppressions = partial(rule_rows, model=Suppression)
"""A page of the rule's suppressions, newest first (``db=, rule_id=, query=``)."""


async def active_suppressions(db: AsyncSession, rule_id: str, now: datetime) -> list[Suppression]:
    """The rule's suppressions that have not expired at ``now``."""
    rows = await db.scalars(
        select(Suppression).where(Suppression.rule_id == rule_id, Suppression.expires_at > now)
    )
    return list(rows)


def suppressed_by(event: dict[str, Any], suppressions: list[Suppression]) -> Suppression | None:
    """The first suppression all of whose values the event has (case aside), if any."""
    for suppression in suppressions:
        if all(
            (field_value(event, name) or "").lower() == value.lower()
            for name, value in suppression.match.items()
        ):
            return suppression
    return None


async def count_hits(db: AsyncSession, hits: dict[str, int]) -> None:
    """Add to each suppression's ``hits`` (by its id) what a run suppressed."""
    for suppression_id, count in hits.items():
        await db.execute(
            update(Suppression)
            .where(Suppression.id == suppression_id)
            .values(hits=Suppression.hits + count)
        )
    await db.commit()


async def create_feedback(
    *, db: AsyncSession, rule_id: str, actor: str, body: FeedbackCreate
) -> Feedback:
    await get_rule(db=db, rule_id=rule_id)
    feedback = Feedback(rule_id=rule_id, created_by=actor, **body.model_dump())
    db.add(feedback)
    await db.commit()
    return feedback


list_feedback = partial(rule_rows, model=Feedback)
"""A page of the feedback on the rule, newest first (``db=, rule_id=, query=``)."""
