"""threat_intel: what is known about indicators, from local feeds and reputation services.

Built-in analysis: normalise the indicators (and those in the context text), look each up in
the local intel store (STIX / MISP / CSV feeds), ask the configured reputation services, and
score severity and confidence from what agrees. The finding's techniques are the ones the feeds
associate with a listed indicator; those the context text describes are reported apart, as
``context_techniques`` evidence.

The finding's ``corroborations`` are what the platform may contain without a human: an exact,
unexpired feed listing rated medium or worse, or a reputation service's ``malicious`` verdict,
on that very indicator (a CIDR or parent-domain listing, an expired one, a ``suspicious``
verdict corroborate nothing). They come from the tools' results on both paths, never from a
model's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from agents.acp.finding import (
    Corroboration,
    CorroborationKind,
    Evidence,
    Finding,
    Impact,
    RecommendedAction,
    TargetSource,
)
from agents.acp.server import CallContext
from agents.runtime.analysis import attack_tool
from agents.runtime.evidence import context_evidence
from agents.runtime.specialist import (
    AgentDeps,
    IocIn,
    Specialist,
    ToolTrace,
    finding_iocs,
    normalised_iocs,
    string_tool,
)
from agents.threat_intel.schemas import AnalyzeThreatRequest
from core.errors import ValidationFailed
from core.llm import LLMBackend
from core.llm.types import Tool
from core.schemas import Severity
from tools.intel import (
    AsyncIntelStore,
    CsvMapping,
    ImportReport,
    IntelMatch,
    MatchKind,
    ReputationConnector,
    ReputationOutcome,
    build_connectors,
    check_reputation,
    import_csv,
    import_misp_event,
    import_stix_bundle,
)
from tools.ioc import Ioc, extract_iocs

# How much one source's word counts towards the confidence, by how it matched.
MATCH_WEIGHT = {"exact": 1.0, "cidr": 0.7, "parent_domain": 0.6}
REPUTATION_SEVERITY: dict[str, Severity] = {
    "malicious": Severity.HIGH,
    "suspicious": Severity.MEDIUM,
}
BLOCK_ACTION: Final[dict[str, tuple[str, Impact]]] = {
    "ip": ("block_ip", "medium"),
    "domain": ("block_domain", "low"),
    "url": ("block_url", "low"),
    "hash": ("quarantine_file", "medium"),
    "email": ("block_sender", "low"),
}
REPUTATION_TYPES = frozenset({"ip", "domain", "url", "hash"})
log = logging.getLogger("aurora.agents.threat_intel")


@dataclass(slots=True)
class Verdict:
    """What the analysis concluded about one indicator."""

    ioc: Ioc
    severity: Severity = Severity.INFORMATIONAL
    confidence: float = 0.0
    reasons: list[str] = field(default_factory=list)
    techniques: set[str] = field(default_factory=set)
    actors: set[str] = field(default_factory=set)
    families: set[str] = field(default_factory=set)
    known: bool = False
    corroborations: list[Corroboration] = field(default_factory=list)
    """Independent confirmations of this very indicator (see the module doc)."""

    def raise_to(self, severity: Severity) -> None:
        self.severity = max(self.severity, severity)

    def corroborate(self, kind: CorroborationKind, source: str, detail: str) -> None:
        """Record that ``source`` (a feed, a reputation service) confirms this very indicator."""
        self.corroborations.append(
            Corroboration(
                type=self.ioc.type,
                value=self.ioc.value,
                kind=kind,
                source=source[:256],
                detail=detail,
            )
        )

    def support(self, weight: float) -> None:
        """Independent sources agreeing raise confidence: 1 - Π(1 - w)."""
        self.confidence = 1 - (1 - self.confidence) * (1 - max(0.0, min(weight, 0.99)))


def severity_from_confidence(confidence: int) -> Severity:
    """For feeds that state no severity (STIX indicators): how sure the source is that the
    indicator is malicious: 80+ high, 50+ medium, else low."""
    if confidence >= 80:
        return Severity.HIGH
    return Severity.MEDIUM if confidence >= 50 else Severity.LOW


def special_address(ioc: Ioc) -> str | None:
    """Why an IP cannot be external threat infrastructure, or None."""
    if ioc.type != "ip":
        return None
    address = ipaddress.ip_address(ioc.value)
    for label, flag in (
        ("private", address.is_private),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return label
    return None


class ThreatIntel(Specialist, name="threat_intel", method="analyze_threat"):
    """Threat intelligence: what feeds and reputation services know about indicators, with the
    actors, malware and ATT&CK techniques behind them."""

    method_description = (
        "Assess indicators (and optional context text) against threat intelligence."
    )
    request_model = AnalyzeThreatRequest

    def __init__(self, deps: AgentDeps) -> None:
        super().__init__(deps)
        # The corroborations the model's look-ups found, per request (its trace) in flight.
        self._llm_found: dict[ToolTrace, list[Corroboration]] = {}

    async def start(self) -> None:
        """Open the intel store under the data dir, import the configured feeds, and build the
        reputation connectors whose API keys are set."""
        settings = self.deps.settings
        folder = settings.data_dir / "intel"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = AsyncIntelStore.open(folder / "intel.db")
        self.deps.extra["intel_store"] = store
        for feed in settings.intel_feeds:
            try:
                report = await import_feed(store, feed)
            except (OSError, ValidationFailed) as err:
                log.error("feed %s not imported: %s", feed.name, err)
                continue
            log.info(
                "feed %s: %d imported, %d updated, %d skipped",
                feed.name,
                report.imported,
                report.updated,
                len(report.skipped),
            )
        self.deps.extra["reputation"] = build_connectors(settings)

    async def stop(self) -> None:
        for connector in self.connectors:
            with contextlib.suppress(Exception):
                await connector.aclose()
        if self.store is not None:
            await self.store.close()

    @property
    def store(self) -> AsyncIntelStore | None:
        store = self.deps.extra.get("intel_store")
        return store if isinstance(store, AsyncIntelStore) else None

    @property
    def connectors(self) -> list[ReputationConnector]:
        return list(self.deps.extra.get("reputation", []))

    async def _lookup(self, iocs: list[Ioc], trace: ToolTrace) -> dict[Ioc, list[IntelMatch]]:
        store = self.store
        if store is None or not iocs:
            return {}
        results = await trace.call(
            "intel_lookup",
            {"indicators": [f"{i.type}:{i.value}" for i in iocs]},
            lambda: store.lookup_many([(i.type, i.value) for i in iocs]),
            lambda found: f"{sum(len(r.matches) for r in found)} match(es) in local feeds",
        )
        return {ioc: list(result.matches) for ioc, result in zip(iocs, results, strict=True)}

    async def _reputation(
        self, iocs: list[Ioc], trace: ToolTrace
    ) -> dict[Ioc, list[ReputationOutcome]]:
        if not self.connectors:
            return {}
        outcomes: dict[Ioc, list[ReputationOutcome]] = {}
        for ioc in iocs:
            if ioc.type not in REPUTATION_TYPES or special_address(ioc):
                continue
            outcomes[ioc] = await trace.call(
                "reputation",
                {"type": ioc.type, "value": ioc.value},
                functools.partial(check_reputation, self.connectors, ioc.type, ioc.value),
                lambda found: (
                    ", ".join(
                        f"{o.source}: {o.reputation.verdict if o.reputation else o.error_code}"
                        for o in found
                    )
                    or "no service rates this type"
                ),
            )
        return outcomes

    def _judge(
        self,
        ioc: Ioc,
        matches: list[IntelMatch],
        outcomes: list[ReputationOutcome],
    ) -> Verdict:
        verdict = Verdict(ioc)
        special = special_address(ioc)
        if special:
            verdict.reasons.append(f"{special} address: not external infrastructure")
            verdict.support(0.5)
            return verdict
        for match in matches:
            record = match.record
            weight = MATCH_WEIGHT.get(match.match.value, 0.5) * record.confidence / 100
            if match.expired:
                weight *= 0.3
            verdict.known = True
            verdict.support(weight)
            severity = record.severity or severity_from_confidence(record.confidence)
            if match.expired:
                severity = min(severity, Severity.LOW)
            verdict.raise_to(severity)
            if match.match is MatchKind.EXACT and not match.expired and severity >= Severity.MEDIUM:
                verdict.corroborate(
                    "threat_intel",
                    record.source,
                    f"listed {severity}, confidence {record.confidence}",
                )
            verdict.techniques.update(record.techniques)
            verdict.actors.update(record.threat_actors)
            verdict.families.update(record.malware_families)
            how = "" if match.match.value == "exact" else f" ({match.match.value} match)"
            expired = " (expired)" if match.expired else ""
            verdict.reasons.append(f"listed by {record.source}{how}{expired}")
        for outcome in outcomes:
            reputation = outcome.reputation
            if reputation is None:
                continue
            rated = reputation.verdict.value
            if rated in REPUTATION_SEVERITY:
                verdict.known = True
                verdict.raise_to(REPUTATION_SEVERITY[rated])
                verdict.support(max(0.4, reputation.score / 100))
                verdict.reasons.append(f"{reputation.source}: {rated} ({reputation.score}/100)")
                if rated == "malicious":
                    verdict.corroborate(
                        "reputation", reputation.source, f"malicious ({reputation.score}/100)"
                    )
            elif rated == "harmless":
                verdict.reasons.append(f"{reputation.source}: harmless")
        if not verdict.known:
            verdict.severity = Severity.LOW if not outcomes else Severity.INFORMATIONAL
            verdict.reasons.append("no intelligence on this indicator")
        return verdict

    async def builtin(self, request: AnalyzeThreatRequest, trace: ToolTrace) -> Finding:
        given, rejected = normalised_iocs(request.iocs)
        from_text = extract_iocs(request.context) if request.context else []
        iocs = list(dict.fromkeys([*given, *from_text]))
        await trace.thought(
            "intake",
            f"{len(given)} indicator(s) given, {len(from_text)} found in the context"
            + (f", {len(rejected)} rejected" if rejected else ""),
        )
        matches = await self._lookup(iocs, trace)
        outcomes = await self._reputation(iocs, trace)
        verdicts = [self._judge(i, matches.get(i, []), outcomes.get(i, [])) for i in iocs]

        techniques: dict[str, None] = {}
        for verdict in verdicts:
            for technique in sorted(verdict.techniques):
                canonical = self.deps.attack.canonical_id(technique)
                if canonical:
                    techniques[canonical] = None
        # What the context describes is the caller's reading, not intelligence on an indicator.
        from_context = await self.map_context(request.context, trace)

        known = [v for v in verdicts if v.known]
        severity = Severity.highest(v.severity for v in verdicts)
        if known:
            confidence = max(v.confidence for v in known)
        elif verdicts:
            # Nothing known: we are fairly sure there is no intelligence, not that it is benign.
            confidence = 0.3
        else:
            confidence = 0.0
        named = set(given)

        def sources(verdict: Verdict) -> list[TargetSource]:
            found = [TargetSource(kind=c.kind, ref=c.source) for c in verdict.corroborations]
            if verdict.ioc in named:
                found.append(TargetSource(kind="alert_field", ref="iocs"))
            else:
                found.append(TargetSource(kind="text", ref="context"))
            return found

        actions = [
            RecommendedAction.of(
                BLOCK_ACTION[v.ioc.type][0],
                v.ioc.value,
                "; ".join(v.reasons),
                BLOCK_ACTION[v.ioc.type][1],
                sources(v),
            )
            for v in known
            if v.ioc.type in BLOCK_ACTION and v.severity >= Severity.HIGH
        ]
        actions += [
            RecommendedAction.of("watchlist", v.ioc.value, "; ".join(v.reasons), "low", sources(v))
            for v in known
            if v.severity == Severity.MEDIUM
        ]
        evidence = list(trace.evidence)
        for verdict in verdicts:
            evidence.append(
                Evidence(
                    kind="indicator_verdict",
                    ref=f"{verdict.ioc.type}:{verdict.ioc.value}",
                    summary=f"{verdict.severity}: " + "; ".join(verdict.reasons)[:3900],
                )
            )
        if rejected:
            evidence.append(
                Evidence(kind="rejected_iocs", ref="request", summary="; ".join(rejected)[:4000])
            )
        evidence += context_evidence(t for t in from_context if t not in techniques)
        return Finding(
            agent=self.name,
            summary=_summary(verdicts, list(techniques), from_context),
            severity=severity,
            confidence=round(confidence, 3),
            mitre_techniques=list(techniques),
            iocs=finding_iocs(iocs),
            evidence=evidence,
            recommended_actions=actions,
            corroborations=_unique([c for v in verdicts for c in v.corroborations]),
        )

    async def with_llm(
        self, llm: LLMBackend, request: BaseModel, ctx: CallContext, trace: ToolTrace
    ) -> Finding:
        """The model's finding, with the corroborations its look-ups found (computed from the
        tools' results, as on the built-in path: the model cannot add one)."""
        found: list[Corroboration] = []
        self._llm_found[trace] = found
        try:
            finding = await super().with_llm(llm, request, ctx, trace)
        finally:
            self._llm_found.pop(trace, None)
        return finding.model_copy(update={"corroborations": _unique(found)})

    def llm_tools(self, request: AnalyzeThreatRequest, trace: ToolTrace) -> list[Tool]:
        sink = self._llm_found.get(trace)

        async def lookup(arguments: dict[str, Any]) -> object:
            given, _ = normalised_iocs([IocIn.model_validate(arguments)])
            found = await self._lookup(given, trace)
            outcomes = await self._reputation(given, trace)
            if sink is not None:
                for ioc in given:
                    judged = self._judge(ioc, found.get(ioc, []), outcomes.get(ioc, []))
                    sink.extend(judged.corroborations)
            return {
                f"{i.type}:{i.value}": {
                    "intel": [m.record.model_dump(mode="json") for m in found.get(i, [])],
                    "reputation": [o.model_dump(mode="json") for o in outcomes.get(i, [])],
                }
                for i in given
            }

        return [
            string_tool(
                "lookup_indicator",
                "Look one indicator up in local threat feeds and reputation services.",
                lookup,
                "type",
                "value",
            ),
            attack_tool(self.deps.attack, trace),
        ]


