"""network: what happened on the wire, from flow records and Suricata eve.json events.

Built-in analysis: the rules of :mod:`agents.network.rules` (beaconing, port scans,
exfiltration, suspicious ports, DNS tunnelling and DGA, Suricata alert triage, indicator
sightings), each run as a reported tool call; severity, confidence, techniques, indicators and
actions come from the detections they make. The LLM path offers the same rules as tools.

Techniques are the detections' only; those the request's context describes are reported as
``context_techniques`` evidence. Severity is the highest detection's; confidence is that
detection's, raised when a different rule corroborates it on the same host
(``rules.corroborate``). With nothing detected, the
finding is informational with a confidence that grows with the amount of telemetry seen.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.acp.finding import Evidence, Finding
from agents.network.rules import (
    MAX_DETECTION_EVIDENCE,
    MAX_IOCS,
    AddressBook,
    Detection,
    IpAddress,
    Telemetry,
    assess_alerts,
    build_telemetry,
    corroborate,
    detect_beaconing,
    detect_dns,
    detect_exfiltration,
    detect_ports,
    detect_scans,
    ioc_sightings,
    merge_actions,
    name_of,
)
from agents.network.schemas import AnalyzeNetworkRequest
from agents.runtime.analysis import attack_tool
from agents.runtime.evidence import context_evidence
from agents.runtime.specialist import (
    Specialist,
    ToolTrace,
    finding_iocs,
    normalised_iocs,
    string_tool,
)
from core.llm.types import Tool
from core.schemas import Severity
from tools.ioc import Ioc, extract_iocs
from tools.netnames import looks_generated, shannon_entropy, split_domain


@dataclass(slots=True)
class Analysis:
    """Everything the built-in analysis derived from one request."""

    telemetry: Telemetry
    book: AddressBook
    iocs: list[Ioc]
    rejected: list[str]
    detections: list[Detection]


class Network(Specialist, name="network", method="analyze_network"):
    """Network analysis: beaconing, scans, exfiltration, DNS abuse and IDS alerts in flow records
    and Suricata eve.json events."""

    method_description = (
        "Analyse flow records and Suricata events (and look for given indicators in them)."
    )
    request_model = AnalyzeNetworkRequest

    async def analyse(self, request: AnalyzeNetworkRequest, trace: ToolTrace) -> Analysis:
        """Run every rule over the request's telemetry, each as a reported tool call."""
        given, rejected = normalised_iocs(request.iocs)
        book = AddressBook(request.home_networks)
        # From free text only what could be someone else's: our own hosts are not indicators.
        from_text = [
            i
            for i in (extract_iocs(request.context) if request.context else [])
            if i.type == "domain"
            or (i.type == "ip" and book.zone(ipaddress.ip_address(i.value)) == "external")
        ]
        iocs = list(dict.fromkeys([*given, *from_text]))
        telemetry = build_telemetry(request)
        await trace.thought(
            "intake",
            f"{len(request.flows)} flow record(s), {len(request.alerts)} eve event(s) "
            f"({', '.join(f'{n} {k}' for k, n in telemetry.events.most_common())}), "
            f"{len(telemetry.conns)} connection(s), {len(iocs)} indicator(s) to look for",
        )
        tls_pairs = {
            (n.client, n.server)
            for n in telemetry.names
            if n.via == "tls" and n.client is not None and n.server is not None
        }
        conns = telemetry.conns

        async def run(
            tool: str, arguments: dict[str, Any], detect: Callable[[], list[Detection]]
        ) -> list[Detection]:
            found: list[Detection] = await trace.compute(
                tool, arguments, lambda: detect(), _describe_found
            )
            return found

        detections: list[Detection] = []
        if conns:
            size = {"connections": len(conns)}
            beacons = await run(
                "detect_beaconing", size, lambda: detect_beaconing(conns, book, tls_pairs)
            )
            pairs = {(d.facts["src"], d.facts["dst"]) for d in beacons}
            detections += beacons
            detections += await run("detect_scans", size, lambda: detect_scans(conns, book))
            detections += await run(
                "detect_exfiltration", size, lambda: detect_exfiltration(conns, book, pairs)
            )
            detections += await run("detect_ports", size, lambda: detect_ports(conns, book))
        if telemetry.dns or telemetry.names:
            detections += await run(
                "detect_dns_abuse",
                {"queries": len(telemetry.dns), "names": len(telemetry.names)},
                lambda: detect_dns(telemetry),
            )
        if telemetry.alerts:
            detections += await run(
                "assess_ids_alerts",
                {"alerts": len(telemetry.alerts)},
                lambda: assess_alerts(telemetry.alerts, book, self.deps.attack),
            )
        if iocs:
            detections += await run(
                "find_indicators",
                {"indicators": [f"{i.type}:{i.value}" for i in iocs][:50]},
                lambda: ioc_sightings(iocs, telemetry),
            )
        corroborate(detections)
        for detection in detections:
            detection.techniques = [
                t
                for t in dict.fromkeys(
                    self.deps.attack.canonical_id(x) for x in detection.techniques
                )
                if t is not None
            ]
        detections.sort(key=lambda d: (d.severity, d.confidence), reverse=True)
        return Analysis(telemetry, book, iocs, rejected, detections)

    async def builtin(self, request: AnalyzeNetworkRequest, trace: ToolTrace) -> Finding:
        analysis = await self.analyse(request, trace)
        detections = analysis.detections
        techniques: dict[str, None] = {}
        for detection in detections:
            techniques.update(dict.fromkeys(detection.techniques))
        # The context's techniques are the caller's words, not what the telemetry showed.
        from_context = await self.map_context(request.context, trace)
        evidence = list(trace.evidence)
        evidence += [d.evidence() for d in detections[:MAX_DETECTION_EVIDENCE]]
        if len(detections) > MAX_DETECTION_EVIDENCE:
            evidence.append(
                Evidence(
                    kind="log",
                    ref="detections",
                    summary=f"{len(detections) - MAX_DETECTION_EVIDENCE} lower-ranked "
                    "detection(s) not listed",
                )
            )
        if analysis.rejected:
            evidence.append(
                Evidence(
                    kind="rejected_iocs", ref="request", summary="; ".join(analysis.rejected)[:4000]
                )
            )
        evidence += context_evidence(t for t in from_context if t not in techniques)
        severity = detections[0].severity if detections else Severity.INFORMATIONAL
        confidence = _confidence(detections, analysis.telemetry)
        iocs = list(dict.fromkeys([*analysis.iocs, *(i for d in detections for i in d.iocs)]))[
            :MAX_IOCS
        ]
        return Finding(
            agent=self.name,
            summary=_summary(analysis, severity, list(techniques)),
            severity=severity,
            confidence=confidence,
            mitre_techniques=list(techniques),
            iocs=finding_iocs(iocs),
            evidence=evidence,
            recommended_actions=merge_actions(detections),
        )

    def llm_tools(self, request: AnalyzeNetworkRequest, trace: ToolTrace) -> list[Tool]:
        cache: list[Analysis] = []

        async def analysis() -> Analysis:
            if not cache:
                cache.append(await self.analyse(request, trace))
            return cache[0]

        async def detections(arguments: dict[str, Any]) -> object:
            kinds = arguments.get("kinds")
            found = (await analysis()).detections
            if isinstance(kinds, list) and kinds:
                found = [d for d in found if d.kind in kinds]
            return [d.describe() for d in found[:40]]

        async def host(arguments: dict[str, Any]) -> object:
            try:
                address = ipaddress.ip_address(str(arguments.get("ip", "")).strip())
            except ValueError:
                return {"error": "not an IP address"}
            return host_profile(address, await analysis())

        async def domain(arguments: dict[str, Any]) -> object:
            name = name_of(arguments.get("domain"))
            if not name:
                return {"error": "a domain is required"}
            return domain_profile(name, (await analysis()).telemetry)

        return [
            Tool(
                name="network_detections",
                description="Run the rule-based detectors (beaconing, port scans, exfiltration, "
                "suspicious ports, DNS tunnelling/DGA, Suricata alert triage, indicator "
                "sightings) over the telemetry; returns each detection with its references.",
                parameters={
                    "type": "object",
                    "properties": {
                        "kinds": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "only these kinds (beaconing, port_scan, ...)",
                        }
                    },
                },
                handler=detections,
            ),
            string_tool(
                "host_activity",
                "What one IP address did in the telemetry: zone (internal, "
                "external), peers, ports, bytes, IDS signatures and DNS names.",
                host,
                "ip",
            ),
            string_tool(
                "domain_profile",
                "A domain's lookups in the telemetry and whether its name looks "
                "generated (entropy, registered domain, clients).",
                domain,
                "domain",
            ),
            attack_tool(self.deps.attack, trace),
        ]


