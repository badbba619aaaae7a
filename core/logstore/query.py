"""The log search language, compiled into parameterised ClickHouse SQL (values never spliced).

A Lucene / KQL-like language::

    process.name:powershell.exe AND NOT user.name:svc_*
    event.code:(4624 OR 4625) destination.port:>=1024
    source.ip:10.0.0.0/8 "invoke-mimikatz"
    url.full:*login* OR dns.question.name:?vil.example
    destination.port:[1024 TO 49151]  file.hash.sha256:*  Image:*\\powershell.exe

- Terms are joined by ``AND`` (the default between terms), ``OR`` and ``NOT`` (or a leading
  ``-``); parentheses group. ``AND`` binds tighter than ``OR``.
- ``field:value`` compares one field; ``field:(a OR b)`` any of several values. Text fields
  match case-insensitively; ``*`` and ``?`` are wildcards; a quoted value is exact (wildcards
  and all). Integer fields compare as numbers and take ``>``, ``>=``, ``<``, ``<=`` and ranges
  ``[a TO b]`` (inclusive; ``*`` for an open end), as does ``timestamp`` with ISO 8601 dates and
  times (``timestamp:>=2026-11-20``; UTC unless a zone is given). An address field takes a CIDR
  (``10.0.0.0/8``, ``2001:db8::/32``). ``field:*`` means the field is present.
- Field names are the table's ECS names (``process.command_line``), ``source``, ``format`` and
  ``id``; any other name is looked up in the event's original fields (``Image``, ``GrantedAccess``,
  ``alert.signature``), so nothing an event carried is out of reach.
- A bare word or quoted phrase searches the whole original event, case-insensitively.

:func:`compile_query` returns the SQL condition and its parameters (clickhouse-connect's
``{name:Type}`` binding). Syntax errors, values a field cannot hold, and queries past the limits
(:data:`MAX_QUERY_LENGTH` characters, :data:`MAX_TERMS` terms, :data:`MAX_DEPTH` levels of
parentheses and ``NOT``) are :class:`~core.errors.ValidationFailed` naming the position: what
reaches the engine is always well-formed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from core.errors import ValidationFailed
from core.logstore.schema import BY_NAME, PROMOTED_FIELDS, promoted_column
from core.validation import EARLIEST, LATEST

MAX_QUERY_LENGTH: Final = 4096
MAX_TERMS: Final = 200
"""Terms and listed values (``field:(a OR b)``) a query may hold."""
MAX_DEPTH: Final = 32
"""Deepest nesting of parentheses and ``NOT`` (the compiler descends once per level)."""
META_FIELDS: Final = {"source": "source", "format": "format", "id": "toString(id)"}
PROMOTED: Final = frozenset(PROMOTED_FIELDS)
IP_FIELDS: Final = frozenset({"host.ip", "source.ip", "destination.ip"})
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<phrase>"(?:[^"\\]|\\.)*")
  | (?P<word>(?:[^\s()"\\:]|\\.)+(?::(?=[^\s]))?)
  | (?P<colon>:)
    """,
    re.VERBOSE,
)
_FIELD_NAME = re.compile(r"^[A-Za-z_@][A-Za-z0-9_.@\-]{0,127}$")


def _invalid(message: str, position: int | None = None) -> ValidationFailed:
    where = f" at character {position + 1}" if position is not None else ""
    return ValidationFailed(
        [{"loc": ["query", "q"], "msg": f"{message}{where}", "type": "query_syntax"}]
    )


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    at: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _invalid("unexpected character", position)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    return tokens


