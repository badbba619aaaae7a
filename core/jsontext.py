"""JSON text, fast: orjson where it writes what :func:`json.dumps` would mean, the standard
library for the rest.

Receipts, subjects and stream events are serialised on the gateway's event loop (for a
database column and for each WebSocket stream), and the standard encoder was a few per cent of
the gateway's CPU an investigation. orjson writes the same JSON values with less text (no
spaces after separators, non-ASCII as UTF-8 rather than ``\\u`` escapes); keys that are not
strings are written as strings, as the standard library does. What orjson refuses (an integer
beyond 64 bits, a type neither knows) goes to :func:`json.dumps`, which decides as it always
did. One difference is kept on purpose: a NaN or an infinity is written ``null`` (it is not
JSON; PostgreSQL's columns refuse it).
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """``value`` as JSON text."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)
