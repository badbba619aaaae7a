"""Playbooks and their versions, executions and their step logs, automation rules and their
firings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class Playbook(Base):
    """A playbook: its newest version's definition, and whether it may run."""

    __tablename__ = "playbooks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The definition's slug (``phishing-triage``)."""
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True, index=True)
    version: Mapped[int] = mapped_column(default=1)
    """The newest version's number (each create of the same id adds one)."""
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The newest version's definition, validated."""
    builtin: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlaybookVersion(Base):
    """One version of a playbook, as submitted and as validated; executions pin one."""

    __tablename__ = "playbook_versions"

    playbook_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("playbooks.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text)
    """The definition as submitted (YAML or JSON text)."""
    media: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlaybookExecution(Base):
    """One run of one playbook version, durable: it resumes after a restart."""

    __tablename__ = "playbook_executions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """``PBX-YYYY-NNNNN``."""
    playbook_id: Mapped[str] = mapped_column(String(64), index=True)
    playbook_version: Mapped[int]
    status: Mapped[str] = mapped_column(String(24), index=True)
    """``queued | running | awaiting_approval | completed | failed | cancelled``."""
    mode: Mapped[str] = mapped_column(String(16))
    """The system mode when it was queued; it runs under it to the end."""
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What started it: ``{"kind": "manual"}`` or an automation rule and its event."""
    depth: Mapped[int] = mapped_column(default=0)
    """How many automation firings led to it (the loop guard's count)."""
    requested_by: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(128))
    """The gateway replica running it (``host:pid:tag``), while it runs."""
    heartbeat_at: Mapped[datetime | None]
    """When its owner last said it was still running it."""
    finished_at: Mapped[datetime | None]


class ExecutionStep(Base):
    """One step of an execution (one item of a loop), with what went in and came out."""

    __tablename__ = "playbook_execution_steps"
    __table_args__ = (Index("ix_playbook_execution_steps_run", "execution_id", "position"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    """``<execution id>/<step id>#<item>``: also its ledger key and its approval's id."""
    execution_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("playbook_executions.id", ondelete="CASCADE")
    )
    position: Mapped[int]
    """The step's place in the definition."""
    step_id: Mapped[str] = mapped_column(String(32))
    item: Mapped[int | None]
    """The loop item's index (None: not a loop)."""
    uses: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    """``running | succeeded | failed | skipped | recorded | proposed | awaiting_approval |
    denied | expired | unknown``."""
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    output: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    guardrail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[float | None] = mapped_column(Float)


class AutomationRule(Base):
    """When an event of ``trigger`` matches ``conditions``, take ``actions``; at most
    ``max_per_minute`` times a minute and ``max_depth`` firings deep."""

    __tablename__ = "automation_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """``AR-YYYY-NNNNN``."""
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True, index=True)
    trigger: Mapped[str] = mapped_column(String(32), index=True)
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    max_per_minute: Mapped[int] = mapped_column(default=60)
    max_depth: Mapped[int] = mapped_column(default=2)
    fired: Mapped[int] = mapped_column(default=0)
    skipped_loop: Mapped[int] = mapped_column(default=0)
    """Matching events not acted on: the loop guard stopped them."""
    skipped_rate: Mapped[int] = mapped_column(default=0)
    """Matching events not acted on: over the rule's rate."""
    failed: Mapped[int] = mapped_column(default=0)
    last_fired_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_by: Mapped[str] = mapped_column(String(64))
    """Who last created, enabled or disabled it."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutomationFiring(Base):
    """One matching event and what the rule did with it (``fired``, ``loop_guard``,
    ``rate_limited``, ``failed``)."""

    __tablename__ = "automation_firings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("automation_rules.id", ondelete="CASCADE"), index=True
    )
    topic: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64))
    """The id of what the event is about (an alert, an investigation)."""
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    depth: Mapped[int] = mapped_column(default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
