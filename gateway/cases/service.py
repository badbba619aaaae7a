"""Cases: the case workflow, observables (validated, deduplicated, cross-referenced), comments,
tasks, soft deletion and the audit timeline every change writes into."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.commit import check_version, commit_versioned
from core.db.lookup import get_or_404
from core.db.pages import equal, fetch_page, fetch_rows, holds_tag
from core.db.sequences import next_id
from core.errors import CaseNotFound, Conflict, NotFound, ValidationFailed
from core.schemas import SEVERITY_RANK, PageQuery
from core.validation import field_error
from gateway.alerts.models import Alert
from gateway.cases.models import Case, CaseComment, CaseEvent, CaseObservable, CaseTask
from gateway.cases.schemas import (
    TIMELINE_LIMIT,
    CaseCreate,
    CaseListQuery,
    CaseRead,
    CaseStatus,
    CaseUpdate,
    CommentCreate,
    CommentRead,
    ObservableCreate,
    ObservableRead,
    SimilarCase,
    TaskCreate,
    TaskRead,
    TaskStatus,
    TaskUpdate,
)
from tools.ioc import normalise_ioc, refang

S = CaseStatus
TRANSITIONS: Final[dict[CaseStatus, frozenset[CaseStatus]]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.OPEN, S.RESOLVED, S.CLOSED}),
    # Reopening goes back to work, never straight to the untouched "open" queue.
    S.RESOLVED: frozenset({S.IN_PROGRESS, S.CLOSED}),
    S.CLOSED: frozenset({S.IN_PROGRESS}),
}
"""open → in_progress → resolved → closed; a case may be closed at any point (a false
positive), handed back to the queue while in progress, and reopened after it ends."""
ENDED: Final = frozenset({S.RESOLVED, S.CLOSED})

T = TaskStatus
TASK_TRANSITIONS: Final[dict[TaskStatus, frozenset[TaskStatus]]] = {
    T.TODO: frozenset({T.IN_PROGRESS, T.DONE, T.CANCELLED}),
    T.IN_PROGRESS: frozenset({T.TODO, T.DONE, T.CANCELLED}),
    T.DONE: frozenset({T.IN_PROGRESS}),
    T.CANCELLED: frozenset({T.TODO}),
}

# Observable types beyond the indicators of tools.ioc, each with its own rule.
_HOST = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]{0,252})$")
_ASN = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)
_MAC = re.compile(
    r"^[0-9a-f]{2}([:-]?)(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$|^(?:[0-9a-f]{4}\.){2}[0-9a-f]{4}$"
)
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FILENAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")
_ASN_MAX = 4_294_967_295
# Types with a rule of their own even where tools.ioc knows the name: to tools.ioc a
# "hostname" is a DNS domain, but a host observable may be a bare NetBIOS name.
_OWN_RULES: Final = frozenset({"host", "hostname", "user", "filename", "asn", "mac"})


def _bad(reason: str, field: str = "value") -> ValidationFailed:
    return field_error(["body", field], reason)


def normalise_observable(kind: str, value: str) -> tuple[str, str | None, str]:
    """``(type, subtype, value)`` of an observable, validated and normalised; AURORA-4220
    naming the field when either is invalid.

    Indicators (ip, domain, url, email, hash and its md5/sha1/sha256/sha512 subtypes, cve,
    registry_key, attack_technique, and every alias tools.ioc knows, e.g. STIX's
    ``domain-name``) go through :func:`tools.ioc.normalise_ioc`: refanged, canonical, with
    URL paths and registry key paths keeping their case. ``host`` (alias ``hostname``) and
    ``user`` are case-insensitive names and are lower-cased; ``asn`` becomes ``AS<n>``;
    ``mac`` becomes ``aa:bb:cc:dd:ee:ff``; ``filename`` keeps its case (file systems
    differ) but may hold no path separator. Any other type named ``[a-z][a-z0-9_]*``
    (``user_agent``, ``process``...) keeps its value as given, trimmed, without control
    characters.
    """
    key = re.sub(r"[-\s]+", "_", kind.strip().lower())
    text = value.strip()
    if not text:
        raise _bad("an observable value is required")
    if key not in _OWN_RULES:
        try:
            ioc = normalise_ioc(key, text)
        except ValidationFailed as err:
            problem = err.detail[0] if isinstance(err.detail, list) else {}
            if problem.get("type") != "ioc_type_unknown":
                raise _bad(str(problem.get("msg", err.detail))) from err
        else:
            return ioc.type, ioc.subtype, ioc.value
    if not _TYPE_NAME.match(key):
        raise _bad("a type is a-z, 0-9 and _, starting with a letter (at most 32)", "type")
    if _CONTROL.search(text):
        raise _bad(f"a {key} holds no control characters")
    match key:
        case "host" | "hostname":
            host = refang(text).lower().rstrip(".")
            if not _HOST.match(host):
                raise _bad("a host is a name or address of letters, digits, '.', '-', '_'")
            return "host", None, host
        case "user":
            if any(char.isspace() for char in text) or len(text) > 256:
                raise _bad("a user name has no spaces and at most 256 characters")
            return key, None, text.lower()
        case "filename":
            if _FILENAME_FORBIDDEN.search(text) or len(text) > 255:
                raise _bad("a file name has no path separator and at most 255 characters")
            return key, None, text
        case "asn":
            found = _ASN.match(text)
            if found is None or int(found[1]) > _ASN_MAX:
                raise _bad("an AS number is AS<n> or <n>, n from 0 to 4294967295")
            return key, None, f"AS{int(found[1])}"
        case "mac":
            lowered = text.lower()
            if not _MAC.match(lowered):
                raise _bad("a MAC address is six hexadecimal octets")
            digits = re.sub(r"[^0-9a-f]", "", lowered)
            return key, None, ":".join(digits[i : i + 2] for i in range(0, 12, 2))
        case _:
            return key, None, text


def _record(
    db: AsyncSession,
    case_: Case,
    actor: str,
    action: str,
    changes: dict[str, Any],
    target_id: str | None = None,
) -> None:
    db.add(
        CaseEvent(
            case_id=case_.id,
            actor=actor,
            action=action,
            target_id=target_id,
            changes=changes,
            created_at=utcnow(),
        )
    )


def _wire(value: Any) -> Any:
    """A timeline value as JSON can hold it."""
    return value.isoformat() if isinstance(value, datetime) else value


async def get_case(*, db: AsyncSession, case_id: str, include_deleted: bool = False) -> Case:
    """The live case ``case_id`` (or a deleted one, with ``include_deleted``); unknown or
    deleted is AURORA-4041."""
    found = await get_or_404(db, Case, case_id, error=CaseNotFound, name="case_id")
    if found.deleted_at is not None and not include_deleted:
        raise CaseNotFound({"case_id": case_id})
    return found


async def timeline(*, db: AsyncSession, case_id: str) -> list[CaseEvent]:
    """The newest :data:`TIMELINE_LIMIT` timeline entries, newest first."""
    rows = await db.execute(
        select(CaseEvent)
        .where(CaseEvent.case_id == case_id)
        .order_by(CaseEvent.id.desc())
        .limit(TIMELINE_LIMIT)
    )
    return list(rows.scalars())


async def create_case(*, db: AsyncSession, actor: str, body: CaseCreate) -> CaseRead:
    new = await open_case(db=db, actor=actor, body=body)
    return await _save_case(db, new)


async def _save_case(db: AsyncSession, case_: Case) -> CaseRead:
    """Commit the unit of work around ``case_``: its read model is built from the flushed rows
    first, so nothing is committed that cannot be answered; a concurrent edit is AURORA-4090."""
    return await commit_versioned(
        db, kind="case", ident=case_.id, read=lambda: CaseRead.model_validate(case_)
    )


async def list_cases(*, db: AsyncSession, query: CaseListQuery) -> tuple[list[Case], int]:
    """One page of the live cases matching the query's filters, in its order."""
    where = [
        Case.deleted_at.is_(None),
        *equal(
            (Case.status, query.status),
            (Case.severity, query.severity),
            (Case.assignee, query.assignee),
        ),
    ]
    if query.tag is not None:
        where.append(holds_tag(Case.tags, query.tag))
    return await fetch_page(
        db,
        Case,
        where=where,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
        ranked={"severity": SEVERITY_RANK},
    )


