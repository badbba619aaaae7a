"""Evidence: stored content-addressed, every custody event appended to a keyed, hash-chained
ledger (``core.ledger``; the keys live outside the database).

The ledger's length and head hash are also kept on the evidence row, so deleting the newest
entries is caught as well as editing, deleting or reordering any of them. Views of an item's
record are recorded once per reader and view an hour (:data:`VIEW_WINDOW`), so reading a
ledger does not grow it without bound.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.blobs import BlobStore, StagedBlob
from core.db.lookup import get_or_404
from core.db.pages import fetch_rows
from core.db.sequences import next_id
from core.errors import NotFound
from core.ledger import GENESIS, SEAL_ACTION, Keyring, LedgerRow, Verification, verify_chain
from core.schemas import PageQuery
from core.validation import field_error
from gateway.cases.evidence.models import EvidenceItem, EvidenceLedgerEntry
from gateway.cases.evidence.schemas import Ledger, LedgerEntryRead, LedgerVerification
from gateway.cases.models import Case
from gateway.cases.service import get_case

ACTIONS = frozenset({"create", "access", "download", "transfer", "export", "purge", SEAL_ACTION})
VIEW_WINDOW: Final = timedelta(hours=1)
"""A reader's repeated views of one item's record within this window are one ``access`` entry."""
SYSTEM_ACTOR: Final = "aurora"


def _time_text(moment: datetime | None = None) -> str:
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def ledger_fields(entry: EvidenceLedgerEntry) -> dict[str, Any]:
    """What an entry's hash covers besides the previous hash and the key id (which the keyed
    hash binds itself): everything but its own hash."""
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


async def get_evidence(
    *, db: AsyncSession, case_id: str, evidence_id: str, lock: bool = False
) -> EvidenceItem:
    await get_case(db=db, case_id=case_id, include_deleted=True)
    query = select(EvidenceItem).where(
        EvidenceItem.id == evidence_id, EvidenceItem.case_id == case_id
    )
    if lock:  # and re-read: another transaction may have appended since it was loaded
        query = query.with_for_update().execution_options(populate_existing=True)
    item = (await db.execute(query)).scalar_one_or_none()
    if item is None:
        raise NotFound({"evidence_id": evidence_id})
    return item


async def _head_is_legacy(db: AsyncSession, item: EvidenceItem) -> bool:
    if item.ledger_length == 0:
        return False
    key_id = await db.scalar(
        select(EvidenceLedgerEntry.key_id).where(
            EvidenceLedgerEntry.evidence_id == item.id,
            EvidenceLedgerEntry.sequence == item.ledger_length,
        )
    )
    return key_id is None


def _append(
    db: AsyncSession,
    keys: Keyring,
    item: EvidenceItem,
    *,
    action: str,
    actor: str,
    reason: str,
    details: dict[str, Any],
    at: datetime | None = None,
) -> EvidenceLedgerEntry:
    key = keys.active
    entry = EvidenceLedgerEntry(
        evidence_id=item.id,
        sequence=item.ledger_length + 1,
        action=action,
        actor=actor,
        reason=reason,
        at=_time_text(at),
        evidence_sha256=item.sha256,
        details=details,
        previous_hash=item.ledger_head,
        key_id=key.id,
    )
    entry.hash = key.seal(ledger_fields(entry), item.ledger_head)
    db.add(entry)
    item.ledger_length, item.ledger_head = entry.sequence, entry.hash
    return entry


async def _seal_legacy(db: AsyncSession, keys: Keyring, item: EvidenceItem) -> bool:
    """Append the keyed ``seal`` entry to a legacy (unkeyed) ledger whose plain chain still
    verifies; a broken one is left as it is (its verification names where it broke)."""
    entries = await ledger_entries(db=db, evidence_id=item.id)
    rows = [_row(e) for e in entries]
    found = verify_chain(
        rows,
        keys=keys,
        expected_length=item.ledger_length,
        expected_head=item.ledger_head,
        unsealed_legacy=True,
    )
    if not found.valid or not rows or rows[-1].key_id is not None:
        return False
    _append(
        db,
        keys,
        item,
        action=SEAL_ACTION,
        actor=SYSTEM_ACTOR,
        reason="legacy SHA-256 ledger sealed with the ledger key",
        details={"legacy_entries": found.entries, "legacy_head": found.head},
    )
    return True


async def append_custody(
    *,
    db: AsyncSession,
    keys: Keyring,
    item: EvidenceItem,
    action: str,
    actor: str,
    reason: str,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> EvidenceLedgerEntry:
    """Append one custody event to the item's ledger, sealed with the keyring's active key (in
    the caller's transaction; the item row should be locked, see :func:`get_evidence`
    ``lock``). A legacy ledger is sealed first, while the one-time seal has not run yet."""
    if action not in ACTIONS or action == SEAL_ACTION:
        raise field_error(["action"], f"unknown custody action {action!r}")
    if not keys.legacy_sealed and await _head_is_legacy(db, item):
        await _seal_legacy(db, keys, item)
    return _append(
        db, keys, item, action=action, actor=actor, reason=reason, details=details or {}, at=at
    )


async def seal_legacy_ledgers(*, db: AsyncSession, keys: Keyring) -> int:
    """Once (the keyring remembers it): seal every legacy ledger with the ledger key, so that
    its plain SHA-256 links cannot be recomputed any more; the number sealed. Legacy ledgers
    found after that were not written by AuroraSOC and never verify."""
    if keys.legacy_sealed:
        return 0
    last = EvidenceLedgerEntry
    legacy = await db.scalars(
        select(EvidenceItem.id)
        .join(
            last,
            and_(last.evidence_id == EvidenceItem.id, last.sequence == EvidenceItem.ledger_length),
        )
        .where(last.key_id.is_(None))
        .order_by(EvidenceItem.id)
    )
    sealed = 0
    for evidence_id in list(legacy):
        item = (
            await db.execute(
                select(EvidenceItem).where(EvidenceItem.id == evidence_id).with_for_update()
            )
        ).scalar_one()
        sealed += await _seal_legacy(db, keys, item)
        await db.commit()
    keys.mark_legacy_sealed(sealed)
    return sealed


async def add_evidence(
    *,
    db: AsyncSession,
    blobs: BlobStore,
    keys: Keyring,
    case_id: str,
    actor: str,
    name: str,
    content_type: str,
    description: str | None,
    reason: str,
    content: StagedBlob,
) -> EvidenceItem:
    """Put the staged content in place, then record the evidence and its ``create`` custody
    event. If recording fails, a blob this call created is removed again."""
    await get_case(db=db, case_id=case_id)
    stored = await content.commit()
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
            keys=keys,
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


async def list_evidence(
    *, db: AsyncSession, case_id: str, query: PageQuery
) -> tuple[list[EvidenceItem], int]:
    """One page of the live case's evidence, oldest first; AURORA-4041 for no live case."""
    await get_case(db=db, case_id=case_id)
    rows = (
        select(EvidenceItem)
        .where(EvidenceItem.case_id == case_id)
        .order_by(EvidenceItem.created_at, EvidenceItem.id)
    )
    return await fetch_rows(db, rows, limit=query.limit, offset=query.offset)


