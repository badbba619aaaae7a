"""Detection rules: Sigma converted once (at create or update) into a ClickHouse condition,
listed and edited under an optimistic version; and a rule drafted from one log event.

A rule whose logsource maps to no events of the log store (:mod:`tools.sigma.logsource`) would
never match anything. Enabling one is refused with AURORA-4222 naming ``logsource`` and why (at
creation, or by an update); saved disabled (how a corpus is imported in bulk), it is kept with
the reason among its ``warnings`` and ``logsource.unmapped``, and stays disabled."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.commit import check_version, commit_versioned
from core.db.lookup import get_or_404
from core.db.pages import fetch_page
from core.db.sequences import next_id
from core.schemas import PageQuery, Severity
from core.validation import field_errors
from gateway.detections.conversion import SigmaConverter
from gateway.detections.events import field_value
from gateway.detections.models import DetectionRule, Feedback, RuleRun, Suppression
from gateway.detections.schemas import PromoteRequest, RuleCreate, RuleQuery, RuleUpdate
from tools.sigma import Conversion, check_logsource, logsource_refused


def _severity(level: str | None) -> Severity:
    """A Sigma level is the platform's severity; a rule without one is medium."""
    return Severity(level) if level is not None and level in Severity else Severity.MEDIUM


def _apply(rule: DetectionRule, conversion: Conversion, text: str) -> None:
    meta = conversion.meta
    rule.sigma = text
    rule.sigma_id = meta.id
    rule.title = meta.title[:500]
    rule.description = meta.description
    rule.level = meta.level
    rule.severity = _severity(meta.level)
    rule.status = meta.status
    rule.condition = conversion.condition
    rule.correlation = (
        dataclasses.asdict(conversion.correlation) if conversion.correlation else None
    )
    rule.techniques = list(meta.techniques)
    rule.tags = list(meta.tags)
    logsource: dict[str, str | None] = {
        "product": meta.product,
        "category": meta.category,
        "service": meta.service,
    }
    warnings = list(conversion.warnings)
    reason = conversion.logsource_error
    if reason is not None:
        logsource["unmapped"] = reason
        warnings = [w for w in warnings if w != reason]
        warnings.append(f"{reason}; the rule is kept disabled: {KEPT_DISABLED}")
    rule.logsource = logsource
    rule.warnings = warnings


KEPT_DISABLED: Final = (
    "it matches no event, and cannot be enabled until its logsource is one the log store holds"
)


def _refuse_enabling(rule: DetectionRule) -> None:
    """AURORA-4222 when the saved ``rule``'s logsource maps to nothing (it is to be enabled)."""
    reason = rule.logsource.get("unmapped")
    if isinstance(reason, str):
        raise logsource_refused(
            product=rule.logsource.get("product"),
            category=rule.logsource.get("category"),
            service=rule.logsource.get("service"),
            reason=reason,
        )


async def create_rule(
    *, db: AsyncSession, converter: SigmaConverter, actor: str, body: RuleCreate
) -> DetectionRule:
    """Validate and convert the rule (AURORA-4222 with pySigma's messages, naming the limit it
    is past, or naming its ``logsource`` when it is to be enabled and maps to nothing), then
    save it."""
    conversion = await converter.convert(body.sigma)
    if body.enabled:
        check_logsource(conversion)
    rule = DetectionRule(
        id=await next_id(db, "RULE"),
        enabled=body.enabled,
        interval_seconds=body.interval_seconds,
        lookback_seconds=body.lookback_seconds or body.interval_seconds + 60,
        next_run_at=utcnow() if body.enabled else None,
        created_by=actor,
    )
    _apply(rule, conversion, body.sigma)
    db.add(rule)
    await db.commit()
    return rule


async def get_rule(*, db: AsyncSession, rule_id: str) -> DetectionRule:
    """The rule; AURORA-4040 naming ``rule_id`` when there is none."""
    return await get_or_404(db, DetectionRule, rule_id, name="rule_id")


async def rule_rows[M: (RuleRun, Suppression, Feedback)](
    db: AsyncSession, model: type[M], *, rule_id: str, query: PageQuery, sort: str = "-created_at"
) -> tuple[list[M], int]:
    """A page of the rule's rows of ``model`` (its runs, suppressions or feedback), newest
    first; AURORA-4040 naming ``rule_id`` when there is no such rule."""
    await get_rule(db=db, rule_id=rule_id)
    return await fetch_page(
        db,
        model,
        where=[model.rule_id == rule_id],
        sort=sort,
        limit=query.limit,
        offset=query.offset,
    )