def _invalid_transition(kind: str, current: str, target: str, allowed: frozenset[Any]) -> None:
    names = ", ".join(sorted(s.value for s in allowed))
    raise field_error(
        ["body", "status"],
        f"a {kind} cannot go from {current} to {target}; allowed: {names}",
        "invalid_transition",
    )


async def update_case(*, db: AsyncSession, actor: str, case_id: str, body: CaseUpdate) -> CaseRead:
    """Apply a partial update and record what changed (old/new) in the timeline; a stale
    ``version`` or a concurrent edit is AURORA-4090, a status change the workflow does not
    allow is AURORA-4220."""
    found = await get_case(db=db, case_id=case_id)
    check_version(kind="case", ident=case_id, current=found.version, wanted=body.version)
    now = utcnow()
    changes: dict[str, dict[str, Any]] = {}
    for name, value in body.model_dump(exclude_unset=True, exclude={"version"}).items():
        if name in {"title", "severity", "tlp", "pap", "tags", "status"} and value is None:
            continue  # these cannot be emptied; null means "leave as is"
        if name == "status":
            current, target = CaseStatus(found.status), CaseStatus(value)
            if target != current and target not in TRANSITIONS[current]:
                _invalid_transition("case", current.value, target.value, TRANSITIONS[current])
            value = target.value
            if target != current:
                found.closed_at = now if target in ENDED else None
        old = getattr(found, name)
        if old != value:
            changes[name] = {"old": _wire(old), "new": _wire(value)}
            setattr(found, name, value)
    if not changes:
        return CaseRead.model_validate(found)
    found.updated_at = now
    _record(db, found, actor, "case.updated", changes)
    return await _save_case(db, found)


