"""What every log parser shares: the typed rejection, the limits, value validation against the
log table's schema, flattening into ``fields``, and timestamp reading.

Flattening (:func:`flatten`), the rule every format follows for ``LogEvent.fields``:

- an object's keys are joined to their parent's with ``.``: ``{"id": {"orig_h": "a"}}`` gives
  ``id.orig_h``; a key that already holds dots (Zeek's ``id.orig_h``) is kept as it is;
- a list of scalars is one leaf, its items' text joined with a line feed (so ``contains``
  searches see every item); a list holding objects or lists gives one subtree per item, keyed
  by its index (``answers.0.name``);
- a leaf's text is the string itself, an integer's decimal text, a float's shortest
  round-trip text, ``true``/``false`` for booleans and the empty string for ``null``;
- at most :data:`MAX_FIELDS` leaves are kept (document order), keys longer than
  :data:`MAX_KEY_CHARS` are dropped, a leaf's text is cut at :data:`MAX_FIELD_CHARS`, and a
  subtree deeper than :data:`MAX_DEPTH` is kept as one leaf holding its JSON text; when any leaf
  is dropped, :data:`DROPPED_KEY` says how many.

The original event always stays whole in ``LogEvent.raw``; these bounds only keep one hostile
event from bloating the table's map column.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from core.errors import ValidationFailed
from core.logstore.schema import BY_NAME, LogEvent

MAX_TEXT_CHARS: Final[int] = 32_768
"""Longest text kept in a normalised ``string`` field: Windows caps a command line at 32,767
characters, and nothing the table normalises is legitimately longer. Longer text is cut."""
MAX_LOW_CARDINALITY_CHARS: Final[int] = 1_024
"""Longest text kept in a ``low_cardinality`` field (codes, providers, host names, actions)."""
MAX_FIELD_CHARS: Final[int] = 65_536
"""Longest text kept for one leaf of ``fields`` (a PowerShell script block is at most ~32K)."""
MAX_FIELDS: Final[int] = 1_024
"""Most leaves kept in ``fields`` for one event."""
MAX_KEY_CHARS: Final[int] = 256
"""Longest key kept in ``fields``."""
MAX_DEPTH: Final[int] = 32
"""Deepest nesting flattened; a deeper subtree is one leaf with its JSON text."""
DROPPED_KEY: Final[str] = "aurora.fields_dropped"
"""The ``fields`` key that counts leaves left out by the bounds above (absent when none)."""
EXCERPT_CHARS: Final[int] = 120
"""Longest excerpt of a rejected input echoed back."""

EARLIEST: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final[datetime] = datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)
"""Timestamps outside [EARLIEST, LATEST] are refused: the table's DateTime64(3) cannot hold
later ones, and earlier ones are always a parsing mistake upstream."""


class EventRejected(ValidationFailed):
    """One event could not be read; ``reason`` says why in a sentence safe to show the sender.

    It is a :class:`~core.errors.ValidationFailed` (AURORA-4220), so a route that parses one
    event directly can let it propagate."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__({"reason": reason}, message=f"Event rejected: {reason}")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of ``text`` (with an ellipsis when cut), for echoing
    back a rejected input without echoing all of it."""
    return text if len(text) <= limit else text[:limit] + "…"


# -- values -------------------------------------------------------------------------------


def leaf_text(value: Any) -> str:
    """The text of one JSON scalar as ``fields`` holds it (see the module docstring)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return json.dumps(value, ensure_ascii=False, default=str)


def to_int(value: Any, *, bits: int, hex_text: bool = False) -> int | None:
    """``value`` as an unsigned integer that fits in ``bits`` bits, or None.

    Accepts an int, an integral float, or decimal text (``0x`` hex text too when ``hex_text``,
    as Windows Security events write process ids). Booleans are not numbers here."""
    number: int
    if isinstance(value, str):  # most values: decimal text, looked at first
        text = value.strip()
        try:
            if hex_text and text[:2].lower() == "0x":
                number = int(text[2:], 16)
            elif text.isascii() and text.isdigit() and len(text) <= 40:
                number = int(text)
            else:
                return None
        except ValueError:
            return None
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            return None
        number = int(value)
    else:
        return None
    return number if 0 <= number < (1 << bits) else None


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4: Final = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
"""Dotted-quad IPv4 text without leading zeros (ASCII digits only): its own canonical form."""


