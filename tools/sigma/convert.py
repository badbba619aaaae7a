"""Sigma rule text → a ClickHouse condition (or correlation query) over the log table.

Parsing is pySigma's, validation too: a rule pySigma rejects, at load, when its conditions are
parsed or when it is converted, raises :class:`core.errors.SigmaValidationFailed` (AURORA-4222)
whose ``detail["errors"]`` lists every message pySigma gave (its exception class and text).

pySigma validators run on every rule (:data:`VALIDATORS`). Those that find a rule that cannot mean
what its author meant block it (:data:`BLOCKING_VALIDATORS`: an invalid modifier chain, a
detection the condition never uses); the others are style findings reported as
``Conversion.warnings``. Validators that need a file name, the whole corpus or online data are
not run.

Every rule's condition is ANDed with its logsource's scope (:mod:`tools.sigma.logsource`): the
events of the log table that are of the kind of log the rule was written for. A rule whose
logsource maps to nothing gets the scope ``0`` (it matches no event) and says why in
``Conversion.logsource_error`` (and its warnings); :func:`check_logsource` turns that into
AURORA-4222 for callers that refuse such a rule.

Correlation rules: ``event_count``, ``value_count`` and ``temporal`` convert to a ``GROUP BY`` /
``HAVING`` query over fixed (tumbling) windows of the rule's timespan; ``temporal_ordered`` and
the ``value_sum``/``avg``/``percentile``/``median`` types are refused with AURORA-4222.

The text is parsed once: its YAML into Python data (at most :data:`MAX_DOCUMENTS` documents, no
aliases, nesting at most :data:`MAX_YAML_DEPTH` deep), then pySigma objects from that data. A
conversion mutates its rule (pySigma's pipelines do), so each conversion gets a rule built afresh
from the parsed data, never from the text again. What pySigma and the SQL writer walk
recursively is bounded before they see it (a condition nests at most
:data:`MAX_CONDITION_DEPTH` deep) and what they produce too (:data:`MAX_QUERY_BYTES`); a rule
beyond a limit is AURORA-4222 naming the limit.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader
from sigma.validation import SigmaValidator
from sigma.validators.core import validators as core_validators

from core.errors import SigmaValidationFailed
from tools.sigma.backend import AuroraClickhouseBackend, resolve_field
from tools.sigma.logsource import describe, scope_sql, unmapped_reason
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

MAX_DOCUMENTS: Final = 50
"""YAML documents one text may hold: a rule, or a correlation with the rules it correlates."""
MAX_YAML_DEPTH: Final = 24
"""Deepest nesting of mappings and lists in one document (a Sigma rule nests about six)."""
MAX_CONDITION_DEPTH: Final = 32
"""Deepest nesting of a condition (each ``not`` and parenthesis adds to it; see
:func:`condition_depth`). pySigma parses, copies and converts conditions recursively: some 150
nested ``not`` exhaust Python's stack."""
MAX_QUERY_BYTES: Final = 1024 * 1024
"""Largest SQL one rule converts to (conditions, and a correlation's aggregation and groups,
which repeat the conditions of the rules it correlates); the store accepts queries of 4 MiB."""

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

    def query(
        self, table: str, condition: str, time_filter: str = "1", shared: Sequence[str] = ()
    ) -> str:
        """``SELECT`` of every window and group whose aggregate meets the condition. ``table`` is
        a quoted ``db.table``; ``time_filter`` a condition on ``timestamp`` the caller adds.
        ``shared`` names columns of the table whose value is also given (``shared_<i>``) where
        every event of the group has the same one (``''`` where they differ or have none): the
        host or source address a brute force came from, whatever the rule grouped by."""
        columns = [
            f"toStartOfInterval(timestamp, INTERVAL {self.timespan_seconds} SECOND) AS window_start"
        ]
        columns += [f"{sql} AS group_{index}" for index, (_, sql) in enumerate(self.group_by)]
        columns += [
            f"if(uniqExact(`{name}`) = 1, toString(any(`{name}`)), '') AS shared_{index}"
            for index, name in enumerate(shared)
            if name.replace("_", "").isalnum()
        ]
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
    """The rule's condition ANDed with its logsource's scope."""
    correlation: Correlation | None = None
    warnings: tuple[str, ...] = field(default=())
    logsource_error: str | None = None
    """Why the rule's logsource (or a correlated rule's) maps to no events of the log table:
    the condition then matches nothing. None when every logsource maps."""

    def count_sql(self, table: str) -> str:
        """``SELECT count()`` of the matching events (``table``: a quoted ``db.table``)."""
        return f"SELECT count() FROM {table} WHERE ({self.condition})"  # noqa: S608 (generated)


def _issue(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__name__, "message": str(error)}


def _rejected(
    errors: Sequence[dict[str, str]], message: str | None = None
) -> SigmaValidationFailed:
    return SigmaValidationFailed({"errors": list(errors)}, message=message)


def _limit(message: str, **limit: int) -> SigmaValidationFailed:
    """AURORA-4222 for a rule past one of this module's limits (``limit`` names it)."""
    return SigmaValidationFailed(
        {"errors": [{"type": "limit", "message": message}], **limit},
        message="Sigma rule exceeds a limit",
    )


