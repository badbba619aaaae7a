"""Chat sessions (owned by one user each) and the per-user rate limit."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.engine import upsert_into
from core.db.sequences import next_id
from core.errors import NotFound, RateLimited
from core.schemas import PageQuery
from gateway.auth.service import Principal
from gateway.chat.models import ChatMessage, ChatRateWindow, ChatReport, ChatSession
from gateway.chat.schemas import MessageRead, ReportRead, SessionDetail, SessionRead

WINDOW_SECONDS = 60
DEFAULT_TITLE = "New conversation"
TITLE_CHARS = 80


async def charge(db: AsyncSession, *, username: str, limit: int, now: float | None = None) -> None:
    """Charge one chat request to ``username`` in the current minute, in one statement (atomic
    across gateway replicas, which share the database); AURORA-4290 with ``Retry-After`` (the
    seconds to the next minute) once ``limit`` were charged in it.

    A fixed window per calendar minute: at most ``limit`` in any minute, and at most twice that
    across a minute's boundary."""
    moment = time.time() if now is None else now
    window = int(moment // WINDOW_SECONDS)
    insert = upsert_into(db, ChatRateWindow)
    stale = ChatRateWindow.window != window
    charged = (
        insert.values(username=username, window=window, count=1)
        .on_conflict_do_update(
            index_elements=[ChatRateWindow.username],
            set_={"count": case((stale, 1), else_=ChatRateWindow.count + 1), "window": window},
            where=or_(stale, ChatRateWindow.count < limit),
        )
        .returning(ChatRateWindow.count)
    )
    row = (await db.execute(charged)).one_or_none()
    await db.commit()
    if row is None:
        retry = (window + 1) * WINDOW_SECONDS - moment
        raise RateLimited(
            {"reason": "chat rate limit exceeded", "limit_per_minute": limit},
            retry_after=max(1, int(retry + 0.999)),
        )


def title_from(message: str) -> str:
    """A session's title from its first message: its first line, shortened."""
    line = " ".join(message.strip().split("\n", 1)[0].split())
    if not line:
        return DEFAULT_TITLE
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


async def create_session(
    db: AsyncSession, *, owner: str, title: str | None, commit: bool = True
) -> ChatSession:
    """A new session of ``owner``'s; ``commit=False`` leaves it in the caller's transaction
    (a first turn stores it with its first message, in one commit)."""
    now = utcnow()
    session = ChatSession(
        id=await next_id(db, "CHAT"),
        owner=owner,
        title=(title or "").strip() or DEFAULT_TITLE,
        created_at=now,
        updated_at=now,
        message_count=0,
        subjects={},
        pending=[],
    )
    db.add(session)
    if commit:
        await db.commit()
    return session


async def owned_session(db: AsyncSession, *, session_id: str, owner: str) -> ChatSession:
    """The caller's session; AURORA-4040 for one that does not exist or is someone else's
    (the same answer, so that ids reveal nothing)."""
    session = await db.get(ChatSession, session_id)
    if session is None or session.owner != owner:
        raise NotFound({"session_id": session_id})
    return session


async def list_sessions(
    *, db: AsyncSession, query: PageQuery, caller: Principal
) -> tuple[list[ChatSession], int]:
    mine = ChatSession.owner == caller.username
    total = int(await db.scalar(select(func.count()).select_from(ChatSession).where(mine)) or 0)
    rows = (
        await db.scalars(
            select(ChatSession)
            .where(mine)
            .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
            .offset(query.offset)
            .limit(query.limit)
        )
    ).all()
    return list(rows), total


async def session_detail(db: AsyncSession, *, session: ChatSession) -> SessionDetail:
    messages = (
        await db.scalars(
            select(ChatMessage)
            .where(ChatMessage.session_id == session.id)
            .order_by(ChatMessage.seq)
        )
    ).all()
    reports = (
        await db.scalars(
            select(ChatReport)
            .where(ChatReport.session_id == session.id)
            .order_by(ChatReport.created_at, ChatReport.id)
        )
    ).all()
    return SessionDetail(
        **SessionRead.model_validate(session).model_dump(),
        messages=[MessageRead.model_validate(message) for message in messages],
        reports=[ReportRead.model_validate(report) for report in reports],
        pending=list(session.pending or []),
    )


async def delete_session(db: AsyncSession, *, session_id: str, owner: str) -> None:
    """Delete the caller's session with its messages and reports."""
    session = await owned_session(db, session_id=session_id, owner=owner)
    # Explicit deletes: SQLite enforces the cascade only with foreign keys on, and a bulk
    # delete should not depend on it.
    await db.execute(delete(ChatMessage).where(ChatMessage.session_id == session.id))
    await db.execute(delete(ChatReport).where(ChatReport.session_id == session.id))
    await db.delete(session)
    await db.commit()


def merge_subjects(current: dict[str, list[str]], cited: list[dict[str, str]]) -> dict[str, Any]:
    """``current`` with the alerts, cases, investigations and logs of ``cited`` added, in the
    order first cited (at most 200 of each)."""
    keys = {
        "alert": "alert_ids",
        "case": "case_ids",
        "investigation": "investigation_ids",
        "log": "log_ids",
    }
    merged = {key: list(current.get(key, [])) for key in keys.values()}
    for citation in cited:
        key = keys.get(citation.get("kind", ""))
        if key is None:
            continue
        if citation["id"] not in merged[key] and len(merged[key]) < 200:
            merged[key].append(citation["id"])
    return {key: values for key, values in merged.items() if values}