async def delete_case(*, db: AsyncSession, actor: str, case_id: str) -> CaseRead:
    """Soft-delete: the case disappears from every read (AURORA-4041) but stays stored."""
    found = await get_case(db=db, case_id=case_id)
    found.deleted_at, found.deleted_by = utcnow(), actor
    found.updated_at = found.deleted_at
    _record(db, found, actor, "case.deleted", {"title": found.title, "status": found.status})
    return await _save_case(db, found)


async def similar_cases(
    *, db: AsyncSession, case_id: str, observables: list[CaseObservable]
) -> dict[tuple[str, str], list[SimilarCase]]:
    """For each (type, value) of ``observables``, the other live cases holding it: one query
    on the (type, value) index, whatever the number of observables."""
    keys = {(o.type, o.value) for o in observables}
    if not keys:
        return {}
    rows = await db.execute(
        select(CaseObservable.type, CaseObservable.value, Case.id, Case.title)
        .join(Case, Case.id == CaseObservable.case_id)
        .where(
            tuple_(CaseObservable.type, CaseObservable.value).in_(list(keys)),
            CaseObservable.case_id != case_id,
            Case.deleted_at.is_(None),
        )
        .order_by(Case.id)
    )
    found: dict[tuple[str, str], list[SimilarCase]] = {}
    for kind, value, other_id, title in rows:
        found.setdefault((kind, value), []).append(SimilarCase(id=other_id, title=title))
    return found


async def _children[M: (CaseObservable, CaseComment, CaseTask)](
    db: AsyncSession, model: type[M], case_id: str, query: PageQuery
) -> tuple[list[M], int]:
    """One page of a live case's observables, comments or tasks, oldest first."""
    await get_case(db=db, case_id=case_id)
    rows = select(model).where(model.case_id == case_id).order_by(model.created_at, model.id)
    return await fetch_rows(db, rows, limit=query.limit, offset=query.offset)


async def list_observables(
    *, db: AsyncSession, case_id: str, query: PageQuery
) -> tuple[list[CaseObservable], int]:
    """One page of the case's observables, oldest first; AURORA-4041 for no live case."""
    return await _children(db, CaseObservable, case_id, query)


async def list_observable_reads(
    *, db: AsyncSession, case_id: str, query: PageQuery
) -> tuple[list[ObservableRead], int]:
    """:func:`list_observables` as the API shows them, each with the other cases holding it."""
    observables, total = await list_observables(db=db, case_id=case_id, query=query)
    similar = await similar_cases(db=db, case_id=case_id, observables=observables)
    return [observable_read(o, similar) for o in observables], total


async def _existing_observable(
    db: AsyncSession, case_id: str, kind: str, value: str
) -> CaseObservable | None:
    rows = await db.execute(
        select(CaseObservable).where(
            CaseObservable.case_id == case_id,
            CaseObservable.type == kind,
            CaseObservable.value == value,
        )
    )
    return rows.scalar_one_or_none()


