"""Validation as the platform reports it: AURORA-4220 with field-level detail.

Also the limits every input path shares: JSON nesting depth and number ranges
(:func:`load_json`), timestamps that stay within what the stores can hold
(:data:`UtcDatetime`), and bounded free-form JSON fields (:func:`bounded_json`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ValidationError

from core.errors import ValidationFailed

INTEGER_MAX: Final = 2**31 - 1
"""The largest value an integer column holds on every backend (PostgreSQL's ``integer``): the
bound for a number a caller sends that lands in one or is compared with one (versions, counts,
offsets), so it is refused as 422 instead of overflowing the driver."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body (or any JSON the platform is handed)
may have. Deeper data serves no security purpose and breaks serialisers far down the line."""

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
"""The range of timestamps the platform accepts: what every store holds (ClickHouse's
``DateTime64`` is the narrowest), so a timestamp that validates can always be stored, compared
and searched."""


def validation_detail(err: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """Field-level errors without the rejected values (they may be secrets)."""
    return [
        {"loc": [prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in err.errors(include_url=False, include_input=False, include_context=False)
    ]


def field_error(loc: list[str | int], msg: str, kind: str = "value_error") -> ValidationFailed:
    """AURORA-4220 for one problem at ``loc`` (``["body", "raw"]``, ``["query", "q"]``)."""
    return field_errors([(loc, msg, kind)])


def field_errors(problems: Iterable[tuple[list[str | int], str, str]]) -> ValidationFailed:
    """AURORA-4220 for several problems at once, each ``(loc, msg, kind)``."""
    return ValidationFailed([{"loc": loc, "msg": msg, "type": kind} for loc, msg, kind in problems])


def validate[M: BaseModel](model: type[M], data: Any, *, where: str = "body") -> M:
    """Validate ``data`` into ``model``; failures are AURORA-4220 with field-level detail."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed(validation_detail(err, where)) from err
    except RecursionError as err:  # data deeper than any check before it allowed
        raise field_error([where], "nested too deeply", "json_depth") from err


def json_depth(value: Any, *, stop_at: int | None = None) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0, ``[]`` is 1); counting
    stops once ``stop_at`` is passed. Iterative: no input can exhaust the stack."""
    if type(value) is not dict and type(value) is not list:
        return 0
    limit = stop_at if stop_at is not None else -1
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > deepest:
            deepest = depth
            if deepest == limit + 1:
                return deepest
        below = depth + 1
        # exact types: what JSON parsers produce, and several times faster than isinstance
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is dict or kind is list:
                pending.append((child, below))
    return deepest


def _nul_at(value: Any) -> list[str | int] | None:
    """Where the first string (or key) holding a NUL character is in ``value``, if any."""
    pending: list[tuple[Any, list[str | int]]] = [(value, [])]
    while pending:
        item, loc = pending.pop()
        if type(item) is str:
            if "\x00" in item:
                return loc
        elif type(item) is dict:
            for key, child in item.items():
                if "\x00" in key:
                    return loc
                pending.append((child, [*loc, key]))
        elif type(item) is list:
            pending.extend((child, [*loc, index]) for index, child in enumerate(item))
    return None


def check_depth(value: Any, *, where: list[str | int], limit: int = MAX_JSON_DEPTH) -> None:
    """AURORA-4220 when ``value`` nests deeper than ``limit``."""
    if json_depth(value, stop_at=limit) > limit:
        raise field_error(where, f"nested more than {limit} levels deep", "json_depth")


def load_json(data: bytes | str, *, where: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside: malformed text, ``NaN``/``Infinity``, a number too large for a
    double, invalid Unicode, a NUL character or nesting past ``max_depth`` is AURORA-4220, never
    an exception that escapes. Integers past 64 bits become floats (as JavaScript reads them)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise field_error([where], f"Malformed JSON: {err}", "json_invalid") from err
    check_depth(value, where=[where], limit=max_depth)
    # A NUL can only arrive escaped (a raw one is not JSON); PostgreSQL stores no NUL in text.
    escaped = b"\\u0000" in data if isinstance(data, bytes) else "\\u0000" in data
    if escaped:
        loc = _nul_at(value)
        if loc is not None:
            raise field_error([where, *loc], "NUL characters are not accepted", "string_nul")
    return value


def _in_range(value: datetime) -> datetime:
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise ValueError("date out of range") from err
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(
            f"date out of range: use {EARLIEST.year}-01-01 to {LATEST.year}-12-31 (UTC)"
        )
    return moment


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""A timestamp with a zone, converted to UTC and within :data:`EARLIEST`..:data:`LATEST`.
Use it for every timestamp a caller sends (bodies and queries alike)."""


def bounded_json[T](*, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Callable[[T], T]:
    """A pydantic ``AfterValidator`` for a free-form JSON field (an alert's ``raw``, a case's
    custom fields): at most ``max_depth`` levels deep and ``max_bytes`` when serialised."""

    def check(value: T) -> T:
        if json_depth(value, stop_at=max_depth) > max_depth:
            raise ValueError(f"nested more than {max_depth} levels deep")
        try:
            size = len(orjson.dumps(value))
        except (TypeError, orjson.JSONEncodeError) as err:
            raise ValueError("not representable as JSON") from err
        if size > max_bytes:
            raise ValueError(f"larger than {max_bytes} bytes as JSON")
        return value

    return check
