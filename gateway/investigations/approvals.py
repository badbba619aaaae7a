"""Human approvals of response actions: requested by a paused investigation, decided over
``/ws/approvals``, expired by the clock (fail closed), cancelled with their investigation.

An approval is decided once: the UPDATE that records a decision only matches a row still
``pending`` and not past its deadline, so two approvers racing, or an approver racing the
clock, cannot both win. The investigation row is locked while its last pending approval is
decided, so exactly one decider puts it back in the queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of, utcnow
from core.db.lookup import get_or_404
from core.errors import ApprovalTimeout, Conflict
from gateway.investigations.models import Approval, Investigation

type Verdict = Literal["approved", "denied"]
REQUEST_KEYS = ("reason", "impact", "guardrail", "provenance")
"""What an approver is shown besides the action and its target: why it was proposed, the
guardrail's decision and its reasons, and where the target came from and what (if anything)
corroborates it."""
_APPROVALS = table_of(Approval)
_ANY_DUE = (
    select(_APPROVALS.c.id)
    .where(_APPROVALS.c.status == "pending", _APPROVALS.c.expires_at <= bindparam("now"))
    .limit(1)
)
"""Whether any pending approval is past its deadline (asked every second)."""


def as_event(approval: Approval) -> dict[str, Any]:
    """An approval as the approvals stream and the receipts show it."""
    return {
        "approval_id": approval.id,
        "investigation_id": approval.investigation_id,
        "action": approval.action,
        "target": approval.target,
        "status": approval.status,
        "requested_at": approval.requested_at.isoformat(),
        "expires_at": approval.expires_at.isoformat(),
        "decided_by": approval.decided_by,
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "comment": approval.comment,
        **{k: approval.request.get(k) for k in REQUEST_KEYS},
    }


async def request(
    db: AsyncSession, investigation_id: str, requests: list[dict[str, Any]], wait: timedelta
) -> list[Approval]:
    """Record what the paused graph asks a human to decide. An approval already recorded (the
    graph paused again after a restart) keeps its state and its deadline."""
    now = utcnow()
    known = {
        a.id: a
        for a in (
            await db.scalars(select(Approval).where(Approval.investigation_id == investigation_id))
        )
    }
    rows = []
    for item in requests:
        approval = known.get(item["approval_id"])
        if approval is None:
            approval = Approval(
                id=item["approval_id"],
                investigation_id=investigation_id,
                action=item["action"],
                target=item["target"],
                request={k: item.get(k) for k in REQUEST_KEYS},
                status="pending",
                requested_at=now,
                expires_at=now + wait,
            )
            db.add(approval)
        rows.append(approval)
    await db.flush()
    return rows


async def list_pending(db: AsyncSession, investigation_id: str | None = None) -> list[Approval]:
    query = select(Approval).where(Approval.status == "pending").order_by(Approval.requested_at)
    if investigation_id is not None:
        query = query.where(Approval.investigation_id == investigation_id)
    return list(await db.scalars(query))


async def decisions(db: AsyncSession, investigation_id: str) -> dict[str, dict[str, Any]] | None:
    """Every approval of the investigation as the graph's resume value; None while any is
    still pending."""
    rows = list(
        await db.scalars(select(Approval).where(Approval.investigation_id == investigation_id))
    )
    if any(a.status == "pending" for a in rows):
        return None
    return {
        a.id: {
            "decision": a.status,
            "by": a.decided_by,
            "at": a.decided_at.isoformat() if a.decided_at else None,
            "comment": a.comment,
        }
        for a in rows
    }


async def requeue_if_decided(db: AsyncSession, investigation_id: str) -> bool:
    """Put a paused investigation whose approvals are all decided back in the queue."""
    still = await db.scalar(
        select(func.count())
        .select_from(Approval)
        .where(Approval.investigation_id == investigation_id, Approval.status == "pending")
    )
    if still:
        return False
    moved = await db.execute(
        update(Investigation)
        .where(Investigation.id == investigation_id, Investigation.status == "awaiting_approval")
        .values(status="queued")
    )
    return bool(getattr(moved, "rowcount", 0))


async def decide(
    db: AsyncSession,
    *,
    approval_id: str,
    actor: str,
    verdict: Verdict,
    comment: str | None,
) -> tuple[Approval, bool]:
    """Record ``actor``'s verdict; the approval, and whether its investigation can go on.
    Unknown → AURORA-4040; past its deadline → AURORA-4080; already decided → AURORA-4090."""
    approval = await get_or_404(db, Approval, approval_id, name="approval_id")
    # Lock the investigation first: deciders of its last approvals take turns (PostgreSQL;
    # SQLite serialises writers anyway).
    await db.execute(
        select(Investigation.id)
        .where(Investigation.id == approval.investigation_id)
        .with_for_update()
    )
    now = utcnow()
    changed = await db.execute(
        update(Approval)
        .where(Approval.id == approval_id, Approval.status == "pending", Approval.expires_at > now)
        .values(status=verdict, decided_by=actor, decided_at=now, comment=comment)
    )
    if not getattr(changed, "rowcount", 0):
        await db.rollback()
        current = await db.get(Approval, approval_id)
        assert current is not None
        if current.status == "expired" or (
            current.status == "pending" and current.expires_at <= now
        ):
            raise ApprovalTimeout({"approval_id": approval_id})
        raise Conflict({"approval_id": approval_id, "status": current.status})
    resumable = await requeue_if_decided(db, approval.investigation_id)
    await db.commit()
    await db.refresh(approval)
    return approval, resumable


async def expire_due(
    db: AsyncSession, now: datetime | None = None
) -> tuple[list[Approval], set[str]]:
    """Expire approvals past their deadline (the actions are not taken); the expired approvals
    and the investigations that can go on."""
    now = now or utcnow()
    # Asked every second, and almost always none: a read of the index, built once, first.
    if (await db.execute(_ANY_DUE, {"now": now})).first() is None:
        return [], set()
    due = list(
        await db.scalars(
            select(Approval).where(Approval.status == "pending", Approval.expires_at <= now)
        )
    )
    if not due:
        return [], set()
    await db.execute(
        update(Approval)
        .where(Approval.id.in_([a.id for a in due]), Approval.status == "pending")
        .values(status="expired", decided_at=now)
    )
    resumable = {
        investigation_id
        for investigation_id in {a.investigation_id for a in due}
        if await requeue_if_decided(db, investigation_id)
    }
    await db.commit()
    for approval in due:
        await db.refresh(approval)
    return due, resumable


async def cancel_pending(db: AsyncSession, investigation_id: str, actor: str) -> list[Approval]:
    """Cancel what the investigation still waits for (the caller commits)."""
    pending = await list_pending(db, investigation_id)
    if pending:
        await db.execute(
            update(Approval)
            .where(Approval.investigation_id == investigation_id, Approval.status == "pending")
            .values(status="cancelled", decided_by=actor, decided_at=utcnow())
        )
    return pending