def host_profile(address: IpAddress, analysis: Analysis) -> dict[str, Any]:
    """One address's activity: peers, ports and bytes, alerts, names, detections."""
    telemetry = analysis.telemetry
    peers: Counter[str] = Counter()
    ports: Counter[int] = Counter()
    sent = received = 0
    for conn in telemetry.conns:
        if conn.src == address:
            peers[str(conn.dst)] += 1
            if conn.dport is not None:
                ports[conn.dport] += 1
            sent += conn.bytes_out or 0
            received += conn.bytes_in or 0
        elif conn.dst == address:
            peers[str(conn.src)] += 1
            sent += conn.bytes_in or 0
            received += conn.bytes_out or 0
    signatures = Counter(a.signature for a in telemetry.alerts if address in (a.src, a.dst))
    return {
        "ip": str(address),
        "zone": analysis.book.zone(address),
        "connections": sum(peers.values()),
        "top_peers": peers.most_common(10),
        "top_destination_ports": ports.most_common(10),
        "bytes_sent": sent,
        "bytes_received": received,
        "ids_signatures": signatures.most_common(10),
        "dns_names": sorted({q.name for q in telemetry.dns if q.client == address})[:20],
        "detections": [d.title for d in analysis.detections if str(address) in d.hosts][:10],
    }


