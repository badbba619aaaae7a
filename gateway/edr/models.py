"""Endpoints and EDR actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class Endpoint(Base):
    """One host: seen in the platform's logs, listed by a connector's inventory, or both (one
    row: a host is keyed by its lower-case short name)."""

    __tablename__ = "edr_endpoints"
    __table_args__ = (
        UniqueConstraint("connector", "native_id", name="uq_edr_endpoints_connector_native"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), unique=True)
    """Lower-case short name (an address, for a host the logs know only by its address)."""
    fqdn: Mapped[str | None] = mapped_column(String(255))
    ips: Mapped[list[str]] = mapped_column(JSON)
    os: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), index=True)
    """``tools.edr.base.EndpointState``: the connector's word; ``unknown`` for a host only
    the logs know."""
    source: Mapped[str] = mapped_column(String(16), index=True)
    """``connector`` (a connector manages it) or ``telemetry`` (only the logs know it)."""
    connector: Mapped[str | None] = mapped_column(String(64), index=True)
    native_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    """A few of the product's own fields (agent version, health)."""
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime | None] = mapped_column(index=True)
    """The latest of the connector's last contact and the newest event in the logs."""
    logs_last_seen: Mapped[datetime | None]
    """The newest event the logs hold about it (None: the logs never named it)."""
    log_events: Mapped[int] = mapped_column(default=0)
    """Events in the logs about it, as of the last refresh."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own hook


class EdrActionRecord(Base):
    """One response action on an endpoint, from request to the product's last word. Its
    ``key`` is unique: an action is carried out by the writer that moved its row to
    ``requested``, so no action reaches a connector twice."""

    __tablename__ = "edr_actions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    endpoint_id: Mapped[str] = mapped_column(String(32), index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    """``isolate | unisolate | scan``."""
    status: Mapped[str] = mapped_column(String(20), index=True)
    """``recorded | proposed | awaiting_approval | denied | expired`` (decided, never carried
    out), ``requested`` (handed to the connector, no answer yet), ``executed`` (the product
    took it, not finished), ``succeeded | failed`` (its last word), ``unknown`` (an attempt
    that died between handing it over and recording the answer: never repeated)."""
    connector: Mapped[str | None] = mapped_column(String(64), index=True)
    native_action_id: Mapped[str | None] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(2000))
    guardrail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The product's receipt, an error's code and reason, what an approver said."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
