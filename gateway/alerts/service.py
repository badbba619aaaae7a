"""Alerts: creation with deduplication by fingerprint, the triage workflow, acknowledgement."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.commit import check_version, commit_versioned
from core.db.lookup import get_or_404
from core.db.pages import equal, fetch_page, holds_tag
from core.db.sequences import next_ids
from core.errors import AlertNotFound, Conflict, DuplicateAlert, ValidationFailed
from core.schemas import SEVERITY_RANK
from core.validation import field_error, validate
from gateway.alerts.models import Alert
from gateway.alerts.schemas import (
    CLOSED,
    AlertCreate,
    AlertListQuery,
    AlertPromote,
    AlertPromoted,
    AlertRead,
    AlertStatus,
    AlertUpdate,
    Entity,
)
from gateway.cases import api as cases
from gateway.cases.models import Case
from gateway.cases.schemas import CaseCreate
from tools.ioc import normalise_ioc

INDICATORS_CACHED: Final = 4096
"""Normalised indicators remembered (the latest used; values are at most 2,048 characters)."""

S = AlertStatus
TRANSITIONS: dict[AlertStatus, frozenset[AlertStatus]] = {
    S.NEW: frozenset({S.ACKNOWLEDGED, S.IN_PROGRESS, S.FALSE_POSITIVE, S.DUPLICATE}),
    S.ACKNOWLEDGED: frozenset({S.IN_PROGRESS, S.RESOLVED, S.FALSE_POSITIVE, S.DUPLICATE}),
    S.IN_PROGRESS: frozenset({S.RESOLVED, S.FALSE_POSITIVE, S.DUPLICATE}),
    # A closed alert can be reopened for more work.
    S.RESOLVED: frozenset({S.IN_PROGRESS}),
    S.FALSE_POSITIVE: frozenset({S.IN_PROGRESS}),
    S.DUPLICATE: frozenset({S.IN_PROGRESS}),
}
"""The triage workflow: new → acknowledged → in_progress → resolved | false_positive |
duplicate, with shortcuts an analyst needs (a new alert can be dismissed at once)."""

# Entity types that are indicators: validated and normalised like observables.
INDICATOR_TYPES = frozenset(
    {
        "ip",
        "ipv4",
        "ipv6",
        "domain",
        "url",
        "email",
        "hash",
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "cve",
        "attack_technique",
    }
)


@functools.lru_cache(maxsize=INDICATORS_CACHED)
def _indicator(kind: str, value: str) -> tuple[tuple[str, Any], ...]:
    """One indicator normalised (:func:`normalise_ioc`), as its fields. Remembered: the alerts
    a detection run raises name the same hosts and addresses again and again, and refanging a
    value costs some 90 µs. An invalid one raises every time (nothing of it is kept)."""
    return tuple(normalise_ioc(kind, value).model_dump(exclude_none=True).items())


def normalise_entities(entities: list[Entity]) -> list[dict[str, Any]]:
    """Indicators validated and normalised (refanged, lower-cased), others trimmed; AURORA-4220
    naming the entity when one is invalid. Deduplicated, in order."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for index, entity in enumerate(entities):
        kind = entity.type.strip().lower()
        if kind in INDICATOR_TYPES:
            try:
                item: dict[str, Any] = dict(_indicator(kind, entity.value))
            except ValidationFailed as err:
                reason = err.detail[0]["msg"] if isinstance(err.detail, list) else str(err.detail)
                raise field_error(["body", "entities", index, "value"], reason) from err
        else:
            value = entity.value.strip()
            if kind in {"host", "hostname", "user", "filename"}:
                value = value.lower()
            item = {"type": kind, "value": value}
        seen.setdefault((item["type"], item["value"]), item)
    return list(seen.values())


def fingerprint(
    *, source: str, rule_id: str | None, title: str, entities: list[dict[str, Any]]
) -> str:
    """Same source, same rule (or title when there is no rule), same key entities → same
    fingerprint, whatever the order or defanging of the entities."""
    what = rule_id or " ".join(title.lower().split())
    keys = sorted(f"{e['type']}:{e['value']}" for e in entities)
    text = "\x1f".join([source.strip().lower(), what, *keys])
    return hashlib.sha256(text.encode()).hexdigest()


async def get_alert(*, db: AsyncSession, alert_id: str, lock: bool = False) -> Alert:
    """The alert ``alert_id`` (with ``lock``, its row locked until commit); AURORA-4042."""
    return await get_or_404(
        db, Alert, alert_id, error=AlertNotFound, name="alert_id", for_update=lock
    )


async def _save(db: AsyncSession, alert: Alert) -> AlertRead:
    """Commit the unit of work around ``alert``: its read model is built from the flushed row
    first, so nothing is committed that cannot be answered; a concurrent edit is AURORA-4090."""
    return await commit_versioned(
        db, kind="alert", ident=alert.id, read=lambda: AlertRead.model_validate(alert)
    )