def _check_nodes(root: yaml.Node) -> None:
    """Refuse aliases (a node reached twice: "billion laughs" expansions, cycles) and nesting
    deeper than :data:`MAX_YAML_DEPTH`, before any Python object is built. Iterative."""
    seen: set[int] = set()
    pending: list[tuple[yaml.Node, int]] = [(root, 0)]
    while pending:
        node, depth = pending.pop()
        if id(node) in seen:
            raise _limit("YAML aliases are not allowed in a Sigma rule", max_aliases=0)
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            continue
        if depth + 1 > MAX_YAML_DEPTH:
            raise _limit(
                f"YAML nested more than {MAX_YAML_DEPTH} levels deep",
                max_yaml_depth=MAX_YAML_DEPTH,
            )
        pending.extend((child, depth + 1) for child in children)


class _BoundedLoader(SigmaYAMLLoader):
    """pySigma's loader (libyaml; duplicate keys refused) that checks each document's nodes
    (:func:`_check_nodes`) before building it."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_nodes(node)
        return super().construct_document(node)


def _documents(text: str) -> list[dict[str, Any]]:
    """The YAML documents of ``text`` as Python data, parsed once; past
    :data:`MAX_DOCUMENTS` documents parsing stops."""
    documents: list[Any] = []
    loaded: Iterator[Any] = yaml.load_all(text, _BoundedLoader)
    try:
        for document in loaded:
            if len(documents) == MAX_DOCUMENTS:
                raise _limit(
                    f"at most {MAX_DOCUMENTS} YAML documents per request (a rule, or a"
                    " correlation with the rules it correlates)",
                    max_documents=MAX_DOCUMENTS,
                )
            documents.append(document)
    except yaml.YAMLError as err:
        raise _rejected([_issue(err)], "Sigma rule is not valid YAML") from err
    documents = [document for document in documents if document is not None]
    if not all(isinstance(document, dict) for document in documents):
        raise _rejected([{"type": "SigmaError", "message": "a Sigma rule must be a mapping"}])
    return documents or [{}]


_CONDITION_TOKEN: Final[re.Pattern[str]] = re.compile(r"[()]|[^\s()]+")


def condition_depth(condition: str) -> int:
    """An upper bound of how deeply a Sigma condition nests once parsed: each ``not`` is a
    level, each parenthesised group two (its ``or`` and ``and``), each operand two more. Text
    that is no valid condition still gets a number (pySigma reports what is wrong with it)."""
    deepest = 0
    opened: list[int] = []
    base = nots = 0
    for token in _CONDITION_TOKEN.findall(condition):
        word = token.lower()
        if token == "(":
            opened.append(base)
            base, nots = base + nots + 2, 0
        elif token == ")":
            base, nots = (opened.pop() if opened else 0), 0
        elif word == "not":
            nots += 1
        elif word in ("and", "or"):
            nots = 0
        else:
            deepest = max(deepest, base + nots + 2)
            nots = 0
    return max(deepest, base + nots)


def _check_conditions(documents: list[dict[str, Any]]) -> None:
    for document in documents:
        for section in (document.get("detection"), document.get("filter")):
            if not isinstance(section, dict):
                continue
            conditions = section.get("condition")
            for condition in conditions if isinstance(conditions, list) else [conditions]:
                if isinstance(condition, str) and condition_depth(condition) > MAX_CONDITION_DEPTH:
                    raise _limit(
                        f"condition nested more than {MAX_CONDITION_DEPTH} levels deep"
                        " (each 'not' and parenthesis is a level)",
                        max_condition_depth=MAX_CONDITION_DEPTH,
                    )


def _collection(documents: list[dict[str, Any]]) -> SigmaCollection:
    """pySigma's collection of a copy of ``documents`` (pySigma edits what it is given), its
    errors collected, references not resolved yet."""
    try:
        return SigmaCollection.from_dicts(
            copy.deepcopy(documents), collect_errors=True, resolve_references=False
        )
    except SigmaError as err:
        raise _rejected([_issue(err)]) from err


class _Fresh:
    """Rules no conversion has touched, built from the parsed documents: one collection (its
    references left unresolved, so each rule converts on its own) per round, a new round only
    when a rule is converted a second time. Rules are named by their document-order index."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self._documents = documents
        self._built: list[tuple[SigmaCollection, set[int]]] = []

    def rule(self, index: int) -> SigmaRule:
        built = next((b for b in self._built if index not in b[1]), None)
        if built is None:
            built = (_collection(self._documents), set())
            self._built.append(built)
        collection, taken = built
        taken.add(index)
        rule = collection.rules[index]
        if not isinstance(rule, SigmaRule):
            raise TypeError(f"rule {index} of the collection is no detection rule")
        for candidate in collection.rules:
            if isinstance(candidate, SigmaFilter):
                rule = cast(SigmaRule, candidate.apply_on_rule(rule))
        return rule


