"""Sigma rule text → a ClickHouse condition (or correlation query) over the log table.

Parsing is pySigma's, validation too: a rule pySigma rejects, at load, when its conditions are
parsed or when it is converted, raises :class:`core.errors.SigmaValidationFailed` (AURORA-4222)
whose ``detail["errors"]`` lists every message pySigma gave (its exception class and text).

pySigma validators run on every rule (:data:`VALIDATORS`). Those that find a rule that cannot mean
what its author meant block it (:data:`BLOCKING_VALIDATORS`: an invalid modifier chain, a
detection the condition never uses); the others are style findings reported as
``Conversion.warnings``. Validators that need a file name, the whole corpus or online data are
not run.

Correlation rules: ``event_count``, ``value_count`` and ``temporal`` convert to a ``GROUP BY`` /
``HAVING`` query over fixed (tumbling) windows of the rule's timespan; ``temporal_ordered`` and
the ``value_sum``/``avg``/``percentile``/``median`` types are refused with AURORA-4222.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader
from sigma.validation import SigmaValidator
from sigma.validators.core import validators as core_validators

from core.errors import SigmaValidationFailed
from tools.sigma.backend import AuroraClickhouseBackend, resolve_field
from tools.sigma.pipeline import aurora_pipeline, field_mapping

BLOCKING_VALIDATORS: Final[tuple[str, ...]] = (
    "invalid_modifier_combinations",
    "dangling_detection",
)
WARNING_VALIDATORS: Final[tuple[str, ...]] = (
    "all_of_them_condition",
    "them_condition_with_single_detection",
    "double_wildcard",
    "escaped_wildcard",
    "control_character",
    "number_as_string",
    "wildcards_instead_of_modifiers",
    "duplicate_tag",
    "duplicate_references",
)
VALIDATORS: Final[tuple[str, ...]] = BLOCKING_VALIDATORS + WARNING_VALIDATORS

SUPPORTED_CORRELATIONS: Final[frozenset[SigmaCorrelationType]] = frozenset(
    {
        SigmaCorrelationType.EVENT_COUNT,
        SigmaCorrelationType.VALUE_COUNT,
        SigmaCorrelationType.TEMPORAL,
    }
)
_OPERATORS: Final[dict[SigmaCorrelationConditionOperator, str]] = {
    SigmaCorrelationConditionOperator.LT: "<",
    SigmaCorrelationConditionOperator.LTE: "<=",
    SigmaCorrelationConditionOperator.GT: ">",
    SigmaCorrelationConditionOperator.GTE: ">=",
    SigmaCorrelationConditionOperator.EQ: "=",
    SigmaCorrelationConditionOperator.NEQ: "!=",
}
_TECHNIQUE: Final[re.Pattern[str]] = re.compile(r"t\d{4}(?:\.\d{3})?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """What a detection keeps of its rule besides the query."""

    id: str | None
    title: str
    level: str | None
    status: str | None
    description: str | None
    techniques: tuple[str, ...]
    """ATT&CK ids from ``attack.tNNNN[.NNN]`` tags, upper case (``T1059.001``)."""
    tags: tuple[str, ...]
    product: str | None
    category: str | None
    service: str | None

    @property
    def logsource(self) -> str:
        """``product/category`` or ``product/service`` (``-`` for a missing part)."""
        return f"{self.product or '-'}/{self.category or self.service or '-'}"


@dataclass(frozen=True, slots=True)
class Correlation:
    """A correlation rule's aggregation over the events its rules match
    (``Conversion.condition``)."""

    type: Literal["event_count", "value_count", "temporal"]
    timespan_seconds: int
    group_by: tuple[tuple[str, str], ...]
    """(Sigma field name, SQL expression) per ``group-by`` field."""
    aggregate: str
    """SQL of the aggregated value compared by ``operator`` and ``count``."""
    operator: str
    count: int

    def query(self, table: str, condition: str, time_filter: str = "1") -> str:
        """``SELECT`` of every window and group whose aggregate meets the condition. ``table`` is
        a quoted ``db.table``; ``time_filter`` a condition on ``timestamp`` the caller adds."""
        columns = [
            f"toStartOfInterval(timestamp, INTERVAL {self.timespan_seconds} SECOND) AS window_start"
        ]
        columns += [f"{sql} AS group_{index}" for index, (_, sql) in enumerate(self.group_by)]
        keys = ["window_start"] + [f"group_{index}" for index in range(len(self.group_by))]
        # Every part is SQL this module generated from escaped literals and schema columns.
        return (
            f"SELECT {', '.join(columns)}, {self.aggregate} AS {self.type},"  # noqa: S608
            " count() AS events, min(timestamp) AS first_seen, max(timestamp) AS last_seen"
            f" FROM {table} WHERE ({condition}) AND ({time_filter})"
            f" GROUP BY {', '.join(keys)}"
            f" HAVING {self.type} {self.operator} {self.count}"
        )


@dataclass(frozen=True, slots=True)
class Conversion:
    """One converted rule: the ``WHERE`` condition over the log table (for a correlation: the
    events of any rule it correlates) and, for a correlation, its aggregation."""

    meta: RuleMeta
    condition: str
    correlation: Correlation | None = None
    warnings: tuple[str, ...] = field(default=())

    def count_sql(self, table: str) -> str:
        """``SELECT count()`` of the matching events (``table``: a quoted ``db.table``)."""
        return f"SELECT count() FROM {table} WHERE ({self.condition})"  # noqa: S608 (generated)


def _issue(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__name__, "message": str(error)}


def _rejected(
    errors: Sequence[dict[str, str]], message: str | None = None
) -> SigmaValidationFailed:
    return SigmaValidationFailed({"errors": list(errors)}, message=message)


def _documents(text: str) -> list[dict[str, Any]]:
    try:
        documents = [doc for doc in yaml.load_all(text, SigmaYAMLLoader) if doc is not None]
    except yaml.YAMLError as err:
        raise _rejected([_issue(err)], "Sigma rule is not valid YAML") from err
    if not all(isinstance(doc, dict) for doc in documents):
        raise _rejected([{"type": "SigmaError", "message": "a Sigma rule must be a mapping"}])
    return documents or [{}]


def _rule(text: str, index: int) -> SigmaRule:
    """Rule ``index`` of ``text``, freshly parsed on its own (pipelines mutate rules)."""
    return SigmaRule.from_dict(_documents(text)[index])


def parse_rule(text: str) -> SigmaCollection:
    """Parse and validate Sigma YAML (one rule, or a correlation with its rules).

    Raises AURORA-4222 with every pySigma error (load, condition parsing, rule references,
    blocking validators), each once. Returns the collection with references resolved; its rules
    are pySigma's own objects, which a conversion mutates: parse again for each conversion.
    """
    try:
        collection = SigmaCollection.from_dicts(
            _documents(text), collect_errors=True, resolve_references=False
        )
    except SigmaError as err:
        raise _rejected([_issue(err)]) from err
    found: list[BaseException] = list(collection.errors)
    for rule in collection.rules:
        found += rule.errors
        if isinstance(rule, SigmaRule) and not rule.errors:
            try:
                for condition in rule.detection.parsed_condition:
                    condition.parse()
            except SigmaError as err:
                found.append(err)
    if not found:
        try:
            collection.resolve_rule_references()
        except SigmaError as err:
            found.append(err)
    if found:
        unique = {(issue["type"], issue["message"]): issue for issue in map(_issue, found)}
        raise _rejected(list(unique.values()))
    blocking = _validate(collection, BLOCKING_VALIDATORS)
    if blocking:
        raise _rejected([{"type": "validator", "message": issue} for issue in blocking])
    return collection


def _validate(collection: SigmaCollection, names: Sequence[str]) -> list[str]:
    validator = SigmaValidator([core_validators[name] for name in names])
    return [
        f"{type(issue).__name__}: {issue.description}"
        for issue in validator.validate_rules(
            iter([rule for rule in collection.rules if isinstance(rule, SigmaRule)])
        )
    ]


def _meta(rule: SigmaRule | SigmaCorrelationRule, logsource_of: SigmaRule | None) -> RuleMeta:
    tags = tuple(f"{tag.namespace}.{tag.name}" for tag in rule.tags)
    techniques = tuple(
        dict.fromkeys(
            tag.name.upper()
            for tag in rule.tags
            if tag.namespace == "attack" and _TECHNIQUE.fullmatch(tag.name)
        )
    )
    logsource = logsource_of.logsource if logsource_of is not None else None
    return RuleMeta(
        id=str(rule.id) if rule.id else None,
        title=rule.title,
        level=rule.level.name.lower() if rule.level else None,
        status=rule.status.name.lower() if rule.status else None,
        description=rule.description,
        techniques=techniques,
        tags=tags,
        product=logsource.product if logsource else None,
        category=logsource.category if logsource else None,
        service=logsource.service if logsource else None,
    )


def _condition(text: str, index: int) -> str:
    """Convert rule ``index`` of ``text`` from a fresh parse (pipelines mutate rules)."""
    rule = _rule(text, index)
    backend = AuroraClickhouseBackend(processing_pipeline=aurora_pipeline())
    try:
        queries: list[Any] = backend.convert_rule(rule)
    except (SigmaError, NotImplementedError) as err:
        raise _rejected([_issue(err)], "Sigma rule cannot be converted") from err
    if len(queries) != 1 or not isinstance(queries[0], str):
        raise _rejected([{"type": "SigmaError", "message": "rule converted to no single query"}])
    return queries[0]


def _targets(collection: SigmaCollection) -> list[int]:
    """Rules to output: correlations, and plain rules no correlation uses (or that ask to be
    generated on their own)."""
    used: set[int] = set()
    for rule in collection.rules:
        if isinstance(rule, SigmaCorrelationRule) and not rule.generate:
            used.update(id(reference.rule) for reference in rule.rules or [])
    return [index for index, rule in enumerate(collection.rules) if id(rule) not in used]


def convert_all(text: str) -> list[Conversion]:
    """Every rule of ``text`` to output (see :func:`convert`), in document order."""
    collection = parse_rule(text)
    warnings = tuple(_validate(collection, WARNING_VALIDATORS))
    out: list[Conversion] = []
    for index in _targets(collection):
        rule = collection.rules[index]
        if isinstance(rule, SigmaCorrelationRule):
            out.append(_convert_correlation(text, collection, rule, warnings))
        else:
            out.append(Conversion(_meta(rule, rule), _condition(text, index), None, warnings))
    return out


def convert(text: str) -> Conversion:
    """Convert one Sigma rule (or one correlation with the rules it correlates).

    Raises AURORA-4222 when pySigma rejects the rule, when it uses something the log table's
    SQL cannot express, or when the text holds more than one rule to convert.
    """
    conversions = convert_all(text)
    if len(conversions) != 1:
        raise _rejected(
            [{"type": "SigmaError", "message": f"expected one rule, found {len(conversions)}"}]
        )
    return conversions[0]


def _convert_correlation(
    text: str,
    collection: SigmaCollection,
    rule: SigmaCorrelationRule,
    warnings: tuple[str, ...],
) -> Conversion:
    if rule.type not in SUPPORTED_CORRELATIONS:
        raise _rejected(
            [
                {
                    "type": "unsupported",
                    "message": f"correlation type {rule.type.name.lower()} is not supported"
                    " (supported: event_count, value_count, temporal)",
                }
            ]
        )
    condition = rule.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise _rejected(
            [
                {
                    "type": "unsupported",
                    "message": "compound correlation conditions are not supported",
                }
            ]
        )
    references = rule.rules or []
    bases: list[tuple[SigmaRule, str]] = []
    for reference in references:
        base = reference.rule
        if not isinstance(base, SigmaRule):
            raise _rejected(
                [
                    {
                        "type": "unsupported",
                        "message": "correlations of correlations are not supported",
                    }
                ]
            )
        index = next(i for i, candidate in enumerate(collection.rules) if candidate is base)
        bases.append((base, _condition(text, index)))

    def per_rule(name: str) -> str:
        """One SQL expression for a field as each correlated rule names and maps it."""
        alias = rule.aliases.aliases.get(name) if rule.aliases else None
        expressions: list[str] = []
        for reference, (base, _) in zip(references, bases, strict=True):
            field_name = alias.mapping.get(reference, name) if alias is not None else name
            source = base.logsource
            mapped = field_mapping(source.product, source.category, source.service)
            expressions.append(resolve_field(mapped.get(field_name, field_name)).text)
        if len(set(expressions)) == 1:
            return expressions[0]
        branches = ", ".join(
            f"({cond}), {expr}" for (_, cond), expr in zip(bases, expressions, strict=True)
        )
        return f"multiIf({branches}, '')"

    group_by = tuple((name, per_rule(name)) for name in rule.group_by or [])
    kind: Literal["event_count", "value_count", "temporal"]
    if rule.type is SigmaCorrelationType.EVENT_COUNT:
        kind, aggregate = "event_count", "count()"
    elif rule.type is SigmaCorrelationType.VALUE_COUNT:
        if not isinstance(condition.fieldref, str):
            raise _rejected([{"type": "SigmaError", "message": "value_count needs a field"}])
        kind, aggregate = "value_count", f"uniqExact({per_rule(condition.fieldref)})"
    else:
        kind = "temporal"
        aggregate = " + ".join(f"(countIf({cond}) > 0)" for _, cond in bases)
    correlation = Correlation(
        type=kind,
        timespan_seconds=int(rule.timespan.seconds),
        group_by=group_by,
        aggregate=aggregate,
        operator=_OPERATORS[condition.op],
        count=int(condition.count),
    )
    events = " OR ".join(f"({cond})" for _, cond in bases)
    return Conversion(_meta(rule, bases[0][0]), events, correlation, warnings)
