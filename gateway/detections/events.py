"""What detections read of a log event: a field's value, when it happened, its key entities,
and a brief of it for the alert it raises."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Final

from core.errors import ValidationFailed
from gateway.alerts.api import normalise_entities
from gateway.alerts.schemas import Entity

ENTITY_FIELDS: Final = (
    ("host.name", "host"),
    ("user.name", "user"),
    ("source.ip", "ip"),
    ("destination.ip", "ip"),
    ("dns.question.name", "domain"),
    ("url.full", "url"),
    ("file.hash.sha256", "hash"),
    ("process.hash.sha256", "hash"),
    ("process.name", "process"),
)
"""The event's normalised columns that name an alert entity, and the entity's type."""

BRIEF_VALUE_CHARS: Final = 4096
"""Longest text value an alert keeps of the event that raised it (the log keeps it whole):
some 40 columns of it always fit an alert's ``raw``."""


def field_value(event: dict[str, Any], name: str) -> str | None:
    """The event's value of ``name``: a normalised column (``host.name``), else one of its
    original fields (``Image``); None when it has neither."""
    if name in event:
        return str(event[name])
    found = (event.get("fields") or {}).get(name)
    return None if found is None else str(found)


def entities(event: dict[str, Any]) -> list[Entity]:
    """The event's key entities that are valid as such; a value an attacker shaped (a DNS name
    that is no domain) is left out rather than costing the alert."""
    found = []
    for name, kind in ENTITY_FIELDS:
        value = event.get(name)
        if value:
            entity = Entity(type=kind, value=str(value)[:2048])
            with contextlib.suppress(ValidationFailed):
                normalise_entities([entity])
                found.append(entity)
    return found


def brief(event: dict[str, Any]) -> dict[str, Any]:
    """The event's normalised columns for an alert's ``raw``, long texts cut short."""
    kept = {}
    for key, value in event.items():
        if key in {"raw", "fields"}:
            continue
        if isinstance(value, str) and len(value) > BRIEF_VALUE_CHARS:
            value = f"{value[:BRIEF_VALUE_CHARS]}... ({len(value)} characters in the log)"
        kept[key] = value
    return kept


def observed_at(event: dict[str, Any]) -> datetime | None:
    """When the event happened, if its timestamp says so with a zone."""
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return None
    with contextlib.suppress(ValueError):
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            return parsed
    return None