def _unique(items: list[Corroboration]) -> list[Corroboration]:
    seen: dict[tuple[str, str, str, str], Corroboration] = {}
    for item in items:
        seen.setdefault((item.type, item.value, item.kind, item.source), item)
    return list(seen.values())[:1000]


def _summary(verdicts: list[Verdict], techniques: list[str], from_context: list[str]) -> str:
    """What the intelligence says; ``techniques`` are the feeds' for the indicators,
    ``from_context`` those the request's text describes (named as such, never as found)."""
    if not verdicts:
        return "No valid indicators to assess."
    known = [v for v in verdicts if v.known]
    if not known:
        text = (
            f"No threat intelligence on {len(verdicts)} indicator(s): not listed in local feeds"
            " and not flagged by any reputation service."
        )
        if from_context:
            text += f" The context describes: {', '.join(from_context[:8])}."
        return text
    worst = max(known, key=lambda v: (v.severity, v.confidence))
    actors = sorted({a for v in known for a in v.actors})
    families = sorted({f for v in known for f in v.families})
    parts = [
        f"{len(known)} of {len(verdicts)} indicator(s) known to threat intelligence; "
        f"worst: {worst.ioc.type} {worst.ioc.value} ({worst.severity}: "
        f"{'; '.join(worst.reasons[:3])})."
    ]
    if actors:
        parts.append(f"Associated actors: {', '.join(actors[:5])}.")
    if families:
        parts.append(f"Malware: {', '.join(families[:5])}.")
    if techniques:
        parts.append(f"Techniques: {', '.join(techniques[:8])}.")
    return " ".join(parts)[:4000]


async def import_feed(store: AsyncIntelStore, path: Path) -> ImportReport:
    """Import one feed file, by its kind: STIX bundle or MISP event (JSON), or CSV."""
    source = path.stem
    if path.suffix.lower() == ".csv":
        mapping = CsvMapping(value="value", type="type")
        return await store.run(import_csv, store.sync, path, mapping, source=source)
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError as err:
        raise ValidationFailed({"feed": path.name, "reason": "not JSON"}) from err
    if isinstance(document, dict) and document.get("type") == "bundle":
        return await store.run(import_stix_bundle, store.sync, document, source=source)
    return await store.run(import_misp_event, store.sync, document, source=source)
