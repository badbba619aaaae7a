"""A whole ingest payload to events: what ``POST /siem/logs/ingest`` hands over.

The body is read as:

- an EVTX file, when it starts with the ``ElfFile`` signature (whatever the content type); a
  body named ``*.evtx`` or sent as ``application/x-evtx`` without that signature is rejected;
- JSON, when the content type is JSON (``application/json``, ``application/x-ndjson``,
  ``application/jsonl``, ``*+json``...) or the body starts with ``{`` or ``[``, unless the
  format named is ``syslog`` or ``cef``: one object, an array of objects, NDJSON (one object
  per line), or objects one after another (pretty-printed, as ``jq`` writes them);
- a Zeek ASCII log (tab-separated, ``#separator`` first: :mod:`tools.logs.zeek_tsv`), read
  whole, its records as the Zeek JSON writer would write them;
- otherwise text lines: syslog (RFC 5424, RFC 3164) or CEF, and JSON objects on lines of their
  own.

Text is UTF-8 (a UTF-8 BOM is skipped; a UTF-16 BOM, as Windows PowerShell writes, switches to
UTF-16). In JSON a line that is not UTF-8 is rejected; in text lines its bad bytes are kept as
``\\xNN`` escapes, since syslog senders often write legacy encodings. Empty lines are skipped.

A body read line by line (NDJSON, syslog, CEF) can also be parsed in pieces split at line
boundaries (:func:`body_layout` says from its first bytes whether it is; :func:`parse_lines`
parses a piece, its lines numbered as in the whole body), so that a large body is never held
whole; a JSON array, JSON objects one after another, UTF-16 text and EVTX need the whole body.

Nothing in the body costs more than itself: a malformed NDJSON line, array element or EVTX
record is one :class:`Rejected` entry (where, why, and a short excerpt) and reading goes on; an
array broken mid-way keeps the elements before the break. Objects one after another are read
as a stream until the first malformed one, then line by line. Each item is decoded once (twice
at most after a stream breaks), so the work is linear in the body's size.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from core.logstore.schema import LogEvent
from tools.logs.common import EventRejected, excerpt
from tools.logs.parse import (
    STRICT_DECODER,
    TEXT_FORMATS,
    check_format,
    decode_json_object,
    json_error,
    json_type,
    parse_line,
    parse_object,
)
from tools.logs.windows import EVTX_MAGIC, evtx_records, parse_windows
from tools.logs.zeek_tsv import ZEEK_TSV_START, is_zeek_tsv, read_zeek_tsv

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
        "text/json",
    }
)
EVTX_CONTENT_TYPES: Final[frozenset[str]] = frozenset({"application/x-evtx"})
_WHITESPACE: Final[re.Pattern[str]] = re.compile(r"[ \t\r\n]*")
_UTF16_BOMS: Final[tuple[bytes, ...]] = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# What a parser may raise on a structure it did not foresee. Caught per event so that one odd
# event costs itself only; logged, since it means a parser needs fixing.
_PARSER_FAULTS: Final[tuple[type[Exception], ...]] = (
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    RecursionError,
    TypeError,
    ValueError,
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One item of a payload that was not stored, and why."""

    reason: str
    """Why, in a sentence safe to show the sender."""
    line: int | None = None
    """1-based line of the body where the item starts (None for EVTX records)."""
    index: int | None = None
    """0-based position of the item in its JSON array or EVTX file (None for lines)."""
    excerpt: str = ""
    """The item's first characters (at most ``EXCERPT_CHARS``), never all of it."""


@dataclass(frozen=True, slots=True)
class FormatGate:
    """Which parsed events a payload keeps: those read by one of the ``allowed`` formats and,
    with ``own_time``, stamped with a time of their own (not the ingest time). Any other event
    is a :class:`Rejected` entry: ``reasons`` gives the reason for a format refused on purpose
    (a source switched off), ``other`` the reason for the rest (``{format}`` is the format's
    name). Plain data, so that it travels to the ingest workers."""

    allowed: frozenset[str]
    reasons: tuple[tuple[str, str], ...] = ()
    other: str = "format {format!r} is not accepted here"
    own_time: bool = False

    def refuse(self, event: LogEvent, received: datetime) -> str | None:
        """Why ``event`` is refused, or None when it is kept."""
        if event.format not in self.allowed:
            for name, reason in self.reasons:
                if name == event.format:
                    return reason
            return self.other.format(format=event.format)
        if self.own_time and event.timestamp == received:
            return "the record carries no time of its own"
        return None


