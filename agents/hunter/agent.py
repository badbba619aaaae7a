"""hunter: hypothesis-driven searches over the platform's logs for activity the alerts missed,
and scoping across hosts and accounts.

Built-in analysis, through the gateway's log search (``tools.platform``, as the least-privilege
``service_agent`` identity):

1. Sightings: one search per indicator, over the normalised fields that can carry it and the
   original event text (an IP as source, destination or host address; a domain as a DNS
   question or anywhere in the event, e.g. a URL or a command line; a hash as a file or image
   hash or anywhere; a URL or an e-mail address anywhere). Each search is a traced tool call.
2. Scope: the hosts and accounts the sightings touch, and for each host or account the caller
   named, what else it did in the window (events by category) and where else the account was
   active.
3. Judgement: indicators seen on two hosts or more → ``high`` (it spread); on one host →
   ``medium``; only the named hosts' or accounts' activity, no indicator → ``low``; nothing →
   ``informational``. Confidence grows with the number of independent sightings (0.55 for
   one, +0.1 for each other host, at most 0.9); no sightings give 0.3 (absence in the logs is
   weak evidence: they may not cover it).
4. Actions: triage collection on each host with sightings, a watchlist entry for each sighted
   indicator, a hunt for the hypothesis when one was given and nothing was found.
5. Techniques: none. A search observes sightings, not techniques; the techniques the
   hypothesis and context describe are reported as ``context_techniques`` evidence.
6. Corroborations: an indicator found in a field of the platform's logs that records it as
   such (a connection's source or destination address, a DNS question, a URL, a file or
   process hash: :data:`SIGHTING_FIELDS`) is corroborated by the platform's own telemetry. A
   match only in an event's text (a command line that names it, which the attacker wrote)
   corroborates nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from agents.acp.finding import (
    Corroboration,
    Evidence,
    Finding,
    FindingIoc,
    RecommendedAction,
    TargetSource,
)
from agents.hunter.schemas import HuntThreatsRequest
from agents.runtime.evidence import context_evidence
from agents.runtime.specialist import AgentDeps, Specialist, ToolTrace
from core.errors import AuroraError
from core.llm.types import Tool
from core.schemas import Severity
from core.security.tokens import TokenService
from tools.ioc import normalise_ioc
from tools.platform import PlatformClient

DEFAULT_WINDOW: Final = timedelta(days=7)
EVENTS_PER_SEARCH: Final = 200
TOKEN_REFRESH_SECONDS: Final = 600
SIGHTING_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "ip": ("source.ip", "destination.ip"),
    "domain": ("dns.question.name", "url.domain", "destination.domain"),
    "url": ("url.full", "url.original"),
    "hash": ("file.hash.sha256", "process.hash.sha256", "file.hash.md5", "file.hash.sha1"),
}
"""The normalised fields in which a sighting is an observation of the indicator itself."""
_FROM_LOGS: Final = [TargetSource(kind="telemetry", ref="search_logs")]


def observed(kind: str, value: str, events: list[dict[str, Any]]) -> dict[str, int]:
    """How many of ``events`` record the indicator in each of its :data:`SIGHTING_FIELDS`."""
    wanted = value.strip().lower().rstrip(".")
    counts: Counter[str] = Counter()
    for event in events:
        for name in SIGHTING_FIELDS.get(kind, ()):
            found = event.get(name)
            if found is not None and str(found).strip().lower().rstrip(".") == wanted:
                counts[name] += 1
    return dict(counts)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ioc_query(kind: str, value: str) -> str | None:
    """The search for one indicator; None for a type the logs cannot carry."""
    q = _quoted(value)
    if kind == "ip":
        return f"source.ip:{q} OR destination.ip:{q} OR host.ip:{q}"
    if kind == "domain":
        return f"dns.question.name:{q} OR {q}"
    if kind == "hash":
        return f"file.hash.sha256:{q} OR process.hash.sha256:{q} OR file.hash.md5:{q} OR {q}"
    if kind in {"url", "email"}:
        return q
    return None


def _categories(events: list[dict[str, Any]], most: int) -> str:
    counts = Counter(str(e.get("event.category") or "unknown") for e in events)
    return ", ".join(f"{category} {n}" for category, n in counts.most_common(most))


def _distinct(events: list[dict[str, Any]], field: str) -> list[str]:
    return sorted({str(e[field]) for e in events if e.get(field)})


class Hunter(Specialist, name="hunter", method="hunt_threats"):
    """Threat hunting: searches the platform's logs for activity related to indicators, hosts and
    accounts, and scopes how far it reached."""

    method_description = (
        "Search the logs for the indicators' sightings and the named hosts' and accounts' "
        "activity in a time window; report the hosts and accounts involved."
    )
    request_model = HuntThreatsRequest

    def __init__(self, deps: AgentDeps) -> None:
        super().__init__(deps)
        settings = deps.settings
        given = deps.extra.get("platform")
        self._tokens = TokenService.from_settings(settings)
        self._token = ""
        self._token_at = float("-inf")
        self.platform = (
            given
            if isinstance(given, PlatformClient)
            else PlatformClient(settings.gateway_url or settings.public_url, self._agent_token)
        )

    def _agent_token(self) -> str:
        if time.monotonic() - self._token_at > TOKEN_REFRESH_SECONDS:
            self._token = self._tokens.issue("hunter", token_type="agent").token
            self._token_at = time.monotonic()
        return self._token

    async def stop(self) -> None:
        await self.platform.close()
        await super().stop()

    async def _search(
        self, trace: ToolTrace, query: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        async def run() -> list[dict[str, Any]]:
            page = await self.platform.search_logs(
                query=query, start=start, end=end, limit=EVENTS_PER_SEARCH
            )
            return list(page.get("items", []))

        def summary(events: list[dict[str, Any]]) -> str:
            hosts = _distinct(events, "host.name")
            more = "+" if len(events) >= EVENTS_PER_SEARCH else ""
            return f"{len(events)}{more} event(s) on {len(hosts)} host(s): {', '.join(hosts[:10])}"

        return await trace.call("search_logs", {"q": query}, run, summary)

    def llm_tools(self, request: HuntThreatsRequest, trace: ToolTrace) -> list[Tool]:
        """``search_logs`` over the request's window, for the model's own hypotheses."""
        end = request.end or datetime.now(UTC)
        start = request.start or end - DEFAULT_WINDOW

        async def search(arguments: dict[str, Any]) -> object:
            query = str(arguments.get("query", "")).strip()
            if not query:
                return {"error": "give a query"}
            try:
                events = await self._search(trace, query, start, end)
            except AuroraError as err:
                return {"error": err.message, "detail": err.detail}
            return [{k: v for k, v in e.items() if k not in {"raw", "fields"}} for e in events[:50]]

        return [
            Tool(
                "search_logs",
                "Search the platform's logs in the hunt's time window with the query language "
                "(field:value, AND/OR/NOT, wildcards, CIDRs, quoted phrases for full text); "
                "returns up to 50 matching events, newest first.",
                {
                    "type": "object",
                    "properties": {"query": {"type": "string", "maxLength": 4096}},
                    "required": ["query"],
                },
                search,
            )
        ]

    async def builtin(self, request: HuntThreatsRequest, trace: ToolTrace) -> Finding:
        end = request.end or datetime.now(UTC)
        start = request.start or end - DEFAULT_WINDOW
        sighted: dict[tuple[str, str], list[dict[str, Any]]] = {}
        unreachable: list[str] = []
        iocs = []
        for item in request.iocs:
            try:
                iocs.append(normalise_ioc(item.type, item.value))
            except AuroraError:
                continue
        for ioc in iocs:
            query = ioc_query(ioc.type, ioc.value)
            if query is None:
                continue
            try:
                events = await self._search(trace, query, start, end)
            except AuroraError as err:
                unreachable.append(f"{ioc.type} {ioc.value}: {err.message}")
                continue
            if events:
                sighted[(ioc.type, ioc.value)] = events
        activity: dict[str, list[dict[str, Any]]] = {}
        for kind, names in (("host.name", request.hosts), ("user.name", request.users)):
            for name in names:
                try:
                    activity[f"{kind}:{name}"] = await self._search(
                        trace, f"{kind}:{_quoted(name.strip())}", start, end
                    )
                except AuroraError as err:
                    unreachable.append(f"{kind} {name}: {err.message}")
        all_sightings = [e for events in sighted.values() for e in events]
        hosts = _distinct(all_sightings, "host.name")
        users = _distinct(all_sightings, "user.name")
        await trace.thought(
            "scope",
            f"{len(sighted)} of {len(iocs)} indicator(s) seen on {len(hosts)} host(s) and "
            f"{len(users)} account(s) between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M}",
        )
        severity = Severity.INFORMATIONAL
        if len(hosts) >= 2:
            severity = Severity.HIGH
        elif sighted:
            severity = Severity.MEDIUM
        elif any(activity.values()):
            severity = Severity.LOW
        confidence = min(0.9, 0.55 + 0.1 * max(len(hosts) - 1, 0)) if sighted else 0.3
        evidence = list(trace.evidence)
        for (kind, value), events in sighted.items():
            where = ", ".join(_distinct(events, "host.name")[:10]) or "no named host"
            ids = ", ".join(str(e.get("id")) for e in events[:5])
            evidence.append(
                Evidence(
                    kind="log",
                    ref=f"{kind}:{value} first at {events[-1].get('timestamp')}",
                    summary=f"{len(events)} event(s) ({_categories(events, 4)}) on {where}; "
                    f"log ids {ids}"[:4000],
                )
            )
        for key, events in activity.items():
            evidence.append(
                Evidence(
                    kind="scope",
                    ref=key,
                    summary=(
                        f"{len(events)} event(s) in the window"
                        + (f": {_categories(events, 6)}" if events else "")
                        + (
                            f"; hosts {', '.join(_distinct(events, 'host.name')[:10])}"
                            if key.startswith("user.name") and events
                            else ""
                        )
                    )[:4000],
                )
            )
        if unreachable:
            evidence.append(
                Evidence(
                    kind="unreachable", ref="log search", summary="; ".join(unreachable)[:4000]
                )
            )
        # The hypothesis and context are what the caller wrote, not what the logs showed: their
        # techniques are reported apart, and the hunt itself observes none.
        evidence += context_evidence(
            await self.map_context(
                " ".join(t for t in (request.hypothesis, request.context) if t), trace
            )
        )
        actions = [
            RecommendedAction.of(
                "collect_triage",
                host,
                "indicators of this investigation were seen on the host",
                "low",
                _FROM_LOGS,
            )
            for host in hosts[:10]
        ]
        actions += [
            RecommendedAction.of(
                "watchlist", value, f"{kind} seen in the logs: watch for more", "low", _FROM_LOGS
            )
            for kind, value in list(sighted)[:10]
        ]
        if request.hypothesis and not sighted:
            actions.append(
                RecommendedAction.of(
                    "hunt",
                    request.hypothesis[:500],
                    "nothing in the window supports or refutes it: widen the window or the sources",
                    "low",
                    [TargetSource(kind="text", ref="hypothesis")],
                )
            )
        corroborations = []
        for (kind, value), events in sighted.items():
            fields = observed(kind, value, events)
            if fields:
                where = ", ".join(_distinct(events, "host.name")[:5]) or "no named host"
                corroborations.append(
                    Corroboration(
                        type=kind,
                        value=value,
                        kind="telemetry",
                        source="platform logs",
                        detail=(
                            ", ".join(f"{name} in {n} event(s)" for name, n in fields.items())
                            + f" on {where}"
                        )[:1000],
                    )
                )
        return Finding(
            agent=self.name,
            summary=self._summary(iocs, sighted, hosts, users, activity, unreachable)[:4000],
            severity=severity,
            confidence=round(confidence, 3),
            iocs=[
                FindingIoc.model_validate({"type": kind, "value": value}) for kind, value in sighted
            ],
            evidence=evidence,
            recommended_actions=actions,
            corroborations=corroborations,
        )

    @staticmethod
    def _summary(
        iocs: list[Any],
        sighted: dict[tuple[str, str], list[dict[str, Any]]],
        hosts: list[str],
        users: list[str],
        activity: dict[str, list[dict[str, Any]]],
        unreachable: list[str],
    ) -> str:
        parts = []
        if iocs:
            parts.append(
                f"{len(sighted)} of {len(iocs)} indicator(s) appear in the logs"
                + (
                    f", on {len(hosts)} host(s) ({', '.join(hosts[:5])})"
                    + (f" and {len(users)} account(s)" if users else "")
                    if sighted
                    else ""
                )
                + "."
            )
        for key, events in activity.items():
            parts.append(f"{key}: {len(events)} event(s) in the window.")
        if unreachable:
            parts.append(f"{len(unreachable)} search(es) could not run: the logs are incomplete.")
        return " ".join(parts) or "Nothing to hunt for."