def domain_profile(name: str, telemetry: Telemetry) -> dict[str, Any]:
    """A domain's lookups and how generated its name looks."""
    registered, sub = split_domain(name)
    suffix = "." + registered
    lookups = [q for q in telemetry.dns if q.name == registered or q.name.endswith(suffix)]
    label = registered.split(".")[0]
    return {
        "domain": name,
        "registered_domain": registered,
        "subdomain": sub,
        "label_entropy": round(shannon_entropy(label), 3),
        "looks_generated": looks_generated(label),
        "lookups": len(lookups),
        "distinct_names": len({q.name for q in lookups}),
        "clients": sorted({str(q.client) for q in lookups})[:20],
        "rcodes": Counter(q.rcode or "?" for q in lookups).most_common(),
    }


def _describe_found(found: list[Detection]) -> str:
    if not found:
        return "nothing found"
    worst = sorted(found, key=lambda d: d.severity, reverse=True)[:3]
    return f"{len(found)} detection(s): " + "; ".join(d.title for d in worst)


def _confidence(detections: list[Detection], telemetry: Telemetry) -> float:
    if detections:
        return round(detections[0].confidence, 3)
    records = len(telemetry.conns) + len(telemetry.dns) + len(telemetry.alerts)
    if records == 0:
        return 0.1  # nothing to look at: no basis for "nothing found"
    # Nothing fired: more telemetry makes "nothing happened" more credible, never certain.
    return round(min(0.6, 0.2 + 0.08 * math.log10(1 + records)), 3)


def _summary(analysis: Analysis, severity: Severity, techniques: list[str]) -> str:
    telemetry = analysis.telemetry
    seen = (
        f"{len(telemetry.conns)} connection(s), {len(telemetry.alerts)} IDS alert(s), "
        f"{len(telemetry.dns)} DNS quer{'y' if len(telemetry.dns) == 1 else 'ies'}"
    )
    detections = analysis.detections
    if not detections:
        if not (telemetry.conns or telemetry.alerts or telemetry.dns):
            return (
                "No network telemetry to analyse (no flows or eve events) and the given "
                "indicators could not be looked for; nothing can be concluded."
            )
        return (
            f"No beaconing, scanning, exfiltration, DNS abuse or IDS alert in {seen}; "
            "no sign of malicious network activity in this data."
        )
    kinds = Counter(d.kind for d in detections)
    worst = detections[0]
    parts = [
        f"{severity.capitalize()}: {worst.title}.",
        f"{len(detections)} detection(s) in {seen}: "
        + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.most_common())
        + ".",
    ]
    others = [d for d in detections[1:4] if d.kind != worst.kind]
    if others:
        parts.append("Also: " + "; ".join(d.title for d in others[:2]) + ".")
    if techniques:
        parts.append(f"Techniques: {', '.join(techniques[:10])}.")
    return " ".join(parts)[:4000]