_OPEN_DUPLICATES: Final = (
    select(Alert)
    .where(
        Alert.fingerprint.in_(bindparam("fingerprints", expanding=True)),
        Alert.last_seen >= bindparam("horizon"),
        Alert.status.not_in(sorted(s.value for s in CLOSED)),
    )
    .order_by(Alert.last_seen)
)
"""The open alerts with any of some fingerprints seen since a moment, the latest last: asked
for every batch of alerts raised (a detection run raises thousands), so built once."""


async def create_alert(
    *, db: AsyncSession, actor: str, body: AlertCreate, dedup_window_seconds: int
) -> tuple[AlertRead, bool]:
    """Create an alert, or find the open one it duplicates within the window, and commit.

    Returns (alert, merged). A duplicate is AURORA-4091 naming the existing alert, unless the
    caller asked to merge: then the existing alert's occurrences and ``last_seen`` go up.
    """
    try:
        [(alert, merged)] = await stage_alerts(
            db=db, actor=actor, bodies=[body], dedup_window_seconds=dedup_window_seconds
        )
    except DuplicateAlert:
        await db.rollback()
        raise
    return await _save(db, alert), merged


async def stage_alerts(
    *, db: AsyncSession, actor: str, bodies: Sequence[AlertCreate], dedup_window_seconds: int
) -> list[tuple[Alert, bool]]:
    """:func:`create_alert` for each of ``bodies`` in turn, in the session's transaction,
    which the caller flushes and commits: for each, (the alert's row, merged). A body merges
    into the open duplicate within the window, one raised by an earlier body included. A
    duplicate a body rejects is AURORA-4091; the transaction is the caller's to roll back.

    Three statements whatever the number of bodies (a detection run raises thousands): their
    ids taken together, their open duplicates read together, their rows inserted at the flush.
    """
    if not bodies:
        return []
    now = utcnow()
    staged = []
    for body in bodies:
        entities = normalise_entities(body.entities)
        print_ = fingerprint(
            source=body.source, rule_id=body.rule_id, title=body.title, entities=entities
        )
        staged.append((body, entities, print_, body.observed_at or now))
    # Taking the ids first locks the counter row until commit: concurrent creates of the same
    # thing cannot both miss each other in the duplicate check below.
    ids = await next_ids(db, "ALRT", len(bodies))
    horizon = now - timedelta(seconds=dedup_window_seconds)
    open_by_print: dict[str, Alert] = {}
    if dedup_window_seconds > 0:
        found = await db.scalars(
            _OPEN_DUPLICATES,
            {"fingerprints": sorted({p for _, _, p, _ in staged}), "horizon": horizon},
        )
        open_by_print = {alert.fingerprint: alert for alert in found}  # the latest wins
    out: list[tuple[Alert, bool]] = []
    for alert_id, (body, entities, print_, observed) in zip(ids, staged, strict=True):
        existing = open_by_print.get(print_)
        if existing is not None:
            if body.on_duplicate == "reject":
                detail = {
                    "existing_alert_id": existing.id,
                    "fingerprint": print_,
                    "occurrences": existing.occurrences,
                }
                raise DuplicateAlert(detail)
            existing.occurrences += 1
            existing.last_seen = max(existing.last_seen, observed)
            existing.first_seen = min(existing.first_seen, observed)
            existing.updated_at = now
            out.append((existing, True))
            continue
        alert = Alert(
            id=alert_id,
            title=body.title,
            description=body.description,
            severity=body.severity,
            status=AlertStatus.NEW.value,
            source=body.source,
            rule_id=body.rule_id,
            assignee=body.assignee,
            tags=body.tags,
            entities=entities,
            raw=body.raw,
            fingerprint=print_,
            occurrences=1,
            first_seen=observed,
            last_seen=observed,
            created_by=actor,
        )
        db.add(alert)
        if dedup_window_seconds > 0 and observed >= horizon:
            open_by_print[print_] = alert  # a later body of the same thing merges into it
        out.append((alert, False))
    return out


async def list_alerts(*, db: AsyncSession, query: AlertListQuery) -> tuple[list[Alert], int]:
    """One page of the alerts matching the query's filters, in its order."""
    where = equal(
        (Alert.status, query.status),
        (Alert.severity, query.severity),
        (Alert.source, query.source),
        (Alert.rule_id, query.rule_id),
        (Alert.assignee, query.assignee),
    )
    if query.tag is not None:
        where.append(holds_tag(Alert.tags, query.tag))
    if query.since is not None:
        where.append(Alert.last_seen >= query.since)
    if query.until is not None:
        where.append(Alert.last_seen <= query.until)
    return await fetch_page(
        db,
        Alert,
        where=where,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
        ranked={"severity": SEVERITY_RANK},
    )


