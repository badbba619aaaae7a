"""Format detection and dispatch: one decoded JSON object, or one text line, to a
:class:`LogEvent`.

Detection, unless the caller names the format (the route's ``?format=``):

- a JSON object: ``windows`` when it has ``Event.System`` (nested layout) or ``EventID`` beside
  ``Channel``/``Computer``/``Provider_Name`` (flat layout); else ``suricata`` when it has a
  string ``event_type`` beside ``src_ip``, ``flow_id`` or ``timestamp``; else ``zeek`` when it
  has ``ts`` beside ``uid``, ``fuid``, ``_path`` or ``id.orig_h``; else ``netflow`` when it
  is a flow record as goflow2 or nfdump write it (:func:`tools.logs.netflow.flow_collector`);
  else ``json``;
- a text line: ``cef`` when it starts with ``CEF:`` or its syslog message does; a line starting
  with ``{`` is a JSON object (detected as above); anything else is ``syslog``, whose parser
  keeps even a header-less line (RFC 3164 section 4.3.3).

A named format is applied as is: a JSON object under ``cef``/``syslog``, or a text line that is
not JSON under a JSON format, is rejected rather than guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from core.errors import ValidationFailed
from core.logstore.schema import FORMATS, LogEvent
from tools.logs.cef import is_cef, parse_cef
from tools.logs.common import EventRejected
from tools.logs.generic import parse_json
from tools.logs.netflow import is_netflow, parse_netflow
from tools.logs.network import is_suricata, is_zeek, parse_suricata, parse_zeek
from tools.logs.syslog import parse_header, syslog_event
from tools.logs.windows import is_windows, parse_windows

type ObjectParser = Callable[..., LogEvent]

OBJECT_PARSERS: Final[dict[str, ObjectParser]] = {
    "windows": parse_windows,
    "suricata": parse_suricata,
    "zeek": parse_zeek,
    "netflow": parse_netflow,
    "json": parse_json,
}
"""The parsers of decoded JSON objects, by format."""
TEXT_FORMATS: Final[frozenset[str]] = frozenset({"syslog", "cef"})
"""The formats read from text lines rather than JSON objects."""


def check_format(format: str | None) -> str | None:
    """``format`` when it names a known format (case-insensitive; None or empty: detect).

    Raises :class:`~core.errors.ValidationFailed` for an unknown name."""
    if format is None or not format.strip():
        return None
    name = format.strip().lower()
    if name not in FORMATS:
        raise ValidationFailed(
            {"format": format, "allowed": list(FORMATS)},
            message=f"Unknown log format; expected one of {', '.join(FORMATS)}",
        )
    return name


def detect(obj: Mapping[str, Any]) -> str:
    """The format of a decoded JSON object (see the module docstring)."""
    if is_windows(obj):
        return "windows"
    if is_suricata(obj):
        return "suricata"
    if is_zeek(obj):
        return "zeek"
    if is_netflow(obj):
        return "netflow"
    return "json"


def detect_line(line: str, *, received: datetime | None = None) -> str:
    """The format of a text line: ``json``-family (starts with ``{``), ``cef`` or ``syslog``.

    A JSON line answers ``json`` here; :func:`detect` tells its format once decoded."""
    text = line.lstrip()
    if text.startswith("{"):
        return "json"
    if is_cef(text):
        return "cef"
    try:
        header = parse_header(text, received=received or datetime.now(UTC))
    except EventRejected:
        return "syslog"
    return "cef" if is_cef(header.message) else "syslog"


def parse_object(
    obj: Mapping[str, Any],
    *,
    raw: str,
    source: str | None = None,
    format: str | None = None,
    received: datetime | None = None,
) -> LogEvent:
    """One decoded JSON object as a :class:`LogEvent`, by ``format`` or by :func:`detect`.

    ``raw`` is its original text; ``received`` the ingest time (now when None), used when the
    event carries no time. Raises :class:`EventRejected` for an event its parser cannot read,
    :class:`~core.errors.ValidationFailed` for an unknown ``format``."""
    name = check_format(format) or detect(obj)
    if name in TEXT_FORMATS:
        raise EventRejected(f"format {name!r} reads text lines, and this is a JSON object")
    parser = OBJECT_PARSERS[name]
    result: LogEvent = parser(obj, raw=raw, source=source, received=received or _now())
    return result


def decode_json_object(text: str) -> dict[str, Any]:
    """``text`` decoded as one JSON object. Raises :class:`EventRejected` for invalid JSON,
    another JSON type, NaN/Infinity, or nesting too deep to decode."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as first:
        # orjson refuses integers beyond 64 bits, which JSON allows; the standard decoder
        # takes them (and is the one that must say what is wrong otherwise).
        try:
            value = STRICT_DECODER.decode(text)
        except (json.JSONDecodeError, ValueError, RecursionError) as err:
            raise EventRejected(json_error(err)) from first
    if not isinstance(value, dict):
        raise EventRejected(f"expected a JSON object, got {json_type(value)}")
    return value


def parse_line(
    line: str,
    *,
    source: str | None = None,
    format: str | None = None,
    received: datetime | None = None,
) -> LogEvent:
    """One text line (syslog, CEF, or a JSON object) as a :class:`LogEvent`.

    Raises :class:`EventRejected` for a line its parser cannot read,
    :class:`~core.errors.ValidationFailed` for an unknown ``format``."""
    name = check_format(format)
    now = received or _now()
    text = line.rstrip("\r\n")
    stripped = text.lstrip()
    if (name is None and stripped.startswith("{")) or name in OBJECT_PARSERS:
        return parse_object(
            decode_json_object(stripped), raw=stripped, source=source, format=name, received=now
        )
    if is_cef(stripped):
        if name == "syslog":
            raise EventRejected("format 'syslog' but the line is a bare CEF record")
        return parse_cef(stripped, raw=text, source=source, received=now)
    header = parse_header(text, received=now)
    if is_cef(header.message) and name != "syslog":
        return parse_cef(header.message, raw=text, source=source, received=now, header=header)
    if name == "cef":
        raise EventRejected("format 'cef' but the line holds no CEF record")
    return syslog_event(header, raw=text, source=source, received=now)


def _now() -> datetime:
    return datetime.now(UTC)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


STRICT_DECODER: Final[json.JSONDecoder] = json.JSONDecoder(parse_constant=_reject_constant)
"""The standard decoder, refusing the NaN and Infinity that JSON does not have."""


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def json_error(err: Exception) -> str:
    """A short reason for a JSON decoding failure (position, not the input)."""
    if isinstance(err, json.JSONDecodeError):
        return f"invalid JSON: {err.msg} at column {err.colno}"
    if isinstance(err, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {err}"
