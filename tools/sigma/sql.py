"""ClickHouse SQL literals that are safe wherever the store sends the condition.

A converted condition is pasted into a larger query that the store may bind with
clickhouse-connect parameters. Client-side binding formats the query with Python's ``%``
operator and server-side binding looks for ``{name:Type}``, so a literal ``%``, ``{`` or ``}``
taken from a rule's value could break the query or, worse, be substituted. Every literal written
here therefore spells those characters (and control characters) as ``\\xHH`` escapes, which
ClickHouse decodes inside string literals: the generated SQL never contains them outside a
regular expression's own text, where they are escaped the same way.
"""

from __future__ import annotations

from typing import Final

_ESCAPES: Final[dict[str, str]] = {
    "\\": "\\\\",
    "'": "\\'",
    "%": "\\x25",
    "{": "\\x7B",
    "}": "\\x7D",
}


def string_literal(value: str) -> str:
    """``value`` as a single-quoted ClickHouse string literal that decodes back to ``value``
    exactly and contains no quote, ``%``, brace or control character of its own."""
    out: list[str] = []
    for char in value:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02X}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def number_literal(value: int | float) -> str:
    """A number as SQL text; floats keep their repr (no exponent surprises for usual values)."""
    if isinstance(value, bool):  # bool is an int: refuse the silent True -> 1
        raise TypeError("a boolean is not a number literal")
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


# Characters with a meaning in RE2 syntax; everything else stands for itself.
_RE2_SPECIAL: Final[frozenset[str]] = frozenset("\\.+*?()|[]{}^$")


def re2_escape(text: str) -> str:
    """``text`` as an RE2 pattern matching exactly that text."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in text)
