"""The built-in planner: the specialists whose wanted subjects the investigation has, read from
the catalogue (:mod:`agents.catalog`), each with the params its entry builds."""

from __future__ import annotations

from agents.acp.finding import FindingIoc
from agents.catalog import CATALOGUE, Entry, Subject
from orchestrator.state import AgentCall


def _calls(
    entries: list[Entry], subject: Subject, *, investigation_id: str, round_: int
) -> list[AgentCall]:
    calls: list[AgentCall] = []
    for entry in entries:
        params = entry.call_params(subject)
        if params is None:
            continue
        calls.append(
            AgentCall(
                agent=entry.name,
                method=entry.method,
                params=params,
                investigation_id=investigation_id,
                round=round_,
                tool_call_id=None,
            )
        )
    return calls


def rule_plan(
    subject: Subject, available: frozenset[str], *, investigation_id: str
) -> list[AgentCall]:
    """The first round: every available specialist the subject has something for, in catalogue
    order."""
    entries = [e for e in CATALOGUE if e.planned and e.name in available]
    return _calls(entries, subject, investigation_id=investigation_id, round_=0)


def follow_up(
    subject: Subject,
    new: list[FindingIoc],
    available: frozenset[str],
    *,
    investigation_id: str,
    round_: int,
) -> list[AgentCall]:
    """The extra round: the follow-up specialists (:attr:`agents.catalog.Entry.follow_up`) on
    the indicators ``new`` that the first round found, each given those of the types it takes
    (none of them: it is not called)."""
    found = subject.model_copy(update={"iocs": new})
    entries = [
        e
        for e in CATALOGUE
        if e.follow_up and e.name in available and found.taking(e.indicator_types).iocs
    ]
    return _calls(entries, found, investigation_id=investigation_id, round_=round_)
