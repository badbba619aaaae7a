"""ATT&CK coverage: the techniques the platform can detect with the telemetry it actually gets.

Two kinds of detection count: the enabled Sigma rules (their techniques are their
``attack.tNNNN[.NNN]`` tags; the events they read are those of their logsource, as
:mod:`tools.sigma.logsource` maps it onto the log table) and the enabled network detectors
(:data:`gateway.network.detectors.DETECTOR_TECHNIQUES`, reading
:data:`~gateway.network.detectors.DETECTOR_TELEMETRY` from the enabled telemetry sources).
A detection's telemetry is flowing when the store holds events of that kind within the lookback;
a technique is ``covered`` when at least one of its detections has flowing telemetry, and
``no_telemetry`` when none has: a rule over a source that sends nothing covers nothing.
Events of a network telemetry format whose source the configuration disables count for no one.

Every count comes from one aggregate query over the lookback (one ``countIf`` per distinct
kind of events): some 10M events a second on two cores (4M events against 69 kinds in 0.34 to
0.5 s), so a day at 2,000 flows a second costs some 20 s; a shorter lookback costs in
proportion. :func:`navigator_layer` writes the result as an ATT&CK Navigator layer
(layer format 4.5), the file analysts load into the Navigator.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from core.logstore.schema import time_bounds
from core.logstore.store import LogStore
from gateway.detections.api import EnabledRule, enabled_rules
from gateway.network.configuration import Detector, NetworkConfig, TelemetrySource
from gateway.network.detectors import DETECTOR_TECHNIQUES, DETECTOR_TELEMETRY
from tools.attack import AttackKB
from tools.attack.kb import normalise_technique_id
from tools.sigma.logsource import NOTHING, describe, scope_sql

TechniqueState = Literal["covered", "no_telemetry"]

NAVIGATOR_VERSION: Final = "5.1.0"
"""The ATT&CK Navigator release whose layer format (4.5) the layer is written in."""
LAYER_VERSION: Final = "4.5"
COVERED_COLORS: Final = ("#c7e9c0", "#238b45")
"""The gradient of covered techniques, by how many detections with flowing telemetry."""
NO_TELEMETRY_COLOR: Final = "#fdae6b"


class CoverageQuery(BaseModel):
    """``GET /network-telemetry/coverage``."""

    model_config = ConfigDict(extra="forbid")

    lookback_seconds: int = Field(default=86400, ge=300, le=30 * 86400)
    """How far back telemetry must have been seen to count as flowing."""
    format: Literal["json", "navigator"] = "json"
    """``navigator``: the ATT&CK Navigator layer instead of the coverage document."""


class CoverageSource(BaseModel):
    """One detection of a technique."""

    kind: Literal["rule", "detector"]
    id: str
    name: str
    telemetry: str
    """What it reads: a Sigma logsource (``product=zeek service=dns``) or a detector's kind of
    events (``flows``, ``dns queries``)."""
    telemetry_flowing: bool
    events: int
    """Events of that kind counted: in the last hour (:data:`RECENT`) when it flowed then,
    else in the whole lookback (see ``counted_seconds``)."""
    counted_seconds: int
    """The span ``events`` counts over."""


class CoveredTechnique(BaseModel):
    id: str
    name: str
    """Empty for an id the knowledge base does not hold (``in_attack`` false)."""
    tactics: list[str]
    in_attack: bool = True
    state: TechniqueState
    sources: list[CoverageSource]
    url: str | None = None


class CoverageTotals(BaseModel):
    techniques: int
    covered: int
    no_telemetry: int
    rules: int
    rules_flowing: int
    detectors: int
    detectors_flowing: int


class Coverage(BaseModel):
    """``GET /network-telemetry/coverage``."""

    generated_at: datetime
    window_start: datetime
    lookback_seconds: int
    attack_version: str | None
    techniques: list[CoveredTechnique]
    """By technique id."""
    totals: CoverageTotals
    sources_enabled: list[str]


class _Detection(BaseModel):
    kind: Literal["rule", "detector"]
    id: str
    name: str
    telemetry: str
    condition: str
    techniques: list[str]


def _rule_detection(rule: EnabledRule) -> _Detection:
    product = rule.logsource.get("product")
    category = rule.logsource.get("category")
    service = rule.logsource.get("service")
    return _Detection(
        kind="rule",
        id=rule.id,
        name=rule.title,
        telemetry=describe(product, category, service),
        condition=scope_sql(product, category, service),
        techniques=list(rule.techniques),
    )


def _detector_detections(config: NetworkConfig) -> list[_Detection]:
    return [
        _Detection(
            kind="detector",
            id=detector.value,
            name=detector.value.replace("_", " "),
            telemetry=DETECTOR_TELEMETRY[detector].kind,
            condition=DETECTOR_TELEMETRY[detector].condition,
            techniques=list(DETECTOR_TECHNIQUES[detector]),
        )
        for detector in Detector
        if getattr(config.thresholds, detector.value).enabled
    ]


def _source_filter(config: NetworkConfig, detection: _Detection) -> str:
    """Which formats' events count for ``detection``: a detector reads only the enabled
    telemetry sources; nothing counts events of a disabled one."""
    enabled = [source.value for source in config.sources]
    if detection.kind == "detector":
        if not enabled:
            return NOTHING
        return "format IN (" + ", ".join(f"'{name}'" for name in enabled) + ")"
    disabled = [source.value for source in TelemetrySource if source.value not in enabled]
    if not disabled:
        return "1"
    return "format NOT IN (" + ", ".join(f"'{name}'" for name in disabled) + ")"


RECENT: Final = timedelta(hours=1)
"""The span looked at first for flowing telemetry."""


async def _count(
    store: LogStore, conditions: Sequence[str], *, start: datetime, end: datetime
) -> list[int]:
    """Events matching each condition in ``[start, end]``, in one scan."""
    if not conditions:
        return []
    counts = ", ".join(f"countIf({condition})" for condition in conditions)
    window, bounds = time_bounds(start, end, end_inclusive=True)
    result = await store.query(
        f"SELECT {counts} FROM {store.table} "  # noqa: S608 (conditions are built, not given)
        f"WHERE {' AND '.join(window)}",
        bounds,
    )
    return [int(value) for value in result.result_rows[0]]


async def coverage(
    db: AsyncSession,
    store: LogStore,
    config: NetworkConfig,
    *,
    kb: AttackKB,
    now: datetime,
    lookback: timedelta,
) -> Coverage:
    """The techniques the enabled rules and detectors report, each with its detections and
    whether their telemetry flowed in ``[now - lookback, now]`` (see the module docstring)."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    start = now - lookback
    detections = [_rule_detection(rule) for rule in await enabled_rules(db=db)]
    detections += _detector_detections(config)

    conditions: dict[str, int] = {}
    for detection in detections:
        if detection.condition != NOTHING:
            full = f"({_source_filter(config, detection)}) AND ({detection.condition})"
            conditions.setdefault(full, len(conditions))
    # The last hour first: a source that flows shows there, and the whole lookback (a day by
    # default: tens of millions of flows) is then read only for what did not.
    recent = max(start, now - RECENT)
    listed = list(conditions)
    counted = await _count(store, listed, start=recent, end=now)
    spans = [int((now - recent).total_seconds())] * len(listed)
    quiet = [index for index, events in enumerate(counted) if events == 0]
    if quiet and recent > start:
        older = await _count(store, [listed[i] for i in quiet], start=start, end=now)
        for index, events in zip(quiet, older, strict=True):
            counted[index] = events
            spans[index] = int(lookback.total_seconds())

    by_technique: dict[str, list[CoverageSource]] = {}
    for detection in detections:
        events, span = 0, int(lookback.total_seconds())
        if detection.condition != NOTHING:
            full = f"({_source_filter(config, detection)}) AND ({detection.condition})"
            events, span = counted[conditions[full]], spans[conditions[full]]
        source = CoverageSource(
            kind=detection.kind,
            id=detection.id,
            name=detection.name,
            telemetry=detection.telemetry,
            telemetry_flowing=events > 0,
            events=events,
            counted_seconds=span,
        )
        for technique in dict.fromkeys(_technique_ids(kb, detection.techniques)):
            by_technique.setdefault(technique, []).append(source)

    techniques = [_technique(kb, tid, sources) for tid, sources in by_technique.items()]
    techniques.sort(key=lambda t: _sort_key(t.id))
    rules = [d for d in detections if d.kind == "rule"]
    flowing = {(s.kind, s.id) for t in techniques for s in t.sources if s.telemetry_flowing}
    return Coverage(
        generated_at=now,
        window_start=start,
        lookback_seconds=int(lookback.total_seconds()),
        attack_version=kb.attack_version,
        techniques=techniques,
        totals=CoverageTotals(
            techniques=len(techniques),
            covered=sum(t.state == "covered" for t in techniques),
            no_telemetry=sum(t.state == "no_telemetry" for t in techniques),
            rules=len(rules),
            rules_flowing=sum(("rule", d.id) in flowing for d in rules),
            detectors=len(detections) - len(rules),
            detectors_flowing=sum(
                ("detector", d.id) in flowing for d in detections if d.kind == "detector"
            ),
        ),
        sources_enabled=[source.value for source in config.sources],
    )


