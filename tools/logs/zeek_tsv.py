"""Zeek's native ASCII logs (tab-separated, with ``#`` header lines) as the objects Zeek's JSON
writer would write for the same records, so one parser (:func:`tools.logs.network.parse_zeek`)
reads both.

A Zeek ASCII log starts with its headers::

    #separator \\x09
    #set_separator	,
    #empty_field	(empty)
    #unset_field	-
    #path	conn
    #fields	ts	uid	id.orig_h	...
    #types	time	string	addr	...

and each following line is one record, its columns in ``#fields`` order. A file may hold
several logs one after the other (headers again), and ends with ``#close``. What this reader
does with a record, as the JSON writer does:

- the ``#path`` becomes ``_path``;
- an unset field (``-``) is left out;
- values are typed by ``#types``:

  - ``time``, ``interval`` and ``double`` become numbers of seconds;
  - ``count``, ``int`` and ``port`` become integers, and ``bool`` ``T``/``F``;
  - ``set[...]`` and ``vector[...]`` become lists split at the set separator, each element
    typed, with ``(empty)`` an empty list;
  - everything else (``addr``, ``subnet``, ``string``, ``enum``) is text, and an empty string
    is ``(empty)`` too;

- escapes are decoded: ``\\xNN`` (Zeek's for the separators and for bytes it will not
  print; the bytes read as UTF-8, invalid sequences replaced) and ``\\\\`` (a backslash).

The ASCII format cannot tell an empty container from one holding a single empty string (Zeek
writes ``(empty)`` for both); it is read as an empty list.

A record before any ``#fields``, with a column count other than its header's, or with a value
its type refuses is an :class:`~tools.logs.common.EventRejected` naming why; the reader goes
on with the next line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, Final

from tools.logs.common import EventRejected

MAX_FIELDS: Final = 512
"""The most columns a ``#fields`` header may name."""
_ESCAPE: Final = re.compile(r"\\(?:x([0-9a-fA-F]{2})|\\)")
_NUMBERS: Final = frozenset({"time", "interval", "double"})
_INTEGERS: Final = frozenset({"count", "int", "port"})
_CONTAINER: Final = re.compile(r"^(?:set|vector)\[(.+)\]$")


def _unescape(text: str) -> str:
    """``text`` with Zeek's escapes decoded: ``\\xNN`` (a byte; the bytes read as UTF-8) and
    ``\\\\`` (a backslash)."""
    if "\\" not in text:
        return text
    raw = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        raw += text[position : match.start()].encode()
        raw += bytes([int(match.group(1), 16)]) if match.group(1) else b"\\"
        position = match.end()
    raw += text[position:].encode()
    return raw.decode("utf-8", errors="replace")


class ZeekTsvReader:
    """Reads one Zeek ASCII log stream, line by line (see the module docstring)."""

    def __init__(self) -> None:
        self.separator = "\t"
        self.set_separator = ","
        self.empty = "(empty)"
        self.unset = "-"
        self.path: str | None = None
        self.fields: list[str] | None = None
        self.types: list[str] | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        """The record ``line`` holds, or None for a header, a comment or a blank line.
        Raises :class:`EventRejected` for a record it cannot read."""
        line = line.rstrip("\r\n")
        if not line:
            return None
        if line.startswith("#"):
            self._header(line)
            return None
        if self.fields is None or self.types is None:
            raise EventRejected("a Zeek record before the log's #fields header")
        columns = line.split(self.separator)
        if len(columns) != len(self.fields):
            raise EventRejected(
                f"a Zeek {self.path or 'log'} record has {len(columns)} columns; "
                f"its #fields header names {len(self.fields)}"
            )
        record: dict[str, Any] = {}
        if self.path is not None:
            record["_path"] = self.path
        for name, kind, value in zip(self.fields, self.types, columns, strict=True):
            if value == self.unset:
                continue
            try:
                record[name] = self._typed(kind, value)
            except ValueError as err:
                raise EventRejected(f"the Zeek field {name} is not a valid {kind}") from err
        return record

    def _header(self, line: str) -> None:
        if line.startswith("#separator"):
            value = line[len("#separator") :].strip()
            self.separator = _unescape(value) or "\t"
            return
        name, _, rest = line[1:].partition(self.separator)
        if name == "set_separator":
            self.set_separator = _unescape(rest)
        elif name == "empty_field":
            self.empty = _unescape(rest)
        elif name == "unset_field":
            self.unset = _unescape(rest)
        elif name == "path":
            self.path = _unescape(rest) or None
        elif name in {"fields", "types"}:
            values = [_unescape(v) for v in rest.split(self.separator)]
            if len(values) > MAX_FIELDS:
                raise EventRejected(f"a Zeek #{name} header names more than {MAX_FIELDS} fields")
            if name == "fields":
                self.fields, self.types = values, None
            else:
                self.types = values
            if (
                self.fields is not None
                and self.types is not None
                and len(self.types) != len(self.fields)
            ):
                self.fields = self.types = None
                raise EventRejected("a Zeek log's #types and #fields headers differ in length")
        # #open, #close and any other header say nothing about the records.

    def _typed(self, kind: str, value: str) -> Any:
        container = _CONTAINER.match(kind)
        if container is not None:
            if value == self.empty:
                return []
            return [self._scalar(container.group(1), v) for v in value.split(self.set_separator)]
        if value == self.empty:
            return ""
        return self._scalar(kind, value)

    def _scalar(self, kind: str, value: str) -> Any:
        if kind in _NUMBERS:
            return float(value)
        if kind in _INTEGERS:
            return int(value)
        if kind == "bool":
            if value not in {"T", "F"}:
                raise ValueError(value)
            return value == "T"
        return _unescape(value)


def read_zeek_tsv(
    lines: Iterable[str],
) -> Iterator[tuple[int, dict[str, Any] | EventRejected]]:
    """Each record of a Zeek ASCII log, with its line number (from 1): the object, or why it
    was rejected."""
    reader = ZeekTsvReader()
    for number, line in enumerate(lines, start=1):
        try:
            record = reader.feed(line)
        except EventRejected as err:
            yield number, err
            continue
        if record is not None:
            yield number, record


ZEEK_TSV_START: Final = b"#separator "
"""How a Zeek ASCII log begins."""


def is_zeek_tsv(text: str) -> bool:
    """Whether ``text`` (a body, from its first line) is a Zeek ASCII log."""
    return text.startswith(ZEEK_TSV_START.decode())
