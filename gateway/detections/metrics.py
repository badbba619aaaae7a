"""Detection metrics: each rule's runs, matches, alerts and precision, and the ATT&CK
techniques the enabled rules cover."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.detections.models import DetectionRule, Feedback, RuleRun
from gateway.detections.schemas import (
    AttackCoverage,
    DetectionMetrics,
    FeedbackCounts,
    MetricsTotals,
    RuleMetrics,
)


async def _verdicts(db: AsyncSession) -> dict[str, dict[str, int]]:
    """Per rule, how many of each feedback verdict it was given."""
    verdicts: dict[str, dict[str, int]] = {}
    rows = await db.execute(
        select(Feedback.rule_id, Feedback.verdict, func.count()).group_by(
            Feedback.rule_id, Feedback.verdict
        )
    )
    for rule_id, verdict, count in rows.all():
        verdicts.setdefault(rule_id, {})[verdict] = int(count)
    return verdicts


async def _last_errors(db: AsyncSession) -> dict[str, str | None]:
    """Per rule, the error of its newest failed run."""
    failures = await db.execute(
        select(RuleRun.rule_id, RuleRun.error)
        .where(RuleRun.status == "failed")
        .order_by(RuleRun.started_at)
    )
    return dict(failures.all())  # the newest failure wins


async def metrics(*, db: AsyncSession) -> DetectionMetrics:
    """Per rule: runs, matches, alerts, precision from feedback, mean duration, last error;
    and the ATT&CK techniques the enabled rules cover."""
    rules = list(await db.scalars(select(DetectionRule).order_by(DetectionRule.created_at)))
    runs = {
        rule_id: (count, matches, alerts, suppressed, mean, failed)
        for rule_id, count, matches, alerts, suppressed, mean, failed in (
            await db.execute(
                select(
                    RuleRun.rule_id,
                    func.count(),
                    func.coalesce(func.sum(RuleRun.matches), 0),
                    func.coalesce(func.sum(RuleRun.alerts), 0),
                    func.coalesce(func.sum(RuleRun.suppressed), 0),
                    func.avg(RuleRun.duration_ms),
                    func.sum(case((RuleRun.status == "failed", 1), else_=0)),
                ).group_by(RuleRun.rule_id)
            )
        ).all()
    }
    verdicts = await _verdicts(db)
    last_errors = await _last_errors(db)
    items = []
    for rule in rules:
        count, matches, alerts, suppressed, mean, failed = runs.get(rule.id, (0, 0, 0, 0, None, 0))
        given = verdicts.get(rule.id, {})
        feedback = FeedbackCounts(
            true_positive=given.get("true_positive", 0),
            false_positive=given.get("false_positive", 0),
            benign=given.get("benign", 0),
        )
        judged = feedback.true_positive + feedback.false_positive
        items.append(
            RuleMetrics(
                rule_id=rule.id,
                title=rule.title,
                enabled=rule.enabled,
                runs=int(count),
                failed_runs=int(failed or 0),
                matches=int(matches),
                alerts=int(alerts),
                suppressed=int(suppressed),
                feedback=feedback,
                precision=round(feedback.true_positive / judged, 4) if judged else None,
                mean_duration_ms=round(float(mean), 3) if mean is not None else None,
                last_error=last_errors.get(rule.id),
                last_run_at=rule.last_run_at,
                techniques=rule.techniques,
            )
        )
    covered = sorted({t for r in rules if r.enabled for t in r.techniques})
    return DetectionMetrics(
        rules=items,
        totals=MetricsTotals(
            rules=len(rules),
            enabled=sum(1 for r in rules if r.enabled),
            runs=sum(i.runs for i in items),
            alerts=sum(i.alerts for i in items),
        ),
        attack_coverage=AttackCoverage(techniques=covered, count=len(covered)),
    )