@dataclass(slots=True)
class ParseResult:
    """The events read from a payload, in payload order, and what was rejected."""

    events: list[LogEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.events)


class _Reader:
    """Parses items into a :class:`ParseResult`, one rejection per item that fails."""

    def __init__(
        self,
        *,
        source: str | None,
        format: str | None,
        received: datetime,
        gate: FormatGate | None = None,
    ) -> None:
        self.source = source
        self.format = format
        self.received = received
        self.gate = gate
        self.result = ParseResult()

    def reject(
        self, reason: str, *, text: str = "", line: int | None = None, index: int | None = None
    ) -> None:
        self.result.rejected.append(Rejected(reason, line, index, excerpt(text.strip())))

    def _guarded(self, parse: Any, text: str, line: int | None, index: int | None) -> None:
        try:
            event = parse()
            refused = self.gate.refuse(event, self.received) if self.gate is not None else None
            if refused is None:
                self.result.events.append(event)
            else:
                self.reject(refused, text=text, line=line, index=index)
        except EventRejected as err:
            self.reject(err.reason, text=text, line=line, index=index)
        except _PARSER_FAULTS as err:
            logger.warning("log parser fault on line %s item %s: %r", line, index, err)
            self.reject("event could not be parsed", text=text, line=line, index=index)

    def value(self, value: Any, raw: str, *, line: int | None, index: int | None) -> None:
        """A decoded JSON value: an object is an event, anything else is rejected."""
        if not isinstance(value, dict):
            self.reject(
                f"expected a JSON object, got {json_type(value)}",
                text=raw,
                line=line,
                index=index,
            )
            return
        self._guarded(
            lambda: parse_object(
                value, raw=raw, source=self.source, format=self.format, received=self.received
            ),
            raw,
            line,
            index,
        )

    def json_line(self, text: str, line: int) -> None:
        def parse() -> LogEvent:
            return parse_object(
                decode_json_object(text),
                raw=text,
                source=self.source,
                format=self.format,
                received=self.received,
            )

        self._guarded(parse, text, line, None)

    def text_line(self, text: str, line: int) -> None:
        self._guarded(
            lambda: parse_line(
                text, source=self.source, format=self.format, received=self.received
            ),
            text,
            line,
            None,
        )

    def zeek_tsv(self, text: str) -> None:
        """A Zeek ASCII log (its ``#`` headers type the records that follow)."""
        lines = text.split("\n")
        for number, item in read_zeek_tsv(lines):
            raw = lines[number - 1].rstrip("\r")
            if isinstance(item, EventRejected):
                self.reject(item.reason, text=raw, line=number)
            else:
                self.value(item, raw, line=number, index=None)

    def evtx(self, body: bytes) -> None:
        if self.format not in (None, "windows"):
            self.reject(f"format {self.format!r} cannot read an EVTX file", index=0)
            return
        try:
            for record in evtx_records(body):
                if record.error is not None:
                    self.reject(record.error, index=record.number)
                    continue
                data = record.json

                def parse(data: str = data) -> LogEvent:
                    return parse_windows(
                        orjson.loads(data), raw=data, source=self.source, received=self.received
                    )

                self._guarded(parse, data, None, record.number)
        except EventRejected as err:
            self.reject(err.reason, index=0)


