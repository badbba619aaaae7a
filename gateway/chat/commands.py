"""The assistant's commands: what it serves deterministically, with or without a model.

A message that is one of these runs the tool it names (as the user, through the same gate as a
model's call) and answers with the tool's summary; any other message goes to the model, or,
with none, gets the plain answer that a model is needed.

=============================================  ==============================================
command                                        does
=============================================  ==============================================
``help``                                       lists the commands
``search <query> [last <N>h|<N>d]``            searches the logs (last 24 h by default)
``show alerts|cases [<severity>] [<status>]``  lists the newest alerts or cases
``show <ALRT-…|CASE-…|INV-…>``                 shows one alert, case or investigation
``investigate <ALRT-…|CASE-…> [<priority>]``   dispatches an investigation
``lookup <indicator>``                         looks an indicator up in threat intelligence
``map <text>``                                 maps a description to ATT&CK techniques
``report [<title>]``                           builds the conversation's incident report
=============================================  ==============================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from core.schemas import Severity
from gateway.alerts.schemas import AlertStatus
from gateway.cases.schemas import CaseStatus

HELP: Final = (
    "Commands I can run without a language model:\n"
    "- `search <query> [last 24h|7d]`: search the logs\n"
    "- `show alerts [severity] [status]`, `show cases [severity] [status]`\n"
    "- `show <alert, case or investigation id>`\n"
    "- `investigate <alert or case id> [low|normal|high|urgent]`\n"
    "- `lookup <indicator>`: threat intelligence on an IP, domain, URL, hash or email\n"
    "- `map <description>`: the ATT&CK techniques it describes\n"
    "- `report [title]`: an incident report of what this conversation covered"
)

_ID: Final = re.compile(r"^(ALRT|CASE|INV)-\d{4}-\d{3,}$", re.IGNORECASE)
_WINDOW: Final = re.compile(r"\s+(?:in\s+the\s+)?last\s+(\d{1,4})\s*([hd])\w*\s*$", re.IGNORECASE)
_PRIORITIES: Final = ("low", "normal", "high", "urgent")


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: the tool it runs with its arguments, or ``help`` / ``report``; a
    command whose arguments are wrong carries ``problem`` instead of a tool."""

    name: str
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    argument: str = ""
    problem: str | None = None


def needs_model(configured: bool) -> str:
    """The plain answer to a free-form question the commands do not cover."""
    why = (
        "the configured language model is unavailable"
        if configured
        else "no language model is configured (see `GET /api/v1/inference/status`)"
    )
    return f"Answering free-form questions needs a language model, and {why}.\n\n{HELP}"


def parse(text: str) -> Command | None:
    """The command ``text`` is, or None for anything else."""
    line = " ".join(text.strip().split())
    if not line or "\n" in text.strip():
        return None
    verb, _, rest = line.partition(" ")
    verb = verb.lower().rstrip(":")
    if verb in {"help", "commands", "/help"} and not rest:
        return Command("help")
    if verb in {"report", "/report"}:
        return Command("report", argument=rest[:300])
    if verb in {"search", "/search"} and rest:
        hours = 24
        if match := _WINDOW.search(rest):
            hours = min(int(match.group(1)) * (24 if match.group(2).lower() == "d" else 1), 2160)
            rest = rest[: match.start()].strip()
        if not rest:
            return Command("search", problem="Search for what? `search <query> [last 24h]`")
        return Command("search", "search_logs", {"query": rest, "hours": max(hours, 1)})
    if verb in {"show", "list", "/show"} and rest:
        return _show(rest)
    if verb in {"investigate", "/investigate"} and rest:
        target, _, priority = rest.partition(" ")
        if not _ID.match(target) or target.upper().startswith("INV"):
            return Command(
                "investigate", problem="Investigate what? `investigate <alert or case id>`"
            )
        key = "alert_id" if target.upper().startswith("ALRT") else "case_id"
        arguments: dict[str, Any] = {key: target.upper()}
        if priority:
            if priority.lower() not in _PRIORITIES:
                return Command(
                    "investigate", problem=f"The priority is one of {', '.join(_PRIORITIES)}."
                )
            arguments["priority"] = priority.lower()
        return Command("investigate", "dispatch_investigation", arguments)
    if verb in {"lookup", "/lookup", "enrich"} and rest and " " not in rest:
        return Command("lookup", "lookup_indicator", {"value": rest})
    if verb in {"map", "/map"} and rest:
        return Command("map", "map_attack", {"text": rest})
    return None


def _show(rest: str) -> Command | None:
    words = rest.split()
    first = words[0]
    if len(words) == 1 and _ID.match(first):
        ident = first.upper()
        if ident.startswith("ALRT"):
            return Command("show", "get_alert", {"alert_id": ident})
        if ident.startswith("CASE"):
            return Command("show", "get_case", {"case_id": ident})
        return Command("show", "get_investigation", {"investigation_id": ident})
    kind = first.lower()
    if kind not in {"alerts", "cases"}:
        return None
    statuses = {s.value for s in (AlertStatus if kind == "alerts" else CaseStatus)}
    arguments: dict[str, Any] = {}
    for word in (w.lower() for w in words[1:]):
        if word in {s.value for s in Severity}:
            arguments["severity"] = word
        elif word in statuses:
            arguments["status"] = word
        else:
            return Command(
                "show",
                problem=f"`{word}` is neither a severity nor a status of {kind}; statuses: "
                + ", ".join(sorted(statuses)),
            )
    return Command("show", "list_alerts" if kind == "alerts" else "list_cases", arguments)
