"""Automation rules: their wire models, the conditions they test and the service that keeps them.

A rule names a trigger (the kind of event it listens to), conditions on the event's fields and
the actions it takes when they all hold. :mod:`gateway.soar.automation` runs them.

Conditions read a field by a dotted path into the event's payload (``severity``,
``receipt.verdict``, ``entities.0.value``). ``matches`` takes a regular expression run by the
``regex`` module with a time limit (:data:`REGEX_TIMEOUT_SECONDS`) on at most
:data:`MATCH_SUBJECT_MAX` characters of the field: a pattern that backtracks catastrophically
on some value stops there and the firing is recorded as failed (``condition_timeout``), instead
of a loop no heuristic over the pattern's text could rule out holding the worker.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import jmespath
import regex
from jmespath.exceptions import JMESPathError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.lookup import get_or_404
from core.db.pages import equal, fetch_page
from core.db.sequences import next_id
from core.schemas import SEVERITY_RANK, PageQuery, Tags
from core.validation import bounded_json
from gateway.soar import definition
from gateway.soar.models import AutomationFiring, AutomationRule

log = logging.getLogger("aurora.soar.rules")

Trigger = Literal[
    "alert.created",
    "alert.updated",
    "detection.matched",
    "investigation.finished",
    "network.attack",
]
TOPICS: Final[dict[str, str]] = {
    "alert.created": "alerts.created",
    "alert.updated": "alerts.updated",
    "detection.matched": "detections.matched",
    "investigation.finished": "investigations.receipt",
    "network.attack": "network.attacks",
}
"""The bus topic each trigger listens to."""
TRIGGERS: Final[dict[str, str]] = {topic: trigger for trigger, topic in TOPICS.items()}
"""The trigger of each bus topic."""

Op = Literal["eq", "ne", "in", "not_in", "contains", "gte", "lte", "exists", "matches"]

PATH: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9_-]{1,64}){0,15}$")
"""A dotted path: names (and list indexes) separated by dots, at most 16 deep."""
PATTERN_MAX: Final = 512
"""The longest ``matches`` pattern."""
MATCH_SUBJECT_MAX: Final = 65_536
"""How much of a field ``matches`` searches."""
REGEX_TIMEOUT_SECONDS: Final = 0.05
"""How long one ``matches`` may search before it counts as a failure."""
EXPRESSION_ROOTS: Final = ("event", "topic", "trigger", "rule")
"""What a ``run_playbook`` input's ``${{ expr }}`` (JMESPath, rendered by
:func:`gateway.soar.definition.render`) reads: the event's payload, its topic, the rule's
trigger and the rule itself (``rule.id``, ``rule.name``)."""

Scalar = str | int | float | bool | None


class ConditionTimeout(Exception):
    """A ``matches`` condition ran past its time limit."""


def resolve(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data`` (dicts by key, lists by index); None when any
    step is missing."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@functools.lru_cache(maxsize=512)
def _compile(pattern: str) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError) as err:
        raise ValueError(f"not a valid regular expression: {err}") from err


class Condition(BaseModel):
    """``field`` (a dotted path into the event) ``op`` ``value``.

    ``in``/``not_in`` take a list (a list field holds when any element is in it); ``contains``
    is a substring of a text, an element of a list or a key of an object; ``gte``/``lte``
    compare numbers, severities by rank, other texts (ISO timestamps) in order; ``exists``
    takes ``true`` (the default) or ``false``; ``matches`` a regular expression searched in a
    text. A field that is absent holds for ``ne``, ``not_in`` and ``exists: false`` only.
    """

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=300, pattern=PATH.pattern)
    op: Op
    value: Any = Field(default=None, validate_default=True)

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        if op in {"in", "not_in"}:
            if not isinstance(value, list) or not 1 <= len(value) <= 200:
                raise ValueError(f"{op} takes a list of 1 to 200 values")
            if not all(_scalar(item) for item in value):
                raise ValueError(f"{op} takes texts, numbers, booleans or null")
        elif op in {"gte", "lte"}:
            if not (_number(value) or isinstance(value, str)):
                raise ValueError(f"{op} takes a number or a text")
        elif op == "exists":
            if value is None:
                return True
            if not isinstance(value, bool):
                raise ValueError("exists takes true or false")
        elif op == "matches":
            if not isinstance(value, str) or not 1 <= len(value) <= PATTERN_MAX:
                raise ValueError(f"matches takes a regular expression of 1 to {PATTERN_MAX} chars")
            _compile(value)
        elif not _scalar(value):
            raise ValueError(f"{op} takes a text, a number, a boolean or null")
        if isinstance(value, str) and len(value) > 2048:
            raise ValueError("at most 2048 characters")
        return value

    def holds(self, payload: Mapping[str, Any]) -> bool:
        """Whether the condition holds for ``payload``; :class:`ConditionTimeout` when a
        ``matches`` search runs past its time limit."""
        return holds(self.field, self.op, self.value, payload)


def _ordered(actual: Any, value: Any) -> tuple[Any, Any] | None:
    if _number(actual) and _number(value):
        return actual, value
    if isinstance(actual, str) and isinstance(value, str):
        if actual in SEVERITY_RANK and value in SEVERITY_RANK:
            return SEVERITY_RANK[actual], SEVERITY_RANK[value]
        return actual, value
    return None


def holds(field: str, op: str, value: Any, payload: Mapping[str, Any]) -> bool:
    """One condition, as stored (``{"field", "op", "value"}``), tested against ``payload``."""
    actual = resolve(payload, field)
    if op == "exists":
        return (actual is not None) == (value is not False)
    if op == "ne":
        return bool(actual != value)
    if op == "not_in":
        return not holds(field, "in", value, payload)
    if actual is None:
        return (op == "eq" and value is None) or (op == "in" and None in value)
    match op:
        case "eq":
            return bool(actual == value)
        case "in":
            if isinstance(actual, list):
                return any(item in value for item in actual if _scalar(item))
            return _scalar(actual) and actual in value
        case "contains":
            if isinstance(actual, str):
                return isinstance(value, str) and value in actual
            if isinstance(actual, list):
                return value in actual
            if isinstance(actual, Mapping):
                return isinstance(value, str) and value in actual
            return False
        case "gte" | "lte":
            pair = _ordered(actual, value)
            if pair is None:
                return False
            return bool(pair[0] >= pair[1]) if op == "gte" else bool(pair[0] <= pair[1])
        case "matches":
            if not isinstance(actual, str):
                return False
            try:
                found = _compile(value).search(
                    actual[:MATCH_SUBJECT_MAX], timeout=REGEX_TIMEOUT_SECONDS
                )
            except TimeoutError as err:
                raise ConditionTimeout(field) from err
            return found is not None
    return False


def _check_expressions(value: Any) -> Any:
    for found in definition.expressions(value):
        try:
            jmespath.compile(found.strip())
        except (JMESPathError, RecursionError) as err:
            shown = found.strip()[:80]
            raise ValueError(f"${{{{ {shown} }}}} is not a JMESPath expression") from err
    return value


Inputs = Annotated[
    dict[str, Any],
    Field(max_length=50),
    AfterValidator(bounded_json(max_bytes=16_384, max_depth=8)),
    AfterValidator(_check_expressions),
]


class RunPlaybook(BaseModel):
    """Queue a run of a playbook; ``inputs`` may read the event (:data:`EXPRESSION_ROOTS`):
    ``"${{ event.id }}"``, ``"${{ event.entities[?type=='ip'].value }}"``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["run_playbook"]
    playbook_id: str = Field(pattern=r"^[a-z0-9-]{3,64}$")
    inputs: Inputs = Field(default_factory=dict)