class _LineCounter:
    """Line numbers of increasing offsets into one text, counted once overall."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.offset = 0
        self.line = 1

    def at(self, offset: int) -> int:
        if offset > self.offset:
            self.line += self.text.count("\n", self.offset, offset)
            self.offset = offset
        return self.line


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _read_lines(text: str, pos: int, line: int, reader: _Reader, *, json: bool) -> None:
    """Every line from offset ``pos`` (line number ``line``) on its own."""
    size = len(text)
    while pos < size:
        end = _line_end(text, pos)
        content = text[pos:end].rstrip("\r")
        if content.strip():
            if json:
                reader.json_line(content.strip(), line)
            else:
                reader.text_line(content, line)
        pos, line = end + 1, line + 1


def _read_array(text: str, pos: int, lines: _LineCounter, reader: _Reader) -> int | None:
    """The elements of the array opening at ``pos``; the offset after it, or None when it
    broke (its remaining elements are then one rejection)."""
    size = len(text)
    index = 0
    pos = _skip(text, pos + 1)
    if pos < size and text[pos] == "]":
        return pos + 1
    while True:
        line = lines.at(pos)
        try:
            value, end = STRICT_DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as err:
            reader.reject(
                f"{json_error(err)} in array element {index}; the rest of the array was not read",
                text=text[pos : _line_end(text, pos)],
                line=line,
                index=index,
            )
            return None
        reader.value(value, text[pos:end], line=line, index=index)
        pos = _skip(text, end)
        if pos < size and text[pos] == ",":
            pos = _skip(text, pos + 1)
            index += 1
            if pos < size and text[pos] == "]":  # a trailing comma, tolerated
                return pos + 1
            continue
        if pos < size and text[pos] == "]":
            return pos + 1
        reader.reject(
            f"invalid JSON array: expected ',' or ']' after element {index}; "
            "the rest of the array was not read",
            text=text[pos : _line_end(text, pos)],
            line=lines.at(pos),
            index=index + 1,
        )
        return None


def _read_stream(text: str, pos: int, reader: _Reader) -> None:
    """JSON values one after another from ``pos``; at the first malformed one, the rest of its
    line is rejected and the lines after it are read one by one."""
    lines = _LineCounter(text)
    size = len(text)
    while True:
        pos = _skip(text, pos)
        if pos >= size:
            return
        line = lines.at(pos)
        if text[pos] == "[":
            after = _read_array(text, pos, lines, reader)
            if after is None:
                return
            pos = after
            continue
        try:
            value, end = STRICT_DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as err:
            end_of_line = _line_end(text, pos)
            reader.reject(json_error(err), text=text[pos:end_of_line], line=line)
            _read_lines(text, end_of_line + 1, line + 1, reader, json=True)
            return
        reader.value(value, text[pos:end], line=line, index=None)
        pos = end


def _first_line_is_json(text: str, pos: int) -> bool:
    first = text[pos : _line_end(text, pos)].strip()
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def _read_json(text: str, reader: _Reader) -> None:
    pos = _skip(text, 0)
    if pos >= len(text):
        return
    if text[pos] != "[" and _first_line_is_json(text, pos):
        # NDJSON: every line stands alone, so a bad line costs that line only.
        _read_lines(text, 0, 1, reader, json=True)
    else:
        _read_stream(text, pos, reader)


def _decode(body: bytes, *, lenient: bool, start: bool = True) -> tuple[str, list[int]]:
    """The body as text, and the 1-based lines that are not UTF-8 (blanked; with ``lenient``
    their bad bytes are escaped and nothing is blanked). ``start``: ``body`` is the start of
    the body (where a byte order mark may be)."""
    if start:
        body = body.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    decoded: list[str] = []
    bad: list[int] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        try:
            decoded.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            if lenient:
                decoded.append(line.decode("utf-8", "backslashreplace"))
            else:
                bad.append(number)
                decoded.append("")
    return "\n".join(decoded), bad


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_body(mime: str, text_start: str) -> bool:
    return mime in JSON_CONTENT_TYPES or mime.endswith("+json") or text_start in ("{", "[")


def parse_payload(
    body: bytes,
    *,
    content_type: str | None,
    source: str | None,
    format: str | None,
    filename: str | None = None,
    received: datetime | None = None,
    gate: FormatGate | None = None,
) -> ParseResult:
    """Every event of an ingest payload, and every item rejected with its reason (with a
    ``gate``, the events it refuses too).

    ``format`` names the parser for every item (None: detect per item); ``source`` labels the
    events (None: their format); ``received`` is the ingest time (now when None), the time of
    events that carry none. An empty body gives an empty result. Raises
    :class:`~core.errors.ValidationFailed` only for an unknown ``format``: everything wrong in
    the body itself is a :class:`Rejected` entry."""
    name = check_format(format)
    reader = _Reader(source=source, format=name, received=received or datetime.now(UTC), gate=gate)
    mime = _mime(content_type)
    if body.startswith(EVTX_MAGIC):
        reader.evtx(body)
        return reader.result
    if mime in EVTX_CONTENT_TYPES or (filename or "").lower().endswith(".evtx"):
        reader.reject(
            "not an EVTX file: it does not start with the ElfFile signature",
            text=body[:40].decode("utf-8", "backslashreplace"),
            index=0,
        )
        return reader.result

    bad_lines: list[int] = []
    if body.startswith(_UTF16_BOMS):
        try:
            text = body.decode("utf-16")
        except UnicodeDecodeError:
            reader.reject("body starts with a UTF-16 byte order mark but is not UTF-16", line=1)
            return reader.result
        head = text.lstrip(" \t\r\n")[:1]
        as_json = name not in TEXT_FORMATS and _is_json_body(mime, head)
    else:
        head_bytes = body.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")[:1]
        as_json = name not in TEXT_FORMATS and _is_json_body(mime, head_bytes.decode("latin-1"))
        text, bad_lines = _decode(body, lenient=not as_json)
    for line in bad_lines:
        reader.reject("line is not valid UTF-8", line=line)
    if is_zeek_tsv(text.removeprefix("\ufeff").lstrip(" \t\r\n")):
        reader.zeek_tsv(text.removeprefix("\ufeff").lstrip(" \t\r\n"))
    elif as_json:
        _read_json(text, reader)
    else:
        _read_lines(text, 0, 1, reader, json=False)
    reader.result.rejected.sort(key=lambda r: (r.line or 0, r.index or 0))
    return reader.result


Layout = Literal["json_lines", "text_lines", "document"]
"""How a body is read: line by line (JSON or text lines), or as a whole document."""


def body_layout(
    head: bytes,
    *,
    complete: bool,
    content_type: str | None,
    format: str | None,
    filename: str | None = None,
) -> Layout | None:
    """How :func:`parse_payload` reads a body that starts with ``head`` (``complete``: the whole
    body): ``json_lines`` (NDJSON: its first line is a JSON object or value on its own) and
    ``text_lines`` can be parsed in pieces with :func:`parse_lines`; a ``document`` is parsed
    whole. None when ``head`` does not tell yet (its first line goes on)."""
    name = check_format(format)
    mime = _mime(content_type)
    if not complete and len(head) < len(EVTX_MAGIC):
        return None
    if head.startswith((EVTX_MAGIC, *_UTF16_BOMS)) or mime in EVTX_CONTENT_TYPES:
        return "document"
    if (filename or "").lower().endswith(".evtx"):
        return "document"
    stripped = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    if not stripped:
        return "document" if complete else None
    if not complete and len(stripped) < len(ZEEK_TSV_START) and ZEEK_TSV_START.startswith(stripped):
        return None  # it may yet be a Zeek ASCII log
    if stripped.startswith(ZEEK_TSV_START):
        return "document"  # its headers type every record after them: read whole
    if name in TEXT_FORMATS or not _is_json_body(mime, stripped[:1].decode("latin-1")):
        return "text_lines"
    if stripped.startswith(b"["):
        return "document"
    end = stripped.find(b"\n")
    if end < 0 and not complete:
        return None
    try:
        orjson.loads(stripped[: len(stripped) if end < 0 else end].decode("utf-8").strip())
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return "document"  # read as JSON values one after another: the whole body
    return "json_lines"


def parse_lines(
    piece: bytes,
    *,
    layout: Layout,
    first_line: int,
    source: str | None,
    format: str | None,
    received: datetime | None = None,
    gate: FormatGate | None = None,
) -> ParseResult:
    """The events of ``piece``: whole lines of a body whose :func:`body_layout` is
    ``json_lines`` or ``text_lines``, the first of them line ``first_line`` of the body. The
    events and rejections are those :func:`parse_payload` finds on these lines of the whole
    body, with the same line numbers."""
    if layout == "document":
        raise ValueError("a document is parsed whole, with parse_payload")
    name = check_format(format)
    reader = _Reader(source=source, format=name, received=received or datetime.now(UTC), gate=gate)
    as_json = layout == "json_lines"
    text, bad_lines = _decode(piece, lenient=not as_json, start=first_line == 1)
    for line in bad_lines:
        reader.reject("line is not valid UTF-8", line=line + first_line - 1)
    _read_lines(text, 0, first_line, reader, json=as_json)
    reader.result.rejected.sort(key=lambda r: (r.line or 0, r.index or 0))
    return reader.result
