"""Where a response action's target came from, and which independent source corroborates it.

A target that only data an attacker can write names (a command line, free text, an alert's or
a log event's field, a model's answer) is never contained without a human: an attacker who
writes ``login.microsoftonline.com`` into a command line must not get it blocked. A target is
corroborated when a source whose role it is confirms that exact indicator:

- ``threat_intel`` for its feeds (an exact, unexpired listing) and its reputation services
  (a malicious verdict);
- ``hunter`` for a sighting in a field of the platform's own logs;
- the gateway itself (agent name :data:`PLATFORM`) for a detection its own Sigma rules raised
  on that field.

An agent vouching outside its role (a malware agent claiming a feed listing) corroborates
nothing, and neither does a model: corroborations are set by an agent's code from its tools'
results. An action on a URL, an e-mail address or a process (``host:pid``) is also corroborated
by a corroboration of the host or domain it names (the narrower action on a confirmed host); the
reverse never holds
(a listed URL does not vouch for its whole host, nor a listed address for its network).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

CORROBORATORS: Final[dict[str, frozenset[str]]] = {
    "threat_intel": frozenset({"threat_intel", "reputation"}),
    "hunter": frozenset({"telemetry"}),
}
"""Which kinds of corroboration each agent may give."""
PLATFORM: Final = "platform"
"""The gateway's own detections, as the source of a ``telemetry`` corroboration."""
PLATFORM_KINDS: Final = frozenset({"telemetry"})

ACTION_ALIASES: Final[dict[str, str]] = {
    "capture_traffic": "collect_pcap",
    "capture_pcap": "collect_pcap",
    "isolate": "isolate_host",
    "isolate_endpoint": "isolate_host",
    "contain_host": "isolate_host",
    "block_address": "block_ip",
    "block_hash_execution": "block_hash",
    "disable_user": "disable_account",
    "force_password_reset": "reset_password",
}


def normalise_action(action: str) -> str:
    """The canonical action name: lower snake case, aliases folded."""
    name = "_".join(action.strip().lower().replace("-", "_").split())
    return ACTION_ALIASES.get(name, name)


def normalise_target(target: str) -> str:
    """Canonical IP or CIDR text; names (hosts, domains, accounts, hashes) in lower case;
    paths and URLs, whose case can matter, as given."""
    text = target.strip()
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    if "/" in text:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            return text
    return text if "\\" in text else text.lower()


_PROCESS = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9._$-]*):\d{1,10}$")
"""A process on a host (``ws-042:4242``, as the endpoint agent names one)."""


def _host(name: str) -> str:
    return normalise_target(name.rstrip("."))


def indicator_keys(target: str) -> list[str]:
    """What a corroboration may name to vouch for ``target``: the target itself, and the host
    of a URL or the domain of an e-mail address."""
    text = target.strip()
    keys = [normalise_target(text)]
    if "://" in text:
        try:
            host = urlsplit(text).hostname
        except ValueError:
            host = None
        if host:
            keys.append(_host(host))
    elif "@" in text and "/" not in text and "\\" not in text:
        domain = text.rpartition("@")[2]
        if domain:
            keys.append(_host(domain))
    elif (process := _PROCESS.match(text)) and process["host"].lower() != "pid":
        keys.append(_host(process["host"]))
    return list(dict.fromkeys(keys))


def vouched(agent: str, finding: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The corroborations of ``finding`` (returned by ``agent``) that ``agent`` may give, each
    with the agent that gave it; the rest are dropped."""
    allowed = CORROBORATORS.get(agent, frozenset())
    found = []
    for item in finding.get("corroborations") or []:
        if isinstance(item, Mapping) and item.get("kind") in allowed and item.get("value"):
            found.append({**item, "agent": agent, "value": normalise_target(str(item["value"]))})
    return found


def platform_corroborations(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The gateway's own corroborations (its Sigma detections), tagged as :data:`PLATFORM`."""
    return [
        {**item, "agent": PLATFORM, "value": normalise_target(str(item["value"]))}
        for item in items
        if item.get("kind") in PLATFORM_KINDS and item.get("value")
    ]


def _public(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in ("agent", "kind", "source", "type", "value", "detail")}


class Provenance:
    """What the findings say about where each target came from and what corroborates it.

    ``findings`` are finding dicts (as the specialists return them); ``corroborations`` are
    those already filtered by :func:`vouched` or :func:`platform_corroborations`.
    """

    def __init__(
        self,
        findings: Iterable[Mapping[str, Any]],
        corroborations: Iterable[Mapping[str, Any]],
    ) -> None:
        self._origins: dict[str, list[dict[str, Any]]] = {}
        for finding in findings:
            agent = str(finding.get("agent", ""))
            llm = finding.get("backend") == "llm"
            for action in finding.get("recommended_actions") or []:
                key = normalise_target(str(action.get("target", "")))
                declared = [] if llm else list(action.get("provenance") or [])
                sources = [
                    {"agent": agent, "kind": s.get("kind"), "ref": s.get("ref", "")}
                    for s in declared
                    if isinstance(s, Mapping)
                ] or [
                    {
                        "agent": agent,
                        "kind": "model_output" if llm else "unstated",
                        "ref": str(finding.get("model") or "") if llm else "",
                    }
                ]
                known = self._origins.setdefault(key, [])
                known += [s for s in sources if s not in known]
        self._index: dict[str, list[dict[str, Any]]] = {}
        for item in corroborations:
            entry = _public(item)
            known = self._index.setdefault(str(item["value"]), [])
            if entry not in known:
                known.append(entry)

    def origin(self, target: str) -> list[dict[str, Any]]:
        """Where the agents that proposed an action on ``target`` took it from."""
        return list(self._origins.get(normalise_target(target), []))

    def corroborations(self, target: str) -> list[dict[str, Any]]:
        """The independent corroborations of ``target`` (see the module doc)."""
        found: list[dict[str, Any]] = []
        for key in indicator_keys(target):
            found += [c for c in self._index.get(key, []) if c not in found]
        return found


def describe(corroboration: Mapping[str, Any]) -> str:
    """One line for a guardrail decision: who corroborated what, and how."""
    get = corroboration.get
    return f"{get('agent')}: {get('kind')} ({get('source')}) on {get('type')} {get('value')}"