class DispatchInvestigation(BaseModel):
    """Investigate the event's alert (or case)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["dispatch_investigation"]
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


class Assign(BaseModel):
    """Assign the event's alert."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["assign"]
    assignee: str = Field(min_length=1, max_length=64)


class Tag(BaseModel):
    """Add tags to the event's alert."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["tag"]
    tags: Annotated[Tags, Field(min_length=1)]


class PromoteToCase(BaseModel):
    """Open a case from the event's alert (an alert already on a case stays on it)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["promote_to_case"]


Action = Annotated[
    RunPlaybook | DispatchInvestigation | Assign | Tag | PromoteToCase,
    Field(discriminator="type"),
]


class RuleCreate(BaseModel):
    """A new automation rule."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5_000)
    enabled: bool = True
    trigger: Trigger
    conditions: list[Condition] = Field(default_factory=list, max_length=20)
    """All must hold (none: every event of the trigger)."""
    actions: list[Action] = Field(min_length=1, max_length=10)
    """Taken in order; the first that fails stops the rest."""
    max_per_minute: int = Field(default=60, ge=1, le=10_000)
    """Flood guard: more matching events than this in any minute are counted, not acted on."""
    max_depth: int = Field(default=2, ge=0, le=10)
    """Loop guard: how many automation firings deep the rule's effects may be. An event that
    ``max_depth`` firings led to (or whose chain holds this rule that many times) is counted,
    not acted on: with 2, the rule acts on an analyst's change and on the change its own action
    made, and stops at the next. 0 acts on nothing: every match is counted only (a rule on
    trial)."""


class RuleRead(BaseModel):
    """An automation rule and what it did."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    enabled: bool
    trigger: str
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    max_per_minute: int
    max_depth: int
    fired: int
    skipped_loop: int
    skipped_rate: int
    failed: int
    last_fired_at: datetime | None
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class RuleQuery(PageQuery):
    """``?enabled=&trigger=`` and the page."""

    enabled: bool | None = None
    trigger: Trigger | None = None