def _technique_ids(kb: AttackKB, ids: Sequence[str]) -> list[str]:
    """The current id of each (a revoked one's replacement); an id the knowledge base does not
    know is kept as written (upper case)."""
    found: list[str] = []
    for raw in ids:
        tid = normalise_technique_id(raw)
        if tid is None:
            continue
        lookup = kb.get(tid)
        found.append(lookup.technique.id if lookup is not None else tid)
    return found


def _technique(kb: AttackKB, tid: str, sources: list[CoverageSource]) -> CoveredTechnique:
    lookup = kb.get(tid)
    technique = lookup.technique if lookup is not None else None
    sources.sort(key=lambda s: (not s.telemetry_flowing, s.kind, s.id))
    return CoveredTechnique(
        id=tid,
        name=technique.full_name if technique else "",
        tactics=list(technique.tactics) if technique else [],
        in_attack=technique is not None,
        state="covered" if any(s.telemetry_flowing for s in sources) else "no_telemetry",
        sources=sources,
        url=technique.url if technique else None,
    )


def _sort_key(tid: str) -> tuple[int, int]:
    base, _, sub = tid.partition(".")
    return int(base[1:]), int(sub) if sub else -1


# -- ATT&CK Navigator ------------------------------------------------------------------------


def _major(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


def _comment(technique: CoveredTechnique) -> str:
    flowing = [s for s in technique.sources if s.telemetry_flowing]
    if flowing:
        return f"Covered by {len(flowing)} of {len(technique.sources)} detections with telemetry"
    return f"No telemetry: {len(technique.sources)} detection(s), none of whose events were seen"


def _metadata(technique: CoveredTechnique) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [{"name": "state", "value": technique.state}]
    for source in technique.sources:
        entries.append({"divider": True})
        entries.append({"name": source.kind, "value": f"{source.name} ({source.id})"})
        entries.append({"name": "telemetry", "value": source.telemetry})
        entries.append(
            {
                "name": "events",
                "value": f"{source.events}" + ("" if source.telemetry_flowing else " (none)"),
            }
        )
    return entries


def navigator_layer(coverage: Coverage, kb: AttackKB) -> dict[str, Any]:
    """``coverage`` as an ATT&CK Navigator layer (format 4.5, Enterprise ATT&CK of ``kb``'s
    release): a covered technique is scored by its detections with flowing telemetry (on a
    green gradient); one without telemetry is scored 0 and drawn orange. Techniques the
    knowledge base does not hold are left out (the Navigator could not place them)."""
    placed = [t for t in coverage.techniques if t.in_attack]
    scores = [sum(s.telemetry_flowing for s in t.sources) for t in placed if t.state == "covered"]
    highest = max(scores, default=1)
    techniques: list[dict[str, Any]] = []
    for technique in placed:
        flowing = sum(s.telemetry_flowing for s in technique.sources)
        entry: dict[str, Any] = {
            "techniqueID": technique.id,
            "score": flowing,
            "comment": _comment(technique),
            "enabled": True,
            "metadata": _metadata(technique),
            "showSubtechniques": False,
        }
        if technique.state == "no_telemetry":
            entry["color"] = NO_TELEMETRY_COLOR
        if technique.url:
            entry["links"] = [{"label": "ATT&CK", "url": technique.url}]
        techniques.append(entry)
    versions: dict[str, str] = {"navigator": NAVIGATOR_VERSION, "layer": LAYER_VERSION}
    attack = _major(coverage.attack_version or kb.attack_version)
    if attack is not None:
        versions = {"attack": attack, **versions}
    totals = coverage.totals
    return {
        "name": "AuroraSOC detection coverage",
        "versions": versions,
        "domain": "enterprise-attack",
        "description": (
            f"Techniques the enabled Sigma rules and network detectors report, with telemetry "
            f"seen in the {coverage.lookback_seconds} s before "
            f"{coverage.generated_at.isoformat()}: {totals.covered} covered, "
            f"{totals.no_telemetry} without telemetry."
        ),
        "sorting": 3,
        "layout": {
            "layout": "side",
            "showID": True,
            "showName": True,
            "expandedSubtechniques": "annotated",
        },
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {
            "colors": list(COVERED_COLORS),
            "minValue": 1,
            "maxValue": max(highest, 2),
        },
        "legendItems": [
            {"label": "Covered (telemetry flowing)", "color": COVERED_COLORS[1]},
            {"label": "Detection without telemetry", "color": NO_TELEMETRY_COLOR},
        ],
        "showTacticRowBackground": False,
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
        "metadata": [
            {"name": "generated_at", "value": coverage.generated_at.isoformat()},
            {"name": "lookback_seconds", "value": str(coverage.lookback_seconds)},
            {"name": "sources_enabled", "value": ", ".join(coverage.sources_enabled) or "none"},
        ],
    }
