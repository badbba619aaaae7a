"""Helpers the feed importers share: reading JSON feeds, timestamps, writing to the store."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed
from tools.intel.models import ImportReport, Indicator
from tools.intel.normalise import normalise
from tools.intel.store import IntelStore


def load_json_feed(feed: Path | str | Mapping[str, Any], *, kind: str) -> dict[str, Any]:
    """The JSON object of a feed given as a path or an already-parsed mapping.

    Raises ValidationFailed (naming the file, never its directory) when the file cannot be
    read or is not a JSON object.
    """
    if isinstance(feed, Mapping):
        return dict(feed)
    path = Path(feed)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValidationFailed(
            {"feed": path.name, "reason": f"cannot read {kind} file: {type(err).__name__}"}
        ) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValidationFailed(
            {"feed": path.name, "reason": f"invalid JSON at line {err.lineno}: {err.msg}"}
        ) from err
    if not isinstance(data, dict):
        raise ValidationFailed({"feed": path.name, "reason": f"a {kind} must be a JSON object"})
    return data


def parse_timestamp(value: object) -> datetime | None:
    """A feed timestamp as an aware UTC datetime: ISO 8601 text, a date, or epoch seconds.

    None for an absent or empty value; ValueError for anything else that is not a timestamp.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise ValueError(f"epoch timestamp out of range: {value!r}") from err
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {str(value)[:40]!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise ValueError(f"not an ISO 8601 timestamp: {value[:40]!r}") from err
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def checked(indicator: Indicator) -> Indicator:
    """The indicator with its value normalised; ValueError (the reason) when it is invalid."""
    canonical = normalise(indicator.type, indicator.value)
    return indicator.model_copy(update={"type": canonical.type, "value": canonical.value})


def commit(store: IntelStore, report: ImportReport, indicators: Sequence[Indicator]) -> None:
    """Write checked indicators in one transaction and count them into ``report``."""
    for outcome in store.upsert_many(indicators):
        if outcome == "inserted":
            report.imported += 1
        else:
            report.updated += 1