async def ledger_entries(*, db: AsyncSession, evidence_id: str) -> list[EvidenceLedgerEntry]:
    rows = await db.execute(
        select(EvidenceLedgerEntry)
        .where(EvidenceLedgerEntry.evidence_id == evidence_id)
        .order_by(EvidenceLedgerEntry.sequence, EvidenceLedgerEntry.id)
    )
    return list(rows.scalars())


def _row(entry: EvidenceLedgerEntry) -> LedgerRow:
    return LedgerRow(
        entry.sequence, ledger_fields(entry), entry.previous_hash, entry.hash, entry.key_id
    )


async def check_ledger(
    item: EvidenceItem, entries: list[EvidenceLedgerEntry], keys: Keyring, blobs: BlobStore
) -> Ledger:
    """The item's ledger as the API shows it: verified with the keyring (:func:`verify`), and
    valid only while the stored content still hashes to the evidence digest."""
    result = verify(item, entries, keys)
    blob_intact = None
    if item.purged_at is None:
        blob_intact = blobs.exists(item.sha256) and await asyncio.to_thread(
            blobs.verify, item.sha256
        )
    reason = result.reason if not result.valid else None
    if result.valid and blob_intact is False:
        reason = "the stored content no longer matches"
    return Ledger(
        evidence_id=item.id,
        sha256=item.sha256,
        entries=[LedgerEntryRead.model_validate(e, from_attributes=True) for e in entries],
        verification=LedgerVerification(
            valid=result.valid and blob_intact is not False,
            entries=result.entries,
            expected_entries=item.ledger_length,
            head=result.head,
            broken_at=result.broken_at,
            reason=reason,
            blob_intact=blob_intact,
            legacy_entries=result.legacy,
        ),
    )