def parse_rule(text: str) -> SigmaCollection:
    """Parse and validate Sigma YAML (one rule, or a correlation with its rules).

    Raises AURORA-4222 with every pySigma error (load, condition parsing, rule references,
    blocking validators), each once, or naming the limit a rule is past. Returns the collection
    with references resolved; its rules are pySigma's own objects, which a conversion mutates.
    """
    return _validated(_documents(text))[0]


def _validated(documents: list[dict[str, Any]]) -> tuple[SigmaCollection, list[int]]:
    """The validated collection (see :func:`parse_rule`), and for each of its rules the index
    it had in document order, before references were resolved (which reorders them)."""
    _check_conditions(documents)
    collection = _collection(documents)
    found: list[BaseException] = list(collection.errors)
    for rule in collection.rules:
        found += rule.errors
        if isinstance(rule, SigmaRule) and not rule.errors:
            try:
                for condition in rule.detection.parsed_condition:
                    condition.parse()
            except SigmaError as err:
                found.append(err)
    in_order = {id(rule): index for index, rule in enumerate(collection.rules)}
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
    return collection, [in_order[id(rule)] for rule in collection.rules]


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


def _condition(rule: SigmaRule) -> str:
    """Convert ``rule`` (a fresh one: the pipeline mutates it), scoped to its logsource."""
    source = rule.logsource
    scope = scope_sql(source.product, source.category, source.service)
    return f"({scope}) AND ({_detection(rule)})"


def _unmapped(rules: Sequence[SigmaRule]) -> str | None:
    """Why the first of ``rules`` whose logsource maps to nothing does not map."""
    for rule in rules:
        source = rule.logsource
        reason = unmapped_reason(source.product, source.category, source.service)
        if reason is not None:
            return reason
    return None


def check_logsource(conversion: Conversion) -> None:
    """AURORA-4222 naming ``logsource`` and why, when the rule's logsource maps to nothing."""
    reason = conversion.logsource_error
    if reason is not None:
        meta = conversion.meta
        raise logsource_refused(
            product=meta.product, category=meta.category, service=meta.service, reason=reason
        )


def logsource_refused(
    *, product: str | None, category: str | None, service: str | None, reason: str
) -> SigmaValidationFailed:
    """The AURORA-4222 of a rule refused for its logsource: ``detail`` has the ``errors`` entry
    (type ``logsource``, the reason) and the ``logsource`` itself."""
    return SigmaValidationFailed(
        {
            "errors": [{"type": "logsource", "message": reason}],
            "logsource": {"product": product, "category": category, "service": service},
        },
        message=f"Sigma rule's logsource ({describe(product, category, service)})"
        " maps to no events",
    )


def _detection(rule: SigmaRule) -> str:
    """The rule's detection alone as SQL."""
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
    return _convert(text, one=False)


def convert(text: str) -> Conversion:
    """Convert one Sigma rule (or one correlation with the rules it correlates).

    Raises AURORA-4222 when pySigma rejects the rule, when it uses something the log table's
    SQL cannot express, when it is past a limit of this module, or when the text holds more
    than one rule to convert (found before converting any).
    """
    return _convert(text, one=True)[0]


def _convert(text: str, *, one: bool) -> list[Conversion]:
    try:
        documents = _documents(text)
        collection, in_order = _validated(documents)
        targets = _targets(collection)
        if one and len(targets) != 1:
            raise _rejected(
                [{"type": "SigmaError", "message": f"expected one rule, found {len(targets)}"}]
            )
        warnings = tuple(_validate(collection, WARNING_VALIDATORS))
        fresh = _Fresh(documents)
        out: list[Conversion] = []
        for index in targets:
            rule = collection.rules[index]
            if isinstance(rule, SigmaCorrelationRule):
                conversion = _convert_correlation(fresh, collection, in_order, rule, warnings)
            else:
                condition = _condition(fresh.rule(in_order[index]))
                unmapped = _unmapped([rule])
                conversion = Conversion(
                    _meta(rule, rule),
                    condition,
                    None,
                    warnings + ((unmapped,) if unmapped else ()),
                    unmapped,
                )
            _check_size(conversion)
            out.append(conversion)
        return out
    except RecursionError as err:  # a backstop: the limits above should keep every walk short
        raise _limit("the rule nests too deeply to convert") from err


def _check_size(conversion: Conversion) -> None:
    size = len(conversion.condition)
    if conversion.correlation is not None:
        correlation = conversion.correlation
        size += len(correlation.aggregate) + sum(len(sql) for _, sql in correlation.group_by)
    if size > MAX_QUERY_BYTES:
        raise _limit(
            f"the rule converts to more than {MAX_QUERY_BYTES // 1024} KiB of SQL",
            max_query_bytes=MAX_QUERY_BYTES,
        )


def _convert_correlation(
    fresh: _Fresh,
    collection: SigmaCollection,
    in_order: list[int],
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
        bases.append((base, _condition(fresh.rule(in_order[index]))))

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
    unmapped = _unmapped([base for base, _ in bases])
    return Conversion(
        _meta(rule, bases[0][0]),
        events,
        correlation,
        warnings + ((unmapped,) if unmapped else ()),
        unmapped,
    )
