"""Syslog lines to :class:`LogEvent`: RFC 5424 and RFC 3164 (BSD) formats.

RFC 5424: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID PARAM="v"...] MSG``, ``-``
for a nil value; the time must be RFC 3339 (nil: the ingest time).

RFC 3164: ``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG``. The PRI may be missing (lines read
from a file); a year or ISO 8601 time right after it is read too (rsyslog writes those). A BSD
time has neither year nor zone: it is taken as UTC, in the ingest time's year, or the year
before when that would put it more than a day after the ingest time. A line whose header does
not parse is kept whole as the message at the ingest time, as RFC 3164 section 4.3.3 tells a
relay to do.

Normalised values: ``event.severity`` is the PRI's severity as syslog numbers it (0 emergency
... 7 debug), ``event.provider`` and ``process.name`` the APP-NAME/TAG, ``host.name`` the
HOSTNAME (``host.ip`` too when it is an address), ``process.pid`` the PROCID when numeric,
``event.code`` the MSGID, ``message`` the MSG. ``fields``: ``syslog.pri``, ``syslog.facility``,
``syslog.severity``, ``syslog.version``, ``syslog.timestamp`` (as written), ``syslog.hostname``,
``syslog.appname``, ``syslog.procid``, ``syslog.msgid``, ``syslog.message``, and each
structured-data parameter as ``<SD-ID>.<PARAM-NAME>`` (``exampleSDID@32473.iut``; a repeated
parameter's values joined with a line feed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from core.logstore.schema import LogEvent
from tools.logs.common import (
    EventRejected,
    Fields,
    Values,
    excerpt,
    make_event,
    parse_timestamp,
    to_int,
    to_ip,
)

_PRI: Final[re.Pattern[str]] = re.compile(r"<(\d{1,3})>")
_RFC5424: Final[re.Pattern[str]] = re.compile(
    r"<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ?"
)
_BSD_TIME: Final[re.Pattern[str]] = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)"
    r"(?:\.(\d{1,6}))?(?: (?:[A-Z]{3,4} )?(\d{4}))?(?= |$)"
)
_ISO_TIME: Final[re.Pattern[str]] = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?(?= |$)"
)
_TAG: Final[re.Pattern[str]] = re.compile(r"([^\s:\[\]]{1,64})(?:\[([^\]\s]{0,64})\])?: ?")
_MONTHS: Final[dict[str, int]] = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_BOM: Final[str] = "\ufeff"
_SD_ESCAPES: Final[frozenset[str]] = frozenset({'"', "\\", "]"})


@dataclass(slots=True)
class SyslogHeader:
    """What a syslog line's header says; absent parts are None."""

    message: str
    """The MSG (or the whole line when no header parsed), BOM removed."""
    pri: int | None = None
    version: int | None = None
    timestamp: datetime | None = None
    timestamp_text: str | None = None
    hostname: str | None = None
    appname: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured: dict[str, str] = field(default_factory=dict)

    @property
    def facility(self) -> int | None:
        return None if self.pri is None else self.pri >> 3

    @property
    def severity(self) -> int | None:
        return None if self.pri is None else self.pri & 7


def infer_year(
    month: int, day: int, clock: tuple[int, int, int, int], received: datetime
) -> datetime | None:
    """A year-less date (BSD syslog, CEF) in UTC: in ``received``'s year, or the year before
    when that would be more than a day after ``received``. None for an impossible date."""
    hour, minute, second, micro = clock
    for year in (received.year, received.year - 1):
        try:
            moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
        except ValueError:
            continue  # 29 February outside a leap year
        if moment <= received + timedelta(days=1):
            return moment
    return None


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _check_pri(text: str) -> int:
    pri = int(text)
    if pri > 191:
        raise EventRejected(f"syslog PRI {pri} is out of range (0-191)")
    return pri


def _parse_structured(text: str, pos: int) -> tuple[dict[str, str], int]:
    """RFC 5424 STRUCTURED-DATA from ``pos``: ``-`` or ``[ID PARAM="VALUE" ...]...``."""
    size = len(text)
    if text.startswith("-", pos):
        pos += 1
        if pos < size and text[pos] != " ":
            raise EventRejected("malformed syslog structured data")
        return {}, pos
    if pos >= size or text[pos] != "[":
        raise EventRejected("malformed syslog structured data: expected '-' or '['")
    found: dict[str, str] = {}
    while pos < size and text[pos] == "[":
        end_id = pos + 1
        while end_id < size and text[end_id] not in " ]":
            end_id += 1
        sd_id = text[pos + 1 : end_id]
        if not sd_id or end_id >= size:
            raise EventRejected("malformed syslog structured data: bad SD-ID")
        pos = end_id
        while text[pos] == " ":
            equals = text.find('="', pos + 1)
            if equals < 0:
                raise EventRejected("malformed syslog structured data: PARAM-NAME without value")
            name = text[pos + 1 : equals]
            if not name or " " in name or "]" in name:
                raise EventRejected("malformed syslog structured data: bad PARAM-NAME")
            pos = equals + 2
            chars: list[str] = []
            while True:
                if pos >= size:
                    raise EventRejected("malformed syslog structured data: unterminated value")
                char = text[pos]
                if char == "\\" and pos + 1 < size and text[pos + 1] in _SD_ESCAPES:
                    chars.append(text[pos + 1])
                    pos += 2
                elif char == '"':
                    pos += 1
                    break
                else:
                    chars.append(char)
                    pos += 1
            key = f"{sd_id}.{name}"
            value = "".join(chars)
            found[key] = f"{found[key]}\n{value}" if key in found else value
            if pos >= size:
                raise EventRejected("malformed syslog structured data: missing ]")
        if text[pos] != "]":
            raise EventRejected("malformed syslog structured data: missing ]")
        pos += 1
    if pos < size and text[pos] != " ":
        raise EventRejected("malformed syslog structured data")
    return found, pos