def verify(item: EvidenceItem, entries: list[EvidenceLedgerEntry], keys: Keyring) -> Verification:
    """Verify the item's ledger with the keyring (see :func:`core.ledger.verify_chain`)."""
    result = verify_chain(
        [_row(e) for e in entries],
        keys=keys,
        expected_length=item.ledger_length,
        expected_head=item.ledger_head,
    )
    if result.valid and any(e.evidence_sha256 != item.sha256 for e in entries):
        first = next(e.sequence for e in entries if e.evidence_sha256 != item.sha256)
        return Verification(
            False,
            result.entries,
            result.head,
            first,
            "commits to a different evidence digest",
            result.legacy,
        )
    return result


async def purge_evidence(
    *,
    db: AsyncSession,
    blobs: BlobStore,
    keys: Keyring,
    evidence_id: str,
    actor: str,
    reason: str,
) -> EvidenceItem:
    """Remove the content of evidence whose case was deleted (legal hold ends); the purge is
    itself appended to the ledger, and the record stays."""
    item = await get_or_404(db, EvidenceItem, evidence_id, name="evidence_id", for_update=True)
    case = await db.get(Case, item.case_id)
    if case is not None and case.deleted_at is None:
        raise field_error(
            ["evidence_id"], "evidence of an open case cannot be purged", "legal_hold"
        )
    if item.purged_at is None:
        await append_custody(
            db=db, keys=keys, item=item, action="purge", actor=actor, reason=reason
        )
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


async def _viewed_since(
    db: AsyncSession, evidence_id: str, actor: str, what: str, since: datetime
) -> bool:
    entry = EvidenceLedgerEntry
    last = await db.scalar(
        select(entry.at)
        .where(
            entry.evidence_id == evidence_id,
            entry.action == "access",
            entry.actor == actor,
            entry.reason == what,
        )
        .order_by(entry.sequence.desc())
        .limit(1)
    )
    return last is not None and last >= _time_text(since)


async def record_access(
    *,
    db: AsyncSession,
    keys: Keyring,
    case_id: str,
    evidence_id: str,
    actor: str,
    what: str,
    now: datetime | None = None,
) -> tuple[EvidenceItem, list[EvidenceLedgerEntry]]:
    """Record that ``actor`` viewed the evidence's record (``what``: which view) as an
    ``access`` custody event, unless the same reader's same view was recorded within
    :data:`VIEW_WINDOW`; return the item with its whole ledger."""
    now = now or datetime.now(UTC)
    item = await get_evidence(db=db, case_id=case_id, evidence_id=evidence_id)
    since = now - VIEW_WINDOW
    if not await _viewed_since(db, item.id, actor, what, since):
        item = await get_evidence(db=db, case_id=case_id, evidence_id=evidence_id, lock=True)
        if not await _viewed_since(db, item.id, actor, what, since):  # not raced meanwhile
            await append_custody(
                db=db, keys=keys, item=item, action="access", actor=actor, reason=what, at=now
            )
        await db.commit()
    return item, await ledger_entries(db=db, evidence_id=item.id)


async def hand_over(
    *,
    db: AsyncSession,
    blobs: BlobStore,
    keys: Keyring,
    evidence_id: str,
    actor: str,
    action: str,
    reason: str,
    details: dict[str, Any],
) -> tuple[EvidenceItem, Any]:
    """Record a ``download``, ``transfer`` or ``export`` of evidence (the custody event is
    committed before the content is handed over) and return the item with its content."""
    if action not in {"download", "transfer", "export"}:
        raise field_error(["action"], f"not a hand-over: {action!r}")
    item = await get_or_404(db, EvidenceItem, evidence_id, name="evidence_id", for_update=True)
    if item.purged_at is not None:
        raise NotFound({"evidence_id": evidence_id})
    await append_custody(
        db=db, keys=keys, item=item, action=action, actor=actor, reason=reason, details=details
    )
    await db.commit()
    return item, blobs.read_chunks(item.sha256)