class FiringRead(BaseModel):
    """One matching event and what the rule did with it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: str
    topic: str
    subject: str | None
    outcome: str
    depth: int
    detail: dict[str, Any]
    created_at: datetime


async def list_rules(*, db: AsyncSession, query: RuleQuery) -> tuple[list[AutomationRule], int]:
    """One page of the rules the query's filters match, newest first."""
    where = equal((AutomationRule.enabled, query.enabled), (AutomationRule.trigger, query.trigger))
    return await fetch_page(
        db, AutomationRule, where=where, sort="-created_at", limit=query.limit, offset=query.offset
    )


async def get_rule(*, db: AsyncSession, rule_id: str) -> AutomationRule:
    """The rule ``rule_id``; AURORA-4040 when there is none."""
    return await get_or_404(db, AutomationRule, rule_id, name="rule_id")


async def create_rule(*, db: AsyncSession, actor: str, body: RuleCreate) -> AutomationRule:
    """Store a validated rule (``AR-YYYY-NNNNN``); it acts from the next matching event on."""
    now = utcnow()
    rule = AutomationRule(
        id=await next_id(db, "AR"),
        name=body.name,
        description=body.description,
        enabled=body.enabled,
        trigger=body.trigger,
        conditions=[c.model_dump(mode="json") for c in body.conditions],
        actions=[a.model_dump(mode="json") for a in body.actions],
        max_per_minute=body.max_per_minute,
        max_depth=body.max_depth,
        fired=0,
        skipped_loop=0,
        skipped_rate=0,
        failed=0,
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
    )
    db.add(rule)
    await db.commit()
    log.info("automation rule %s created by %s", rule.id, actor)
    return rule


async def toggle_rule(*, db: AsyncSession, actor: str, rule_id: str) -> AutomationRule:
    """Enable a disabled rule or disable an enabled one; AURORA-4040 when there is none."""
    rule = await get_or_404(db, AutomationRule, rule_id, name="rule_id", for_update=True)
    rule.enabled = not rule.enabled
    rule.updated_by, rule.updated_at = actor, utcnow()
    await db.commit()
    log.info("automation rule %s %s by %s", rule_id, "enabled" if rule.enabled else "off", actor)
    return rule


async def delete_rule(*, db: AsyncSession, actor: str, rule_id: str) -> None:
    """Delete the rule and its firings; AURORA-4040 when there is none."""
    await get_rule(db=db, rule_id=rule_id)
    await db.execute(delete(AutomationFiring).where(AutomationFiring.rule_id == rule_id))
    await db.execute(delete(AutomationRule).where(AutomationRule.id == rule_id))
    await db.commit()
    log.info("automation rule %s deleted by %s", rule_id, actor)


async def list_firings(
    *, db: AsyncSession, rule_id: str, outcome: str | None = None, limit: int = 50
) -> list[AutomationFiring]:
    """The rule's newest firings (of one ``outcome`` when given); AURORA-4040 unknown rule."""
    await get_rule(db=db, rule_id=rule_id)
    statement = select(AutomationFiring).where(AutomationFiring.rule_id == rule_id)
    if outcome is not None:
        statement = statement.where(AutomationFiring.outcome == outcome)
    statement = statement.order_by(AutomationFiring.id.desc()).limit(limit)
    return list(await db.scalars(statement))
