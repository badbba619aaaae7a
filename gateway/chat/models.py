"""Chat state: sessions, their messages and reports, and the per-user rate windows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class ChatSession(Base):
    """One conversation, owned by the user who made it and seen by no one else."""

    __tablename__ = "chat_sessions"
    __table_args__ = (Index("ix_chat_sessions_owner_updated_at", "owner", "updated_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """``CHAT-YYYY-NNNNN``."""
    owner: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    message_count: Mapped[int] = mapped_column(default=0)
    subjects: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    """The platform objects the conversation has been about, as cited by its answers:
    ``{"alert_ids": [...], "case_ids": [...], "investigation_ids": [...], "log_ids": [...]}``;
    a report is built from these unless the request names its own."""
    pending: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Tool calls waiting for the user's confirmation: ``{"id", "name", "arguments",
    "reason"}``. The next turn confirms some of them; the rest are declined then."""


class ChatMessage(Base):
    """One turn of a conversation: the user's (as the model saw it, with what was changed and
    what the injection detector found) or the assistant's (as scrubbed, with its tool calls,
    citations and usage)."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_session_seq", "session_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    """``user`` or ``assistant``."""
    content: Mapped[str] = mapped_column(Text)
    context: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Data the user pasted with the turn (``{"name", "content"}``): fenced as untrusted."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    neutralised: Mapped[list[str]] = mapped_column(JSON, default=list)
    """What neutralising the user's text changed (kinds, not text)."""
    injection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The injection detector's verdict on the turn's text, its pasted data and the tool
    results the answer read: ``{"flagged": bool, "hits": [{"where", "family", "excerpt"}]}``."""
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    citations: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    redactions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    usage: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    backend: Mapped[str | None] = mapped_column(String(16))
    """``llm`` or ``builtin`` for an assistant turn."""
    model: Mapped[str | None] = mapped_column(String(200))
    report_id: Mapped[str | None] = mapped_column(String(32))


class ChatReport(Base):
    """An incident report a conversation asked for, as built then (Markdown and HTML)."""

    __tablename__ = "chat_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """``RPT-YYYY-NNNNN``."""
    session_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    title: Mapped[str] = mapped_column(String(300))
    subjects: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    markdown: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


class ChatRateWindow(Base):
    """Chat requests charged to a user in the current minute, in the database every gateway
    replica shares (so the limit holds across them)."""

    __tablename__ = "chat_rate_windows"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    window: Mapped[int] = mapped_column(Integer)
    """The minute (seconds since the epoch // 60) the count is for."""
    count: Mapped[int] = mapped_column(Integer)