def _transition(alert: Alert, target: AlertStatus, actor: str, now: datetime) -> None:
    current = AlertStatus(alert.status)
    if target == current:
        return
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current]))
        raise field_error(
            ["body", "status"],
            f"an alert cannot go from {current.value} to {target.value}; allowed: {allowed}",
            "invalid_transition",
        )
    if target == AlertStatus.ACKNOWLEDGED or (
        current == AlertStatus.NEW and alert.acknowledged_at is None
    ):
        alert.acknowledged_by, alert.acknowledged_at = actor, now
    alert.closed_at = now if target in CLOSED else None
    alert.status = target.value


async def update_alert(
    *, db: AsyncSession, actor: str, alert_id: str, body: AlertUpdate
) -> AlertRead:
    """Apply a partial update; a stale ``version`` (or a concurrent edit) is AURORA-4090."""
    alert = await get_alert(db=db, alert_id=alert_id)
    check_version(kind="alert", ident=alert_id, current=alert.version, wanted=body.version)
    now = utcnow()
    changes = body.model_dump(exclude_unset=True, exclude={"version", "status"})
    for key, value in changes.items():
        if key in {"title", "severity"} and value is None:
            continue
        setattr(alert, key, value)
    if body.status is not None:
        _transition(alert, body.status, actor, now)
    alert.updated_at = now
    return await _save(db, alert)


async def acknowledge_alert(*, db: AsyncSession, actor: str, alert_id: str) -> AlertRead:
    """Record who acknowledged a new alert and when; a closed alert is AURORA-4220."""
    alert = await get_alert(db=db, alert_id=alert_id)
    status = AlertStatus(alert.status)
    if status in CLOSED:
        raise field_error(
            ["path", "alert_id"],
            f"a {status.value} alert cannot be acknowledged",
            "invalid_transition",
        )
    if alert.acknowledged_at is not None:
        return AlertRead.model_validate(alert)
    now = utcnow()
    alert.acknowledged_by, alert.acknowledged_at = actor, now
    if status == AlertStatus.NEW:
        alert.status = AlertStatus.ACKNOWLEDGED.value
    alert.updated_at = now
    return await _save(db, alert)


def _work_started(alert: Alert, actor: str) -> None:
    now = utcnow()
    if alert.status in {AlertStatus.NEW.value, AlertStatus.ACKNOWLEDGED.value}:
        if alert.acknowledged_at is None:
            alert.acknowledged_by, alert.acknowledged_at = actor, now
        alert.status = AlertStatus.IN_PROGRESS.value
    alert.updated_at = now


def _on_a_case(alert: Alert, reason: str) -> Conflict:
    return Conflict({"alert_id": alert.id, "case_id": alert.case_id, "reason": reason})


async def _put_on_case(db: AsyncSession, actor: str, alert: Alert, case_: Case) -> AlertPromoted:
    """Carry the alert's entities to the case as observables, note the link on the case's
    timeline, start work on the alert, and commit it all."""
    origin = f"alert {alert.id}"
    added, skipped = await cases.attach_observables(
        db=db, actor=actor, case_=case_, entities=alert.entities, origin=origin
    )
    cases.record_link(db, case_, actor, alert.id)
    alert.case_id = case_.id
    _work_started(alert, actor)
    read = await _save(db, alert)
    return AlertPromoted(
        alert=read, case_id=case_.id, observables_added=added, observables_skipped=skipped
    )


async def promote_alert(
    *, db: AsyncSession, actor: str, alert_id: str, body: AlertPromote
) -> AlertPromoted:
    """Open a case from the alert, carrying its entities as observables and linking back, in
    one transaction. An alert already on a case is AURORA-4090 naming it."""
    alert = await get_alert(db=db, alert_id=alert_id, lock=True)
    if alert.case_id is not None:
        raise _on_a_case(alert, "the alert is already on a case")
    fields: dict[str, Any] = {
        "title": alert.title,
        "description": alert.description,
        "severity": alert.severity,
        "tags": alert.tags,
        **body.model_dump(exclude_none=True),
    }
    case_body = validate(CaseCreate, fields)
    case_ = await cases.open_case(db=db, actor=actor, body=case_body, origin=f"alert {alert.id}")
    return await _put_on_case(db, actor, alert, case_)


async def link_alert(*, db: AsyncSession, actor: str, alert_id: str, case_id: str) -> AlertPromoted:
    """Attach the alert (and its entities, as observables) to an existing case. Linking it
    again to the same case changes nothing; to another case is AURORA-4090."""
    alert = await get_alert(db=db, alert_id=alert_id, lock=True)
    case_ = await cases.get_case(db=db, case_id=case_id)
    if alert.case_id == case_.id:
        return AlertPromoted(
            alert=AlertRead.model_validate(alert),
            case_id=case_.id,
            observables_added=0,
            observables_skipped=[],
        )
    if alert.case_id is not None:
        raise _on_a_case(alert, "the alert is already on another case")
    return await _put_on_case(db, actor, alert, case_)
