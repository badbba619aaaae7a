"""Any JSON object to :class:`LogEvent`: the fallback when no specific parser claims it.

The time is the first of ``@timestamp``, ``timestamp``, ``time``, ``ts``, ``TimeCreated`` that
reads as one (ISO 8601 text, or epoch seconds/milliseconds as a number or digits); with none of
them present, the ingest time. Keys that are ECS names of the table's fields, written dotted
(``"host.name": "web1"``) or nested (``{"host": {"name": "web1"}}``), are taken as those fields
when their value is valid for the field's kind (a list gives its first item); ``fields`` holds
every leaf, flattened by the rule of :mod:`tools.logs.common`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from core.logstore.schema import FIELDS, LogEvent
from tools.logs.common import Fields, Values, first_timestamp, lookup, make_event

TIMESTAMP_KEYS: Final[tuple[str, ...]] = ("@timestamp", "timestamp", "time", "ts", "TimeCreated")
_ECS_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FIELDS if f.name != "timestamp")


def parse_json(
    obj: Mapping[str, Any], *, raw: str, source: str | None, received: datetime
) -> LogEvent:
    """A JSON object of no known format as a :class:`LogEvent` (see the module docstring).

    Raises :class:`~tools.logs.common.EventRejected` when a timestamp key is present but none
    of them reads as a time."""
    fields = Fields()
    fields.add_tree(obj)
    timestamp, _ = first_timestamp(
        [(key, obj.get(key)) for key in TIMESTAMP_KEYS], received=received
    )
    values = Values()
    for name in _ECS_NAMES:
        value = lookup(obj, obj, name)
        if isinstance(value, list):
            value = next((item for item in value if not isinstance(item, dict | list)), None)
        values.put(name, value)
    return make_event(
        timestamp=timestamp,
        format="json",
        source=source,
        raw=raw,
        values=values,
        fields=fields.result(),
    )