@dataclass(slots=True)
class Compiled:
    """A SQL condition and the values it binds."""

    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Compiler:
    tokens: list[Token]
    prefix: str
    position: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    terms: int = 0
    depth: int = 0

    # -- helpers --------------------------------------------------------------------------

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _invalid("unexpected end of query")
        self.position += 1
        return token

    def bind(self, value: Any, kind: str = "String") -> str:
        name = f"{self.prefix}{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:{kind}}}"

    @staticmethod
    def is_keyword(token: Token | None, *words: str) -> bool:
        return token is not None and token.kind == "word" and token.text in words

    def count_term(self) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise _invalid(f"more than {MAX_TERMS} terms")

    def descend(self, token: Token) -> None:
        """One level deeper (a parenthesis or a NOT); the way back is ``self.depth -= 1``."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _invalid(f"nested more than {MAX_DEPTH} levels (parentheses and NOT)", token.at)

    # -- grammar ---------------------------------------------------------------------------

    def expression(self) -> str:
        parts = [self.conjunction()]
        while self.is_keyword(self.peek(), "OR", "||"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while True:
            token = self.peek()
            if token is None or token.kind == "rparen" or self.is_keyword(token, "OR", "||"):
                break
            if self.is_keyword(token, "AND", "&&"):
                self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        token = self.peek()
        if token is not None and self.is_keyword(token, "NOT", "!"):
            self.take()
            self.descend(token)
            inner = self.negation()
            self.depth -= 1
            return f"NOT {inner}"
        if (
            token is not None
            and token.kind == "word"
            and token.text.startswith("-")
            and len(token.text) > 1
        ):
            self.tokens[self.position] = Token("word", token.text[1:], token.at + 1)
            return f"NOT {self.atom()}"
        return self.atom()

    def atom(self) -> str:
        token = self.take()
        self.count_term()
        if token.kind == "lparen":
            self.descend(token)
            inner = self.expression()
            closing = self.take()
            if closing.kind != "rparen":
                raise _invalid("expected ')'", closing.at)
            self.depth -= 1
            return inner
        if token.kind == "phrase":
            return self.full_text(_unquote(token.text))
        if token.kind == "word":
            if token.text.endswith(":"):
                return self.comparison(token)
            if token.text in {"AND", "OR", "NOT", "&&", "||"}:
                raise _invalid(f"{token.text} needs a term", token.at)
            return self.full_text(_unescape(token.text))
        raise _invalid(f"unexpected {token.text!r}", token.at)

    def comparison(self, field_token: Token) -> str:
        name = _unescape(field_token.text[:-1])
        if not _FIELD_NAME.match(name):
            raise _invalid(f"not a field name: {name[:40]!r}", field_token.at)
        nxt = self.peek()
        if nxt is None:
            raise _invalid(f"{name}: needs a value", field_token.at)
        if nxt.kind == "lparen":
            self.take()
            values = [self.value_condition(name, self.take())]
            while True:
                token = self.take()
                if token.kind == "rparen":
                    break
                if self.is_keyword(token, "OR", "||"):
                    continue
                self.count_term()
                values.append(self.value_condition(name, token))
            return "(" + " OR ".join(values) + ")"
        if nxt.kind == "word" and nxt.text.startswith("["):
            return self.range_condition(name)
        return self.value_condition(name, self.take())

    def range_condition(self, name: str) -> str:
        start = self.take()
        words = [start.text]
        while not words[-1].endswith("]"):
            words.append(self.take().text)
        text = " ".join(words)
        match = re.fullmatch(r"\[\s*(\S+)\s+TO\s+(\S+)\s*\]", text)
        if match is None:
            raise _invalid("a range is [low TO high]", start.at)
        column, kind = self.column(name)
        low, high = match.groups()
        parts = []
        for bound, op in ((low, ">="), (high, "<=")):
            if bound == "*":
                continue
            value = self.typed(name, kind, _unescape(bound))
            parts.append(f"{column} {op} {self.bind(value, kind)}")
        return "(" + " AND ".join(parts) + ")" if parts else f"{column} IS NOT NULL"

    def column(self, name: str) -> tuple[str, str]:
        """The SQL expression for a field and its binding type (String or UInt64)."""
        if name in META_FIELDS:
            return META_FIELDS[name], "String"
        if name == "timestamp":
            return "timestamp", "DateTime64(3)"
        known = BY_NAME.get(name)
        if known is not None:
            return f"`{known.column}`", "UInt64" if known.kind == "int" else "String"
        if name in PROMOTED:
            return f"`{promoted_column(name)}`", "String"
        return f"fields[{self.bind(name)}]", "String"

    def typed(self, name: str, kind: str, text: str) -> Any:
        if kind == "UInt64":
            if not re.fullmatch(r"\d{1,19}", text):
                raise _invalid(f"{name} is a number, not {text[:40]!r}")
            return int(text)
        if kind.startswith("DateTime"):
            return _moment(name, text)
        return text

    def value_condition(self, name: str, token: Token) -> str:
        if token.kind == "phrase":
            raw, exact = _unquote(token.text), True
        elif token.kind == "word":
            raw, exact = _unescape(token.text), False
        else:
            raise _invalid(f"{name}: expected a value", token.at)
        column, kind = self.column(name)
        if raw == "*" and not exact:
            if kind != "String":
                return f"{column} IS NOT NULL"
            return f"{column} != ''"
        if kind != "String":  # numbers and times: compared as what they are, checked here
            for op in (">=", "<=", ">", "<"):
                if raw.startswith(op):
                    return (
                        f"{column} {op} {self.bind(self.typed(name, kind, raw[len(op) :]), kind)}"
                    )
            return f"{column} = {self.bind(self.typed(name, kind, raw), kind)}"
        if name in IP_FIELDS and "/" in raw:
            try:
                network = ipaddress.ip_network(raw, strict=False)
            except ValueError as err:
                raise _invalid(f"{name}: not a network: {raw[:40]!r}", token.at) from err
            return (
                f"(isIPv4String({column}) OR isIPv6String({column})) AND "
                f"isIPAddressInRange({column}, {self.bind(str(network))})"
            )
        if not exact and ("*" in raw or "?" in raw):
            return f"{column} ILIKE {self.bind(_like_pattern(raw))}"
        return f"lower({column}) = lower({self.bind(raw)})"

    def full_text(self, text: str) -> str:
        if not text:
            raise _invalid("an empty search term")
        # An ASCII term can only match ASCII bytes of the UTF-8 text, where the byte-wise
        # case-insensitive search (about a quarter faster) finds what the UTF-8 one does, save
        # the rare non-ASCII letters whose lower case is ASCII (the Kelvin sign's "k").
        search = "positionCaseInsensitive" if text.isascii() else "positionCaseInsensitiveUTF8"
        return f"{search}(raw, {self.bind(text)}) > 0"


def _moment(name: str, text: str) -> datetime:
    """An ISO 8601 date or time (UTC unless it names a zone) within the years the platform
    accepts, as the naive UTC value a ``DateTime64`` parameter takes."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise _invalid(f"{name} is an ISO 8601 date or time, not {text[:40]!r}") from err
    moment = moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment <= LATEST:
        raise _invalid(f"{name}: {text[:40]!r} is outside {EARLIEST.year}..{LATEST.year}")
    return moment.replace(tzinfo=None)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _like_pattern(text: str) -> str:
    """A wildcard term as an ILIKE pattern: ``*`` → ``%``, ``?`` → ``_``, the rest literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def compile_query(text: str, *, prefix: str = "q") -> Compiled:
    """``text`` as a SQL condition with bound parameters named ``<prefix><n>``."""
    if len(text) > MAX_QUERY_LENGTH:
        raise _invalid(f"longer than {MAX_QUERY_LENGTH} characters")
    tokens = tokenize(text)
    if not tokens:
        return Compiled("1")
    compiler = _Compiler(tokens, prefix)
    sql = compiler.expression()
    if (extra := compiler.peek()) is not None:
        raise _invalid(f"unexpected {extra.text!r}", extra.at)
    return Compiled(sql, compiler.parameters)