async def update_rule(
    *, db: AsyncSession, converter: SigmaConverter, rule_id: str, body: RuleUpdate
) -> DetectionRule:
    """Apply the changes; AURORA-4090 when ``body.version`` is stale or another writer changed
    the rule first, AURORA-4222 when the rule would be enabled with a logsource that maps to
    nothing (nothing is changed then)."""
    rule = await get_rule(db=db, rule_id=rule_id)
    check_version(kind="rule", ident=rule_id, current=rule.version, wanted=body.version)
    if body.sigma is not None:
        conversion = await converter.convert(body.sigma)
        if body.enabled or (body.enabled is None and rule.enabled):
            check_logsource(conversion)
        _apply(rule, conversion, body.sigma)
    elif body.enabled:
        _refuse_enabling(rule)
    if body.interval_seconds is not None:
        rule.interval_seconds = body.interval_seconds
    if body.lookback_seconds is not None:
        rule.lookback_seconds = body.lookback_seconds
    if body.enabled is not None and body.enabled != rule.enabled:
        rule.enabled = body.enabled
        rule.next_run_at = utcnow() if body.enabled else None
    rule.updated_at = utcnow()
    await commit_versioned(db, kind="rule", ident=rule_id)
    return rule


async def list_rules(*, db: AsyncSession, query: RuleQuery) -> tuple[list[DetectionRule], int]:
    """The rules the query's filters match, newest first."""
    where: list[Any] = []
    if query.enabled is not None:
        where.append(DetectionRule.enabled == query.enabled)
    if query.level is not None:
        where.append(DetectionRule.level == query.level)
    if query.q:
        where.append(DetectionRule.title.ilike(f"%{_like(query.q)}%", escape="\\"))
    if not query.technique:
        return await fetch_page(
            db,
            DetectionRule,
            where=where,
            sort="-created_at",
            limit=query.limit,
            offset=query.offset,
        )
    # Techniques are a JSON list: filtered here (a rule set is thousands, not millions).
    wanted = query.technique.upper()
    rows = [
        r
        for r in await db.scalars(
            select(DetectionRule).where(*where).order_by(DetectionRule.created_at.desc())
        )
        if any(t == wanted or t.startswith(wanted + ".") for t in r.techniques)
    ]
    return rows[query.offset : query.offset + query.limit], len(rows)


@dataclasses.dataclass(frozen=True, slots=True)
class EnabledRule:
    """What another domain needs of an enabled rule to say what it can detect: its ATT&CK
    techniques and the logsource whose events it reads."""

    id: str
    title: str
    techniques: list[str]
    logsource: dict[str, Any]


async def enabled_rules(*, db: AsyncSession) -> list[EnabledRule]:
    """Every enabled rule, by id (without its Sigma text or condition)."""
    rows = await db.execute(
        select(
            DetectionRule.id,
            DetectionRule.title,
            DetectionRule.techniques,
            DetectionRule.logsource,
        )
        .where(DetectionRule.enabled.is_(True))
        .order_by(DetectionRule.id)
    )
    return [
        EnabledRule(id=i, title=t, techniques=list(techniques), logsource=dict(logsource))
        for i, t, techniques, logsource in rows
    ]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- a rule drafted from an event -------------------------------------------------------------

_SIGMA_LOGSOURCE: Final = {
    "windows": {"product": "windows"},
    "zeek": {"product": "zeek"},
    "suricata": {"product": "suricata"},
    "syslog": {"product": "linux"},
    "cef": {"category": "firewall"},
    "json": {"product": "aurora", "service": "json"},
}
_WINDOWS_CATEGORY: Final = {
    "1": "process_creation",
    "3": "network_connection",
    "11": "file_event",
    "13": "registry_set",
    "22": "dns_query",
    "4688": "process_creation",
}


def draft_rule(event: dict[str, Any], body: PromoteRequest) -> str:
    """A Sigma rule (YAML) matching ``body.fields`` of ``event`` exactly; AURORA-4220 naming
    each field the event lacks."""
    selection: dict[str, str] = {}
    missing = []
    for name in body.fields:
        value = field_value(event, name) if name not in {"raw", "fields", "id"} else None
        if value is None or value == "":
            missing.append(name)
        else:
            selection[name] = value
    if missing:
        raise field_errors(
            (["body", "fields", name], "the event has no such field", "missing") for name in missing
        )
    logsource = dict(_SIGMA_LOGSOURCE.get(str(event.get("format")), {"product": "aurora"}))
    if event.get("format") == "windows" and (
        category := _WINDOWS_CATEGORY.get(str(event.get("event.code", "")))
    ):
        logsource["category"] = category
    title = body.title or "Drafted from " + ", ".join(f"{k}={v[:40]}" for k, v in selection.items())
    rule = {
        "title": title[:500],
        "status": "experimental",
        "description": body.description
        or f"Drafted from log event {event.get('id')} ({event.get('source')}).",
        "references": [f"aurora:log/{event.get('id')}"],
        "logsource": logsource,
        "detection": {"selection": selection, "condition": "selection"},
        "level": body.level.value,
    }
    return yaml.safe_dump(rule, sort_keys=False, allow_unicode=True)


async def promote_event(
    *,
    db: AsyncSession,
    converter: SigmaConverter,
    actor: str,
    event: dict[str, Any],
    body: PromoteRequest,
) -> DetectionRule:
    """Draft a rule from ``event`` (:func:`draft_rule`), validate it and save it disabled."""
    sigma = draft_rule(event, body)
    return await create_rule(
        db=db, converter=converter, actor=actor, body=RuleCreate(sigma=sigma, enabled=False)
    )