def to_ip(value: Any) -> str | None:
    """``value`` as canonical IP text (IPv4-mapped IPv6 written as IPv4), or None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value.strip().strip("[]")
    if _CANONICAL_IPV4.fullmatch(text):  # most addresses: already as ipaddress writes them
        return text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


_IP_FIELDS: Final[frozenset[str]] = frozenset({"host.ip", "source.ip", "destination.ip"})
_TEXT: Final = "text"
_INT: Final = "int"
_IP: Final = "ip"
_CHECKS: Final[dict[str, tuple[str, int]]] = {
    name: (_INT, field.bits)
    if field.kind == "int"
    else (_IP, 0)
    if name in _IP_FIELDS
    else (
        _TEXT,
        MAX_LOW_CARDINALITY_CHARS if field.kind == "low_cardinality" else MAX_TEXT_CHARS,
    )
    for name, field in BY_NAME.items()
}
"""How :meth:`Values.put` checks a value of each field: as an integer of its bits, as an IP
address, or as text of at most its length."""


class Values:
    """Normalised values of one event, validated against the schema as they are set.

    :meth:`put` keeps the first valid value for a field, so callers list candidates in order of
    preference. Invalid values (an int field that is not an int of its width, an IP field that is
    not an address, empty text) are left out: the original text stays in ``fields``."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, str | int] = {}

    def put(self, name: str, value: Any, *, hex_text: bool = False) -> bool:
        """Set ``name`` (an ECS name of the schema) unless it is set already or ``value`` is
        not valid for it; True when it was set."""
        data = self.data
        if value is None or name in data:
            return False
        kind, size = _CHECKS[name]
        if kind == _TEXT:
            if type(value) is str:
                text = value
            elif isinstance(value, dict | list):
                return False
            else:
                text = leaf_text(value)
            if not text:
                return False
            data[name] = text if len(text) <= size else text[:size]
            return True
        if kind == _INT:
            number = to_int(value, bits=size, hex_text=hex_text)
            if number is None:
                return False
            data[name] = number
            return True
        address = to_ip(value)
        if address is None:
            return False
        data[name] = address
        return True

    def has(self, name: str) -> bool:
        return name in self.data


# -- flattening ---------------------------------------------------------------------------


class Fields:
    """A bounded ``fields`` map being filled (see the module docstring for the bounds)."""

    __slots__ = ("data", "dropped")

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.dropped = 0

    def add(self, key: str, value: Any, *, replace: bool = True) -> None:
        """Add one leaf; ``replace=False`` keeps an existing leaf of the same key."""
        data = self.data
        if key in data:
            if not replace:
                return
        elif len(key) > MAX_KEY_CHARS or len(data) >= MAX_FIELDS:
            self.dropped += 1
            return
        text = value if type(value) is str else leaf_text(value)
        data[key] = text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS]

    def add_leaves(self, leaves: Mapping[str, Any]) -> bool:
        """Add every item of ``leaves`` at once when all are scalars, or lists of scalars,
        under the bounds (the usual flat event, at a fraction of the per-leaf cost), as
        :meth:`add_tree` of each would; False, adding nothing, otherwise."""
        if self.data or len(leaves) > MAX_FIELDS:
            return False
        # A copy in the original order, then only the leaves that are not text looked at one
        # by one (integers, the most common of them, first); the bounds checked over all at
        # once.
        texts: dict[str, Any] = dict(leaves)
        for key in [k for k, v in leaves.items() if type(v) is not str]:
            value = leaves[key]
            if type(value) is int:
                texts[key] = str(value)
            elif isinstance(value, list):
                if any(isinstance(item, dict | list) for item in value):
                    return False
                texts[key] = _scalars_text(value)
            elif isinstance(value, dict):
                return False
            else:
                texts[key] = leaf_text(value)
        if texts and (
            max(map(len, texts)) > MAX_KEY_CHARS or max(map(len, texts.values())) > MAX_FIELD_CHARS
        ):
            return False
        self.data = texts
        return True

    def add_tree(self, value: Any, prefix: str = "") -> None:
        """Flatten ``value`` (any decoded JSON) under ``prefix`` by the module's rule."""
        if not isinstance(value, dict | list):
            self.add(prefix, value)
            return
        # An explicit stack instead of recursion: nesting depth is the sender's choice.
        stack: list[tuple[str, Any, int]] = [(prefix, value, 0)]
        while stack:
            key, node, depth = stack.pop()
            if isinstance(node, dict):
                if depth >= MAX_DEPTH:
                    self.add(key, json.dumps(node, ensure_ascii=False, default=str))
                    continue
                children = [(_join(key, str(k)), v, depth + 1) for k, v in node.items()]
                stack.extend(reversed(children))
            elif isinstance(node, list):
                if all(not isinstance(item, dict | list) for item in node):
                    self.add(key, _scalars_text(node))
                elif depth >= MAX_DEPTH:
                    self.add(key, json.dumps(node, ensure_ascii=False, default=str))
                else:
                    items = [(_join(key, str(i)), v, depth + 1) for i, v in enumerate(node)]
                    stack.extend(reversed(items))
            else:
                self.add(key, node)

    def result(self) -> dict[str, str]:
        if self.dropped:
            self.data[DROPPED_KEY] = str(self.dropped)
        return self.data