def observable_read(
    observable: CaseObservable, similar: dict[tuple[str, str], list[SimilarCase]]
) -> ObservableRead:
    """An observable as the API shows it, with the other cases holding it (``similar``, as
    :func:`similar_cases` finds them)."""
    return ObservableRead.model_validate(observable).model_copy(
        update={"similar_cases": similar.get((observable.type, observable.value), [])}
    )


async def _save_observable(
    db: AsyncSession, case_id: str, observable: CaseObservable
) -> ObservableRead:
    await db.flush()
    similar = await similar_cases(db=db, case_id=case_id, observables=[observable])
    return await commit_versioned(
        db, kind="case", ident=case_id, read=lambda: observable_read(observable, similar)
    )


async def add_observable(
    *, db: AsyncSession, actor: str, case_id: str, body: ObservableCreate
) -> tuple[ObservableRead, bool]:
    """Add an observable; returns (observable, merged).

    A (type, value) the case already holds is AURORA-4090 naming the existing observable,
    unless the caller asked to merge: then the flags are OR-ed, the tags united and a missing
    description filled in.
    """
    kind, subtype, value = normalise_observable(body.type, body.value)
    found = await get_case(db=db, case_id=case_id)
    existing = await _existing_observable(db, case_id, kind, value)
    if existing is None:
        observable = CaseObservable(
            case_id=case_id,
            type=kind,
            subtype=subtype,
            value=value,
            ioc=body.ioc,
            sighted=body.sighted,
            description=body.description,
            tags=body.tags,
            created_by=actor,
            created_at=utcnow(),
        )
        db.add(observable)
        try:
            await db.flush()
        except IntegrityError:
            # Another request added the same observable between our check and our insert.
            await db.rollback()
            existing = await _existing_observable(db, case_id, kind, value)
            if existing is None:
                raise
            found = await get_case(db=db, case_id=case_id)
        else:
            _record(
                db,
                found,
                actor,
                "observable.added",
                {"type": kind, "value": value, "ioc": body.ioc, "sighted": body.sighted},
                observable.id,
            )
            return await _save_observable(db, case_id, observable), False
    if body.on_duplicate == "reject":
        detail = {"existing_observable_id": existing.id, "type": kind, "value": value}
        await db.rollback()
        raise Conflict(detail)
    merged: dict[str, dict[str, Any]] = {}
    for name, new in (
        ("ioc", existing.ioc or body.ioc),
        ("sighted", existing.sighted or body.sighted),
        ("tags", sorted(set(existing.tags) | set(body.tags))),
        ("description", existing.description or body.description),
    ):
        old = getattr(existing, name)
        if old != new:
            merged[name] = {"old": old, "new": new}
            setattr(existing, name, new)
    if merged:
        _record(db, found, actor, "observable.merged", merged, existing.id)
    return await _save_observable(db, case_id, existing), True


async def list_comments(
    *, db: AsyncSession, case_id: str, query: PageQuery
) -> tuple[list[CaseComment], int]:
    """One page of the case's comments, oldest first."""
    return await _children(db, CaseComment, case_id, query)


async def add_comment(
    *, db: AsyncSession, actor: str, case_id: str, body: CommentCreate
) -> CommentRead:
    found = await get_case(db=db, case_id=case_id)
    comment = CaseComment(case_id=case_id, author=actor, body=body.body, created_at=utcnow())
    db.add(comment)
    await db.flush()
    _record(db, found, actor, "comment.added", {"chars": len(body.body)}, comment.id)
    return await commit_versioned(
        db, kind="case", ident=case_id, read=lambda: CommentRead.model_validate(comment)
    )


async def list_tasks(
    *, db: AsyncSession, case_id: str, query: PageQuery
) -> tuple[list[CaseTask], int]:
    """One page of the case's tasks, oldest first."""
    return await _children(db, CaseTask, case_id, query)


async def _save_task(db: AsyncSession, task: CaseTask) -> TaskRead:
    return await commit_versioned(
        db, kind="task", ident=task.id, read=lambda: TaskRead.model_validate(task)
    )


