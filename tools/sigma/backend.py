"""pySigma's ClickHouse backend, fitted to AuroraSOC's log table.

Why a backend subclass and not only pipeline transformations: what SQL a value needs depends on
the type of the column it meets (text, a nullable integer, or the ``fields`` map), which the
pipeline cannot express, and the stock backend's gaps are all in how values are written:

- numbers were written unquoted (``EventID=1``); here a String column compares with quoted text
  (``event_code = '1'``), an integer column with a number, and a value that is no number against
  an integer column compares with the number's text instead of breaking the query;
- a keyword (a value with no field) became ``hasToken(full_log, ...)``, which rejects spaces and
  names a column the table lacks; here it is a case-insensitive substring search of ``raw`` and of
  every flattened leaf in ``fields`` (``raw`` holds JSON text, in which ``C:\\Windows`` is
  written ``C:\\\\Windows``);
- ``isIPAddressInRange`` throws on an empty or malformed address; here it only ever sees a valid
  address of the network's family;
- a field the table lacks becomes ``fields['Name']``, never an error;
- plain equality was case-sensitive (``=``) and ``IN`` lists too: Sigma strings match
  case-insensitively unless ``|cased``;
- LIKE patterns put ``%`` into the SQL: nothing here does (see :mod:`tools.sigma.sql`), so the
  store may bind parameters either way.

Every comparison with a nullable integer is wrapped so that it is never NULL: ``NOT`` over an
absent port must be true, as Sigma means it, not NULL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, cast

from sigma.backends.clickhouse import ClickhouseBackend
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.state import ConversionState
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from core.logstore.schema import BY_NAME, PROMOTED_FIELDS, promoted_column
from tools.sigma.sql import number_literal, re2_escape, string_literal

type Part = str | SpecialChars

_COMPARE_SQL: dict[CompareOperators, str] = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
}
_REGEX_FLAGS: dict[SigmaRegularExpressionFlag, str] = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


@dataclass(frozen=True, slots=True)
class Target:
    """Where a (mapped) Sigma field lives in the log table."""

    name: str
    sql: str
    kind: Literal["string", "int", "map"]

    @property
    def text(self) -> str:
        """A String expression of the field, never NULL (absent: empty string)."""
        if self.kind == "int":
            return f"ifNull(toString({self.sql}), '')"
        return self.sql


_PROMOTED = frozenset(PROMOTED_FIELDS)


def resolve_field(name: str) -> Target:
    """A normalised column for an ECS name of the schema (``timestamp`` aside); any other name is
    a key of the ``fields`` map."""
    field = BY_NAME.get(name)
    if field is not None and field.kind != "datetime":
        kind: Literal["string", "int"] = "int" if field.kind == "int" else "string"
        return Target(name, f"`{field.column}`", kind)
    if name in _PROMOTED:
        # The same text as fields[name] ('' when absent), in a narrow column of its own.
        return Target(name, f"`{promoted_column(name)}`", "map")
    return Target(name, f"fields[{string_literal(name)}]", "map")


def _has_case(text: str) -> bool:
    return text.lower() != text.upper()


def _parts(value: SigmaString) -> list[Part]:
    if value.contains_placeholder():
        value.convert()  # raises pySigma's own SigmaPlaceholderError naming the placeholder
    parts: list[Part] = []
    for part in value.s:
        if isinstance(part, str):
            if parts and isinstance(parts[-1], str):
                parts[-1] += part
            else:
                parts.append(part)
        elif isinstance(part, SpecialChars):
            parts.append(part)
    return parts


def match_parts(text: str, parts: list[Part], *, cased: bool) -> str:
    """SQL matching the String expression ``text`` against a Sigma string (wildcards ``*`` and
    ``?``), case-insensitively unless ``cased``."""
    multi = SpecialChars.WILDCARD_MULTI
    literal = "".join(p for p in parts if isinstance(p, str))
    fold = not cased and _has_case(literal)

    def folded(expr: str) -> str:
        return f"lowerUTF8({expr})" if fold else expr

    if not any(isinstance(p, SpecialChars) for p in parts):
        return f"{folded(text)} = {folded(string_literal(literal))}"
    if all(p is multi for p in parts):
        return f"{text} != ''"
    inner = parts[1:-1]
    plain_inner = len(inner) == 1 and isinstance(inner[0], str)
    if len(parts) == 3 and parts[0] is multi and parts[-1] is multi and plain_inner:
        function = "positionCaseInsensitiveUTF8" if fold else "position"
        return f"{function}({text}, {string_literal(literal)}) > 0"
    if len(parts) == 2 and isinstance(parts[0], str) and parts[1] is multi:
        return f"startsWith({folded(text)}, {folded(string_literal(literal))})"
    if len(parts) == 2 and parts[0] is multi and isinstance(parts[1], str):
        return f"endsWith({folded(text)}, {folded(string_literal(literal))})"
    pattern = "".join(
        re2_escape(p) if isinstance(p, str) else (".*" if p is multi else ".") for p in parts
    )
    flags = "(?s)" if cased else "(?is)"
    return f"match({text}, {string_literal(flags + '^' + pattern + '$')})"


def _integer(value: SigmaString | SigmaNumber) -> int | None:
    """The integer a value spells exactly, if it is one."""
    if isinstance(value, SigmaNumber):
        return value.number if isinstance(value.number, int) else None
    if value.contains_special() or value.contains_placeholder():
        return None
    plain = str(value)
    if plain.isascii() and plain.lstrip("-").isdigit() and plain.strip() == plain:
        return int(plain)
    return None


# Older ClickHouse servers accept at most 255 needles per multiSearch call.
_MAX_NEEDLES: Final[int] = 255


def _contains_needle(arg: Any) -> tuple[tuple[str, bool], str] | None:
    """((field, cased), text) when ``arg`` is ``field|contains: text`` on a String field."""
    if not isinstance(arg, ConditionFieldEqualsValueExpression):
        return None
    value = arg.value
    if not isinstance(value, SigmaString) or value.contains_placeholder():
        return None
    if resolve_field(arg.field).kind == "int":
        return None
    parts = _parts(value)
    multi = SpecialChars.WILDCARD_MULTI
    if len(parts) == 3 and parts[0] is multi and parts[2] is multi and isinstance(parts[1], str):
        return (arg.field, isinstance(value, SigmaCasedString)), parts[1]
    return None


class AuroraClickhouseBackend(ClickhouseBackend):
    """ClickHouse backend whose queries are boolean conditions over AuroraSOC's log table.

    ``convert_rule`` returns one condition per rule (no ``SELECT``): the store adds the table and
    the time range. Field names arrive as ECS names from :func:`tools.sigma.pipeline.
    aurora_pipeline` (or unmapped Sigma names, which go to ``fields``).
    """

    name: ClassVar[str] = "AuroraSOC ClickHouse log table"
    convert_or_as_in: ClassVar[bool] = True
    convert_and_as_in: ClassVar[bool] = False

    # --- fields --------------------------------------------------------------------------

    def escape_and_quote_field(self, field_name: str) -> str:
        return resolve_field(field_name).text

    # --- IN lists: only where exact SQL equality is what Sigma means ------------------------

    def decide_convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> bool:
        if not super().decide_convert_condition_as_in_expression(cond, state):
            return False
        args = cast(list[ConditionFieldEqualsValueExpression], cond.args)
        target = resolve_field(args[0].field)
        for arg in args:
            value = arg.value
            if isinstance(value, SigmaCasedString):
                return False
            if target.kind == "int":
                if not isinstance(value, SigmaString | SigmaNumber) or _integer(value) is None:
                    return False
            elif isinstance(value, SigmaString) and _has_case(str(value)):
                return False
        return True

    def convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> str:
        args = cast(list[ConditionFieldEqualsValueExpression], cond.args)
        target = resolve_field(args[0].field)
        if target.kind == "int":
            numbers = [
                number_literal(_integer(cast(SigmaString | SigmaNumber, arg.value)) or 0)
                for arg in args
            ]
            return f"ifNull({target.sql} IN ({', '.join(numbers)}), 0)"
        texts = [string_literal(self._plain_text(arg.value)) for arg in args]
        return f"{target.text} IN ({', '.join(texts)})"

    @staticmethod
    def _plain_text(value: Any) -> str:
        if isinstance(value, SigmaNumber):
            return str(value.number)
        return str(value)

    # --- OR of many substrings of one field: one multiSearchAny --------------------------

    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> Any:
        """As the stock OR, except that ``|contains`` values of one String field become one
        ``multiSearchAny...`` call: lists of thousands of hashes or paths otherwise exceed
        ClickHouse's default ``max_query_size`` (256 KiB)."""
        needles: dict[tuple[str, bool], list[str]] = {}
        rest: list[Any] = []
        for arg in cond.args:
            key_needle = _contains_needle(arg)
            if key_needle is None:
                rest.append(arg)
            else:
                key, needle = key_needle
                needles.setdefault(key, []).append(needle)
        if not any(len(found) > 1 for found in needles.values()):
            return super().convert_condition_or(cond, state)
        expressions: list[str] = []
        for (field_name, cased), found in needles.items():
            text = resolve_field(field_name).text
            function = "multiSearchAny" if cased else "multiSearchAnyCaseInsensitiveUTF8"
            for start in range(0, len(found), _MAX_NEEDLES):
                chunk = ", ".join(map(string_literal, found[start : start + _MAX_NEEDLES]))
                expressions.append(f"{function}({text}, [{chunk}])")
        for arg in rest:
            expressions.append(
                str(
                    self.convert_condition(arg, state)
                    if self.compare_precedence(cond, arg)
                    else self.convert_condition_group(arg, state)
                )
            )
        return " OR ".join(expressions)

    # --- field = value ---------------------------------------------------------------------

    def _string_condition(self, cond: ConditionFieldEqualsValueExpression, *, cased: bool) -> str:
        target = resolve_field(cond.field)
        value = cast(SigmaString, cond.value)
        if target.kind == "int":
            number = _integer(value)
            if number is not None:
                return f"ifNull({target.sql} = {number_literal(number)}, 0)"
        return match_parts(target.text, _parts(value), cased=cased)

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return self._string_condition(cond, cased=False)

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return self._string_condition(cond, cased=True)

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        target = resolve_field(cond.field)
        number = cast(SigmaNumber, cond.value).number
        if target.kind == "int":
            return f"ifNull({target.sql} = {number_literal(number)}, 0)"
        return f"{target.text} = {string_literal(str(number))}"

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        target = resolve_field(cond.field)
        value = cast(SigmaBool, cond.value)
        if target.kind == "int":
            return f"ifNull({target.sql} = {int(value.boolean)}, 0)"
        return f"lowerUTF8({target.text}) = {string_literal(str(value.boolean).lower())}"

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        regex = self._regex(cast(SigmaRegularExpression, cond.value))
        return f"match({resolve_field(cond.field).text}, {regex})"

    def _regex(self, value: SigmaRegularExpression) -> str:
        # pySigma's default policy compiles every regex with RE2, ClickHouse's engine, at parse
        # time: a PCRE-only construct is rejected there with RE2's message.
        pattern = str(value.regexp)
        flags = "".join(sorted(_REGEX_FLAGS[f] for f in value.flags))
        # ClickHouse's match() lets ``.`` cross line breaks unless told otherwise; Sigma's ``.``
        # does so only with the ``s`` flag (a multi-line command line must not widen a rule).
        if "s" not in flags:
            flags += "-s"
        return string_literal(f"(?{flags})" + pattern)

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        text = resolve_field(cond.field).text
        cidr = cast(SigmaCIDRExpression, cond.value)
        if cidr.network.version == 4:
            valid, placeholder = f"isIPv4String({text})", "'0.0.0.0'"
        else:
            valid, placeholder = f"(isIPv6String({text}) AND NOT isIPv4String({text}))", "'::'"
        # isIPAddressInRange throws on a non-address even where the guard is false (no short
        # circuit is promised), so the address it sees is always a valid one.
        return (
            f"({valid} AND isIPAddressInRange(if({valid}, {text}, {placeholder}),"
            f" {string_literal(str(cidr.network))}))"
        )

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        target = resolve_field(cond.field)
        compare = cast(SigmaCompareExpression, cond.value)
        operator = _COMPARE_SQL[compare.op]
        number = number_literal(compare.number.number)
        operand = target.sql if target.kind == "int" else f"toFloat64OrNull({target.text})"
        return f"ifNull({operand} {operator} {number}, 0)"

    def convert_condition_field_eq_field(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        reference = cast(SigmaFieldReference, cond.value)
        left = resolve_field(cond.field).text
        right = resolve_field(reference.field).text
        # Field references compare the two values as Sigma strings: case-insensitively.
        left_folded, right_folded = f"lowerUTF8({left})", f"lowerUTF8({right})"
        if reference.starts_with and reference.ends_with:
            return f"positionCaseInsensitiveUTF8({left}, {right}) > 0"
        if reference.starts_with:
            return f"startsWith({left_folded}, {right_folded})"
        if reference.ends_with:
            return f"endsWith({left_folded}, {right_folded})"
        return f"{left_folded} = {right_folded}"

    def convert_condition_field_eq_val_null(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        target = resolve_field(cond.field)
        if target.kind == "int":
            return f"isNull({target.sql})"
        # An absent key reads as '' from the map, so this is "absent or empty".
        return f"{target.sql} = ''"

    def convert_condition_field_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        target = resolve_field(cond.field)
        if target.kind == "map":
            return f"mapContains(fields, {string_literal(target.name)})"
        if target.kind == "int":
            return f"isNotNull({target.sql})"
        return f"{target.sql} != ''"

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"NOT {self.convert_condition_field_exists(cond, state)}"

    # --- keywords: values without a field ---------------------------------------------------

    @staticmethod
    def _anywhere(predicate: Callable[[str], str]) -> str:
        """``predicate`` true of ``raw`` or of any flattened leaf of ``fields``."""
        return f"({predicate('raw')} OR arrayExists(v -> {predicate('v')}, mapValues(fields)))"

    def convert_condition_val_str(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        parts = _parts(cast(SigmaString, cond.value))
        multi = SpecialChars.WILDCARD_MULTI
        # A keyword matches anywhere in the event: an implicit *value*.
        if not parts or parts[0] is not multi:
            parts.insert(0, multi)
        if len(parts) == 1 or parts[-1] is not multi:
            parts.append(multi)
        cased = isinstance(cond.value, SigmaCasedString)
        return self._anywhere(lambda text: match_parts(text, parts, cased=cased))

    def convert_condition_val_num(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        literal = string_literal(str(cast(SigmaNumber, cond.value).number))
        return self._anywhere(lambda text: f"position({text}, {literal}) > 0")

    def convert_condition_val_re(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> str:
        regex = self._regex(cast(SigmaRegularExpression, cond.value))
        return self._anywhere(lambda text: f"match({text}, {regex})")

    # --- output ----------------------------------------------------------------------------

    def finalize_query_default(
        self, rule: Any, query: str, index: int, state: ConversionState
    ) -> str:
        return query