def _scalars_text(items: list[Any]) -> str:
    """A list of scalars as one leaf: their texts, one a line."""
    return "\n".join(leaf_text(item) for item in items)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def flatten(value: Any) -> dict[str, str]:
    """Every leaf of ``value`` as text, keyed by its dotted path (see the module docstring)."""
    fields = Fields()
    fields.add_tree(value)
    return fields.result()


def lookup(flat: Mapping[str, Any], nested: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path``: a literal dotted key (``id.orig_h``) or nested objects."""
    if path in flat:
        return flat[path]
    node: Any = nested
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# -- timestamps ---------------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime | None:
    """``value`` as a timezone-aware UTC datetime, or None when it is not a timestamp.

    Text: ISO 8601 / RFC 3339 (``Z``, ``+hh:mm`` or ``+hhmm`` offsets, a space instead of
    ``T``, any number of fraction digits); text without an offset is taken as UTC. Numbers and
    digit-only text: Unix epoch in seconds, or in milliseconds, microseconds or nanoseconds when
    too large to be seconds (at or above 1e11, 1e14, 1e17). A datetime is taken as it is.
    Outside [EARLIEST, LATEST]: None."""
    moment: datetime
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment_or_none = _from_epoch(float(value))
        if moment_or_none is None:
            return None
        moment = moment_or_none
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 64:
            return None
        if _looks_numeric(text):
            try:
                epoch = float(text)
            except ValueError:
                return None
            moment_or_none = _from_epoch(epoch)
            if moment_or_none is None:
                return None
            moment = moment_or_none
        else:
            # Windows writes 100 ns ticks: fromisoformat cuts the digits past microseconds.
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment if EARLIEST <= moment <= LATEST else None


def _looks_numeric(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return bool(body) and body.replace(".", "", 1).isdigit()


def _from_epoch(epoch: float) -> datetime | None:
    if not math.isfinite(epoch) or epoch < 0:
        return None
    for scale in (1.0, 1e3, 1e6, 1e9):
        if epoch < 1e11 * scale:
            try:
                return EARLIEST + timedelta(seconds=epoch / scale)
            except OverflowError:
                return None
    return None


def first_timestamp(
    candidates: Iterable[tuple[str, Any]], *, received: datetime
) -> tuple[datetime, str | None]:
    """The first candidate ``(name, value)`` that reads as a timestamp, with its name.

    Absent candidates (None) are skipped; with none present, ``received`` (the ingest time) and
    None. Candidates present but none readable: :class:`EventRejected` naming the first."""
    present: list[tuple[str, Any]] = [(n, v) for n, v in candidates if v not in (None, "")]
    for name, value in present:
        moment = parse_timestamp(value)
        if moment is not None:
            return moment, name
    if present:
        name, value = present[0]
        shown = excerpt(leaf_text(value), 60)
        raise EventRejected(f"unreadable timestamp in {name!r}: {shown!r}")
    return received, None


# -- shared helpers -----------------------------------------------------------------------


def basename(path: str) -> str:
    """The last component of a Windows or POSIX path."""
    trimmed = path.rstrip("\\/")
    return trimmed[max(trimmed.rfind("\\"), trimmed.rfind("/")) + 1 :]


def make_event(
    *,
    timestamp: datetime,
    format: str,
    source: str | None,
    raw: str,
    values: Values,
    fields: dict[str, str],
) -> LogEvent:
    """The :class:`LogEvent` of one parsed event; ``source`` defaults to the format's name.

    A JSON ``\\uD800``-``\\uDFFF`` escape without its pair (EVTX strings can hold one) decodes
    to a lone surrogate, which is not text that can be stored or sent: each becomes U+FFFD, as
    an invalid byte does, and the event is kept (``raw`` keeps the escape as written)."""
    data = values.data
    if "\\u" in raw and _SURROGATE_ESCAPE.search(raw):
        data = {k: _valid_text(v) if isinstance(v, str) else v for k, v in data.items()}
        fields = {_valid_text(k): _valid_text(v) for k, v in fields.items()}
    return LogEvent(
        timestamp=timestamp,
        format=format,
        source=source or format,
        raw=raw,
        values=data,
        fields=fields,
    )


_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# Built with chr(): mypyc compiles this module and refuses surrogates in string literals.
_SURROGATE: Final = re.compile(f"[{chr(0xD800)}-{chr(0xDFFF)}]")


def _valid_text(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)
