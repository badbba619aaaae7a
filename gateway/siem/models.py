"""Hunts (saved searches over the logs) and their runs; the columns every search run over the
logs has, and those of a row analysts edit under an optimistic version (detection rules share
both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from core.db.base import Base, new_id, utcnow


class Edited:
    """Who wrote the row and when, and its version: a change made against a stale version is
    refused (SQLAlchemy's version counter)."""

    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.version}


class SearchRun:
    """A run of a search over a window of the logs: what it matched, what it cost, who asked."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    matches: Mapped[int] = mapped_column(default=0)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(2000))
    requested_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]


class Hunt(Edited, Base):
    __tablename__ = "hunts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    """``query`` (the search language) or ``sigma``."""
    query: Mapped[str] = mapped_column(Text)
    condition: Mapped[str | None] = mapped_column(Text)
    """The converted condition of a Sigma hunt."""
    lookback_seconds: Mapped[int] = mapped_column(default=86_400)


class HuntRun(SearchRun, Base):
    __tablename__ = "hunt_runs"

    hunt_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16))
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """The first matching events (at most ``HUNT_RESULTS_KEPT``)."""
