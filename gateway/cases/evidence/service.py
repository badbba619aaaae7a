"""Evidence: stored content-addressed, every custody event appended to a hash-chained ledger.

The ledger's length and head hash are also kept on the evidence row, so deleting the newest
entries is caught as well as editing, deleting or reordering any of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.blobs import BlobStore
from core.db.sequences import next_id
from core.errors import CaseNotFound, NotFound, ValidationFailed
from core.ledger import GENESIS, LedgerRow, Verification, entry_hash, verify_chain
from gateway.cases.evidence.models import EvidenceItem, EvidenceLedgerEntry
from gateway.cases.models import Case

ACTIONS = frozenset({"create", "access", "download", "transfer", "export", "purge"})


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def ledger_fields(entry: EvidenceLedgerEntry) -> dict[str, Any]:
    """What an entry's hash covers: everything but its own hash and the previous one."""
    return {
        "sequence": entry.sequence,
        "evidence_id": entry.evidence_id,
        "action": entry.action,
        "actor": entry.actor,
        "reason": entry.reason,
        "at": entry.at,
        "evidence_sha256": entry.evidence_sha256,
        "details": entry.details,
    }


async def _case(db: AsyncSession, case_id: str, *, include_deleted: bool = False) -> Case:
    case = await db.get(Case, case_id)
    if case is None or (case.deleted_at is not None and not include_deleted):
        raise CaseNotFound({"case_id": case_id})
    return case


async def get_evidence(
    *, db: AsyncSession, case_id: str, evidence_id: str, lock: bool = False
) -> EvidenceItem:
    await _case(db, case_id, include_deleted=True)
    query = select(EvidenceItem).where(
        EvidenceItem.id == evidence_id, EvidenceItem.case_id == case_id
    )
    if lock:
        query = query.with_for_update()
    item = (await db.execute(query)).scalar_one_or_none()
    if item is None:
        raise NotFound({"evidence_id": evidence_id})
    return item