def _parse_5424(line: str, match: re.Match[str]) -> SyslogHeader:
    pri = _check_pri(match.group(1))
    time_text = match.group(3)
    timestamp = None
    if time_text != "-":
        timestamp = parse_timestamp(time_text)
        if timestamp is None:
            raise EventRejected(f"unreadable RFC 5424 timestamp {excerpt(time_text, 40)!r}")
    pos = match.end()
    if match.group(0).endswith(" "):
        structured, pos = _parse_structured(line, pos)
    else:
        raise EventRejected("RFC 5424 line without STRUCTURED-DATA")
    message = line[pos + 1 :] if pos < len(line) else ""
    return SyslogHeader(
        message=message.removeprefix(_BOM),
        pri=pri,
        version=int(match.group(2)),
        timestamp=timestamp,
        timestamp_text=time_text,
        hostname=_nil(match.group(4)),
        appname=_nil(match.group(5)),
        procid=_nil(match.group(6)),
        msgid=_nil(match.group(7)),
        structured=structured,
    )


def _parse_3164(line: str, received: datetime) -> SyslogHeader:
    pri: int | None = None
    pos = 0
    pri_match = _PRI.match(line)
    if pri_match:
        pri = _check_pri(pri_match.group(1))
        pos = pri_match.end()
    timestamp: datetime | None = None
    time_text: str | None = None
    bsd = _BSD_TIME.match(line, pos)
    iso = None if bsd else _ISO_TIME.match(line, pos)
    if bsd:
        month, day = _MONTHS[bsd.group(1)], int(bsd.group(2))
        clock = (
            int(bsd.group(3)),
            int(bsd.group(4)),
            int(bsd.group(5)),
            int((bsd.group(6) or "0").ljust(6, "0")),
        )
        if bsd.group(7):
            try:
                timestamp = datetime(int(bsd.group(7)), month, day, *clock, tzinfo=UTC)
            except ValueError:
                timestamp = None
        else:
            timestamp = infer_year(month, day, clock, received)
        time_text, pos = bsd.group(0), bsd.end()
    elif iso:
        timestamp = parse_timestamp(iso.group(0))
        time_text, pos = iso.group(0), iso.end()
    if timestamp is None:
        # No readable header: the whole content is the message (RFC 3164 section 4.3.3).
        return SyslogHeader(message=line[pos:].removeprefix(_BOM), pri=pri)
    rest = line[pos:].lstrip(" ")
    hostname: str | None = None
    first, _, after = rest.partition(" ")
    if first and not first.endswith(":") and not first.startswith("CEF:") and "[" not in first:
        hostname, rest = first, after
    appname = procid = None
    tag = _TAG.match(rest)
    if tag and not rest.startswith("CEF:"):
        appname, procid = tag.group(1), tag.group(2) or None
        rest = rest[tag.end() :]
    return SyslogHeader(
        message=rest.removeprefix(_BOM),
        pri=pri,
        timestamp=timestamp,
        timestamp_text=time_text,
        hostname=hostname,
        appname=appname,
        procid=procid,
    )


def parse_header(line: str, *, received: datetime) -> SyslogHeader:
    """The header of a syslog line, RFC 5424 when it says version 1, else RFC 3164.

    Raises :class:`EventRejected` for a PRI above 191, or a malformed RFC 5424 header."""
    match = _RFC5424.match(line)
    if match:
        return _parse_5424(line, match)
    return _parse_3164(line, received)


def add_header(header: SyslogHeader, values: Values, fields: Fields) -> None:
    """Put what ``header`` says into normalised ``values`` and ``syslog.*`` ``fields``."""
    values.put("event.severity", header.severity)
    values.put("host.name", header.hostname)
    values.put("host.ip", to_ip(header.hostname))
    values.put("event.provider", header.appname)
    values.put("process.name", header.appname)
    values.put("process.pid", to_int(header.procid, bits=32))
    values.put("event.code", header.msgid)
    for name, value in (
        ("pri", header.pri),
        ("facility", header.facility),
        ("severity", header.severity),
        ("version", header.version),
        ("timestamp", header.timestamp_text),
        ("hostname", header.hostname),
        ("appname", header.appname),
        ("procid", header.procid),
        ("msgid", header.msgid),
    ):
        if value is not None:
            fields.add(f"syslog.{name}", value)
    for key, value in header.structured.items():
        fields.add(key, value)


def syslog_event(
    header: SyslogHeader, *, raw: str, source: str | None, received: datetime
) -> LogEvent:
    """The :class:`LogEvent` of a parsed syslog line (see the module docstring)."""
    values = Values()
    fields = Fields()
    add_header(header, values, fields)
    values.put("message", header.message)
    fields.add("syslog.message", header.message)
    return make_event(
        timestamp=header.timestamp or received,
        format="syslog",
        source=source,
        raw=raw,
        values=values,
        fields=fields.result(),
    )


def parse_syslog(line: str, *, source: str | None, received: datetime) -> LogEvent:
    """One syslog line (RFC 5424 or RFC 3164) as a :class:`LogEvent`."""
    return syslog_event(
        parse_header(line, received=received), raw=line, source=source, received=received
    )
