"""Cases and what hangs off them: observables, comments, tasks and the audit timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, new_id, utcnow


class Case(Base):
    """One case; deleting it only stamps ``deleted_at`` (the record and its timeline stay)."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    tlp: Mapped[str] = mapped_column(String(20))
    pap: Mapped[str] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JSON)
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None] = mapped_column(index=True)
    deleted_by: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Optimistic concurrency: every UPDATE says WHERE version = <the one read>.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own hook


class CaseObservable(Base):
    """A normalised observable of a case; one (type, value) per case."""

    __tablename__ = "case_observables"
    __table_args__ = (
        UniqueConstraint("case_id", "type", "value", name="uq_case_observables_case_type_value"),
        # "Which other cases saw this?" is one lookup on (type, value).
        Index("ix_case_observables_type_value", "type", "value"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    type: Mapped[str] = mapped_column(String(32))
    subtype: Mapped[str | None] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(2048))
    ioc: Mapped[bool] = mapped_column(default=False)
    sighted: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseComment(Base):
    __tablename__ = "case_comments"
    __table_args__ = (Index("ix_case_comments_case_id_created_at", "case_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseTask(Base):
    __tablename__ = "case_tasks"
    __table_args__ = (Index("ix_case_tasks_case_id_created_at", "case_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(64))
    due_date: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own hook


class CaseEvent(Base):
    """One entry of a case's audit timeline, written in the transaction of the change."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_id_id", "case_id", "id"),)

    # An integer key orders the timeline exactly, even for changes within one clock tick.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(36))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
