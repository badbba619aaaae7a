"""Runtime settings and the history of their changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class RuntimeSetting(Base):
    """One runtime knob's current value."""

    __tablename__ = "runtime_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class RuntimeSettingChange(Base):
    """Who changed which knobs when, with old and new values."""

    __tablename__ = "runtime_settings_history"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    changed_by: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