async def append_custody(
    *,
    db: AsyncSession,
    item: EvidenceItem,
    action: str,
    actor: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> EvidenceLedgerEntry:
    """Append one custody event to the item's ledger (in the caller's transaction; the item
    row should be locked, see :func:`get_evidence` ``lock``)."""
    if action not in ACTIONS:
        raise ValidationFailed(
            [
                {
                    "loc": ["action"],
                    "msg": f"unknown custody action {action!r}",
                    "type": "value_error",
                }
            ]
        )
    entry = EvidenceLedgerEntry(
        evidence_id=item.id,
        sequence=item.ledger_length + 1,
        action=action,
        actor=actor,
        reason=reason,
        at=_now_text(),
        evidence_sha256=item.sha256,
        details=details or {},
        previous_hash=item.ledger_head,
    )
    entry.hash = entry_hash(ledger_fields(entry), item.ledger_head)
    db.add(entry)
    item.ledger_length, item.ledger_head = entry.sequence, entry.hash
    return entry


async def add_evidence(
    *,
    db: AsyncSession,
    blobs: BlobStore,
    case_id: str,
    actor: str,
    name: str,
    content_type: str,
    description: str | None,
    reason: str,
    content: AsyncIterable[bytes],
) -> EvidenceItem:
    """Store the content, then record the evidence and its ``create`` custody event.

    Oversized content is AURORA-4220 and nothing is stored; if recording fails, a blob this
    call created is removed again.
    """
    await _case(db, case_id)
    stored = await blobs.put_stream(content)
    try:
        item = EvidenceItem(
            id=await next_id(db, "EVD"),
            case_id=case_id,
            name=name,
            description=description,
            content_type=content_type,
            sha256=stored.sha256,
            size=stored.size,
            created_by=actor,
            ledger_length=0,
            ledger_head=GENESIS,
        )
        db.add(item)
        await append_custody(
            db=db,
            item=item,
            action="create",
            actor=actor,
            reason=reason,
            details={"name": name, "size": stored.size, "content_type": content_type},
        )
        await db.commit()
    except BaseException:
        await db.rollback()
        if stored.created:
            shared = await db.execute(
                select(func.count())
                .select_from(EvidenceItem)
                .where(EvidenceItem.sha256 == stored.sha256)
            )
            if not shared.scalar_one():
                blobs.delete(stored.sha256)
        raise
    return item


async def list_evidence(*, db: AsyncSession, case_id: str) -> list[EvidenceItem]:
    await _case(db, case_id)
    rows = await db.execute(
        select(EvidenceItem)
        .where(EvidenceItem.case_id == case_id)
        .order_by(EvidenceItem.created_at, EvidenceItem.id)
    )
    return list(rows.scalars())


async def ledger_entries(*, db: AsyncSession, evidence_id: str) -> list[EvidenceLedgerEntry]:
    rows = await db.execute(
        select(EvidenceLedgerEntry)
        .where(EvidenceLedgerEntry.evidence_id == evidence_id)
        .order_by(EvidenceLedgerEntry.sequence, EvidenceLedgerEntry.id)
    )
    return list(rows.scalars())


def verify(item: EvidenceItem, entries: list[EvidenceLedgerEntry]) -> Verification:
    rows = [LedgerRow(e.sequence, ledger_fields(e), e.previous_hash, e.hash) for e in entries]
    result = verify_chain(rows, expected_length=item.ledger_length, expected_head=item.ledger_head)
    if result.valid and any(e.evidence_sha256 != item.sha256 for e in entries):
        first = next(e.sequence for e in entries if e.evidence_sha256 != item.sha256)
        return Verification(
            False, result.entries, result.head, first, "commits to a different evidence digest"
        )
    return result


async def purge_evidence(
    *, db: AsyncSession, blobs: BlobStore, evidence_id: str, actor: str, reason: str
) -> EvidenceItem:
    """Remove the content of evidence whose case was deleted (legal hold ends); the purge is
    itself appended to the ledger, and the record stays."""
    item = (
        await db.execute(
            select(EvidenceItem).where(EvidenceItem.id == evidence_id).with_for_update()
        )
    ).scalar_one_or_none()
    if item is None:
        raise NotFound({"evidence_id": evidence_id})
    case = await db.get(Case, item.case_id)
    if case is not None and case.deleted_at is None:
        raise ValidationFailed(
            [
                {
                    "loc": ["evidence_id"],
                    "type": "legal_hold",
                    "msg": "evidence of an open case cannot be purged",
                }
            ]
        )
    if item.purged_at is None:
        await append_custody(db=db, item=item, action="purge", actor=actor, reason=reason)
        item.purged_at, item.purged_by = datetime.now(UTC), actor
        sha256 = item.sha256
        await db.commit()
        shared = await db.execute(
            select(func.count())
            .select_from(EvidenceItem)
            .where(EvidenceItem.sha256 == sha256, EvidenceItem.purged_at.is_(None))
        )
        if not shared.scalar_one():
            blobs.delete(sha256)
    return item


async def record_access(
    *, db: AsyncSession, case_id: str, evidence_id: str, actor: str, what: str
) -> tuple[EvidenceItem, list[EvidenceLedgerEntry]]:
    """Append an ``access`` custody event (someone viewed the evidence's record) and return the
    item with its whole ledger, the new entry included."""
    item = await get_evidence(db=db, case_id=case_id, evidence_id=evidence_id, lock=True)
    await append_custody(db=db, item=item, action="access", actor=actor, reason=what)
    await db.commit()
    return item, await ledger_entries(db=db, evidence_id=item.id)


async def hand_over(
    *,
    db: AsyncSession,
    blobs: BlobStore,
    evidence_id: str,
    actor: str,
    action: str,
    reason: str,
    details: dict[str, Any],
) -> tuple[EvidenceItem, Any]:
    """Record a ``download``, ``transfer`` or ``export`` of evidence (the custody event is
    committed before the content is handed over) and return the item with its content."""
    if action not in {"download", "transfer", "export"}:
        raise ValidationFailed(
            [{"loc": ["action"], "msg": f"not a hand-over: {action!r}", "type": "value_error"}]
        )
    item = (
        await db.execute(
            select(EvidenceItem).where(EvidenceItem.id == evidence_id).with_for_update()
        )
    ).scalar_one_or_none()
    if item is None or item.purged_at is not None:
        raise NotFound({"evidence_id": evidence_id})
    await append_custody(
        db=db, item=item, action=action, actor=actor, reason=reason, details=details
    )
    await db.commit()
    return item, blobs.read_chunks(item.sha256)
