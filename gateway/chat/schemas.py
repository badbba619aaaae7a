"""Request and response bodies of the chat routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGE_CHARS: Final = 32_000
MAX_CONTEXT_ITEMS: Final = 10
MAX_CONTEXT_CHARS: Final = 200_000
"""Per pasted item; the route's body limit bounds them together."""
MAX_BODY_BYTES: Final = 2 * 1024 * 1024


class PastedData(BaseModel):
    """Data the user pastes beside the question (a log excerpt, an email, a WHOIS record):
    shown to the model fenced as untrusted, never as instructions."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="pasted", min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=MAX_CONTEXT_CHARS)


class ChatRequest(BaseModel):
    """One user turn. Without ``session_id`` a new session is opened for it."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    session_id: str | None = Field(default=None, max_length=32)
    context: list[PastedData] = Field(default_factory=list, max_length=MAX_CONTEXT_ITEMS)
    confirm_tool_calls: list[str] = Field(default_factory=list, max_length=16)
    """Ids of tool calls the session holds for confirmation that the user confirms now; the
    others pending are declined."""


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)


class ToolCallRecord(BaseModel):
    """A tool call an answer made or asked to make."""

    id: str
    name: str
    arguments: dict[str, Any]
    provenance: str
    """``user`` (its arguments come from what the user typed), ``data`` (from pasted data or
    a tool's result), or ``model`` (from neither)."""
    status: str
    """``executed``, ``failed``, ``denied`` (the user lacks the permission),
    ``confirmation_required``, ``declined`` or ``confirmed``."""
    reason: str | None = None
    summary: str | None = None


class Citation(BaseModel):
    kind: str
    """``alert``, ``case``, ``investigation``, ``log`` or ``report``."""
    id: str


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    role: str
    content: str
    context: list[dict[str, Any]]
    created_at: datetime
    neutralised: list[str]
    injection: dict[str, Any]
    tool_calls: list[dict[str, Any]]
    citations: list[dict[str, str]]
    redactions: list[dict[str, Any]]
    usage: dict[str, int]
    backend: str | None
    model: str | None
    report_id: str | None


class ReportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    created_at: datetime
    created_by: str
    subjects: dict[str, list[str]]
    sha256: str
    markdown: str
    html: str


class ReportLink(BaseModel):
    id: str
    title: str
    sha256: str
    subjects: dict[str, list[str]]


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    subjects: dict[str, list[str]]


class SessionDetail(SessionRead):
    messages: list[MessageRead]
    reports: list[ReportRead]
    pending: list[dict[str, Any]]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatAnswer(BaseModel):
    """What ``POST /chat/completions`` answers, and the stream's final ``message`` event."""

    session_id: str
    message: MessageRead
    backend: str
    """``llm`` or ``builtin``."""
    model: str | None
    usage: Usage
    citations: list[Citation]
    tool_calls: list[ToolCallRecord]
    pending_confirmation: list[ToolCallRecord]
    report: ReportLink | None
    report_error: str | None
    injection: dict[str, Any]