async def create_task(*, db: AsyncSession, actor: str, case_id: str, body: TaskCreate) -> TaskRead:
    found = await get_case(db=db, case_id=case_id)
    now = utcnow()
    task = CaseTask(
        **body.model_dump(),
        case_id=case_id,
        status=TaskStatus.TODO.value,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    db.add(task)
    await db.flush()
    _record(db, found, actor, "task.created", body.model_dump(mode="json"), task.id)
    return await _save_task(db, task)


async def update_task(
    *, db: AsyncSession, actor: str, case_id: str, task_id: str, body: TaskUpdate
) -> TaskRead:
    """Apply a partial update to a task of the case; an unknown task (or one of another case)
    is AURORA-4040, a stale version AURORA-4090, a disallowed status change AURORA-4220."""
    found = await get_case(db=db, case_id=case_id)
    task = await get_or_404(db, CaseTask, task_id, name="task_id")
    if task.case_id != case_id:
        raise NotFound({"task_id": task_id})
    check_version(kind="task", ident=task_id, current=task.version, wanted=body.version)
    changes: dict[str, dict[str, Any]] = {}
    for name, value in body.model_dump(exclude_unset=True, exclude={"version"}).items():
        if name in {"title", "status"} and value is None:
            continue
        if name == "status":
            current, target = TaskStatus(task.status), TaskStatus(value)
            if target != current and target not in TASK_TRANSITIONS[current]:
                _invalid_transition("task", current.value, target.value, TASK_TRANSITIONS[current])
            value = target.value
        old = getattr(task, name)
        if old != value:
            changes[name] = {"old": _wire(old), "new": _wire(value)}
            setattr(task, name, value)
    if not changes:
        return TaskRead.model_validate(task)
    task.updated_at = utcnow()
    _record(db, found, actor, "task.updated", changes, task.id)
    return await _save_task(db, task)


async def attach_observables(
    *,
    db: AsyncSession,
    actor: str,
    case_: Case,
    entities: list[dict[str, Any]],
    origin: str,
) -> tuple[int, list[str]]:
    """Add an alert's entities to a case as observables, in the caller's transaction: new
    ones added, ones the case holds merged (flags kept), invalid ones skipped with a reason.
    Returns (added, skipped)."""
    added = 0
    skipped: list[str] = []
    for entity in entities:
        try:
            kind, subtype, value = normalise_observable(
                str(entity.get("type", "")), str(entity.get("value", ""))
            )
        except ValidationFailed as err:
            reason = err.detail[0]["msg"] if isinstance(err.detail, list) else str(err.detail)
            skipped.append(f"{entity.get('type')} {str(entity.get('value'))[:80]!r}: {reason}")
            continue
        if await _existing_observable(db, case_.id, kind, value) is not None:
            continue
        observable = CaseObservable(
            case_id=case_.id,
            type=kind,
            subtype=subtype,
            value=value,
            ioc=kind != "user",
            sighted=True,
            description=f"from {origin}",
            tags=[],
            created_by=actor,
            created_at=utcnow(),
        )
        db.add(observable)
        await db.flush()
        _record(
            db,
            case_,
            actor,
            "observable.added",
            {"type": kind, "value": value, "origin": origin},
            observable.id,
        )
        added += 1
    return added, skipped


async def open_case(
    *, db: AsyncSession, actor: str, body: CaseCreate, origin: str | None = None
) -> Case:
    """Create a case in the caller's transaction (no commit); its timeline names ``origin``
    (what it was opened from) when there is one."""
    now = utcnow()
    new = Case(
        **body.model_dump(),
        id=await next_id(db, "CASE"),
        status=CaseStatus.OPEN.value,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    db.add(new)
    await db.flush()
    changes = body.model_dump(mode="json")
    if origin is not None:
        changes["origin"] = origin
    _record(db, new, actor, "case.created", changes)
    return new


def record_link(db: AsyncSession, case_: Case, actor: str, alert_id: str) -> None:
    """Note on the case's timeline that an alert was attached to it."""
    _record(db, case_, actor, "alert.linked", {"alert_id": alert_id}, alert_id)


async def linked_alerts(*, db: AsyncSession, case_id: str) -> list[Any]:
    """The alerts promoted to or linked with the case, oldest first."""
    rows = await db.execute(
        select(Alert).where(Alert.case_id == case_id).order_by(Alert.created_at, Alert.id)
    )
    return list(rows.scalars())
