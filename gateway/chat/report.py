"""Incident reports: what the platform has stored about the alerts, cases and investigations a
conversation is about, as Markdown and as a standalone, sanitised HTML document.

A report is built only from stored records: the alerts, the cases with their timeline,
observables and evidence (its SHA-256 and custody ledger), the investigations with their
receipts, and the approval and response-action ledgers. Its sections: summary (with the overall
verdict), timeline, findings, ATT&CK techniques, indicators, actions and approvals, evidence,
and a footer saying when, by whom and how to check it (the SHA-256 of its Markdown).

Every string taken from a record is data an attacker may have written (an alert's title, a log
line, a finding's summary). In the Markdown it is put on one line and either backslash-escaped
or put in a code span, so it adds no link, image, HTML or formatting; the HTML is that Markdown
rendered by markdown-it-py's CommonMark with raw HTML off, then sanitised by nh3 to a few tags
and http(s) links. Every section is bounded (:data:`MAX_TIMELINE` entries and the like, texts
cut), so that a report stays under about a megabyte whatever is stored.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import nh3
from markdown_it import MarkdownIt
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.pages import fetch_rows
from core.errors import ValidationFailed
from gateway.alerts.models import Alert
from gateway.cases.evidence.models import EvidenceItem, EvidenceLedgerEntry
from gateway.cases.models import Case, CaseEvent, CaseObservable
from gateway.investigations.models import Approval, Investigation, ResponseActionRecord
from tools.attack.index import technique_sort_key
from tools.attack.kb import normalise_technique_id

MAX_SUBJECTS: Final = 20
"""Alerts, cases and investigations one report may cover, together."""
MAX_TIMELINE: Final = 200
MAX_FINDINGS: Final = 60
MAX_TECHNIQUES: Final = 200
MAX_INDICATORS: Final = 200
MAX_ACTIONS: Final = 100
MAX_EVIDENCE: Final = 100
"""Entries each section shows at most (the earliest; the report says how many it left out)."""
ID_CHARS: Final = 64
"""The longest id a caller may ask for (stored ids have at most 32 characters)."""
TITLE_CHARS: Final = 200
TEXT_CHARS: Final = 1000
"""Descriptions and findings' summaries are cut to this many characters."""
LINE_CHARS: Final = 200
"""Any other text from a record (a timeline entry's detail, a target, a reason) is cut to this."""
WORD_CHARS: Final = 64
"""Names, statuses, actors."""
SYSTEM: Final = "aurora"
"""The actor of what the platform did by itself (queued work, guardrail decisions)."""
VERDICT_RANK: Final[Mapping[str, int]] = {
    "inconclusive": 0,
    "benign_or_unknown": 1,
    "suspicious": 2,
    "malicious": 3,
}
"""How serious an investigation's verdict is: the report's overall verdict is the worst."""
HTML_TAGS: Final = frozenset(
    {"h1", "h2", "h3", "p", "ul", "ol", "li", "strong", "em", "code", "pre", "blockquote"}
    | {"hr", "br", "a"}
)
"""What the sanitised HTML may hold: no image, script, style, form or frame."""

_CSS: Final = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#1d1d1f}code{font-family:ui-monospace,monospace;background:#f2f2f4;padding:0 .2em;"
    "overflow-wrap:anywhere}h1,h2,h3{line-height:1.25}footer{color:#666;font-size:13px}"
)
# Control, line-breaking, zero-width and bidirectional-override characters: one line of text,
# shown as it reads (no text reordered by an attacker's override characters).
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
# Every ASCII punctuation character: CommonMark lets each be backslash-escaped.
_PUNCTUATION: Final = re.compile(r"([!-/:-@\[-`{-~])")
_TECHNIQUE_TAG: Final = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$")


@dataclass(frozen=True, slots=True)
class ReportSubjects:
    """What a report is about, by id."""

    alert_ids: tuple[str, ...] = ()
    case_ids: tuple[str, ...] = ()
    investigation_ids: tuple[str, ...] = ()

    def count(self) -> int:
        return len(self.alert_ids) + len(self.case_ids) + len(self.investigation_ids)


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """A built report. ``sha256`` is the hex SHA-256 of ``markdown`` (UTF-8); ``subjects``
    are those found and used, ``missing`` the ids asked for that do not exist."""

    title: str
    markdown: str
    html: str
    sha256: str
    subjects: ReportSubjects
    missing: tuple[str, ...]


async def build_report(
    *,
    db: AsyncSession,
    subjects: ReportSubjects,
    title: str | None,
    requested_by: str,
    generated_at: datetime | None = None,
) -> IncidentReport:
    """The incident report of ``subjects`` from what is stored now (nothing is written).

    AURORA-4220 (detail ``{"loc": ["subjects"], "reason": ...}``) when no subject is given,
    more than :data:`MAX_SUBJECTS` are, an id is longer than :data:`ID_CHARS`, or none of them
    exists. A deleted case counts as missing. ``title`` defaults to one naming the subjects.
    """
    wanted = _wanted(subjects)
    records = await _load(db, wanted)
    found = ReportSubjects(
        alert_ids=tuple(a.id for a in records.alerts),
        case_ids=tuple(c.id for c in records.cases),
        investigation_ids=tuple(i.id for i in records.investigations),
    )
    have = {*found.alert_ids, *found.case_ids, *found.investigation_ids}
    asked = (*wanted.alert_ids, *wanted.case_ids, *wanted.investigation_ids)
    missing = tuple(ident for ident in asked if ident not in have)
    if not have:
        raise _refused("none of the alerts, cases or investigations named exists", missing)
    moment = _moment(generated_at or utcnow()) or utcnow()
    heading = _plain(title, TITLE_CHARS) or _default_title(found)
    markdown = _markdown(records, heading, missing, requested_by, moment)
    digest = hashlib.sha256(markdown.encode()).hexdigest()
    return IncidentReport(
        title=heading,
        markdown=markdown,
        html=_document(heading, render_html(markdown), digest),
        sha256=digest,
        subjects=found,
        missing=missing,
    )


def render_html(markdown: str) -> str:
    """``markdown`` as an HTML fragment: CommonMark with raw HTML off, then sanitised with nh3
    (only :data:`HTML_TAGS`, links only to http(s) with ``rel="noopener noreferrer"``)."""
    rendered = MarkdownIt("commonmark", {"html": False}).render(markdown)
    return nh3.clean(
        rendered,
        tags=set(HTML_TAGS),
        attributes={"a": {"href", "title"}, "ol": {"start"}},
        url_schemes={"http", "https"},
        url_relative="deny",
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


# -- the subjects -------------------------------------------------------------------------------


def _refused(reason: str, missing: Iterable[str] = ()) -> ValidationFailed:
    detail: dict[str, Any] = {"loc": ["subjects"], "reason": reason}
    if listed := list(missing):
        detail["missing"] = listed
    return ValidationFailed(detail)


def _distinct(ids: Iterable[object]) -> tuple[str, ...]:
    kept = (i.strip() for i in ids if isinstance(i, str))
    return tuple(dict.fromkeys(i for i in kept if i))


def _wanted(subjects: ReportSubjects) -> ReportSubjects:
    """The ids asked for, trimmed and deduplicated in order; AURORA-4220 for none, too many or
    one too long to be an id."""
    wanted = ReportSubjects(
        alert_ids=_distinct(subjects.alert_ids),
        case_ids=_distinct(subjects.case_ids),
        investigation_ids=_distinct(subjects.investigation_ids),
    )
    count = wanted.count()
    if not count:
        raise _refused("name at least one alert, case or investigation to report on")
    if count > MAX_SUBJECTS:
        raise _refused(
            f"a report covers at most {MAX_SUBJECTS} alerts, cases and investigations "
            f"together; {count} were named"
        )
    every = (*wanted.alert_ids, *wanted.case_ids, *wanted.investigation_ids)
    if any(len(ident) > ID_CHARS for ident in every):
        raise _refused(f"an id has at most {ID_CHARS} characters")
    return wanted


def _default_title(found: ReportSubjects) -> str:
    ids = [*found.alert_ids, *found.case_ids, *found.investigation_ids]
    more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
    return _plain(f"Incident report: {', '.join(ids[:3])}{more}", TITLE_CHARS)


# -- what is stored ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Records:
    """The rows a report is built from; each bounded list comes with how many there are."""

    alerts: list[Alert]
    cases: list[Case]
    investigations: list[Investigation]
    case_events: tuple[list[CaseEvent], int]
    observables: tuple[list[CaseObservable], int]
    evidence: tuple[list[EvidenceItem], int]
    custody: tuple[list[EvidenceLedgerEntry], int]
    custody_counts: dict[str, int]
    approvals: tuple[list[Approval], int]
    executions: tuple[list[ResponseActionRecord], int]


async def _load(db: AsyncSession, wanted: ReportSubjects) -> _Records:
    alerts = {
        a.id: a for a in await db.scalars(select(Alert).where(Alert.id.in_(wanted.alert_ids)))
    }
    cases = {
        c.id: c
        for c in await db.scalars(
            select(Case).where(Case.id.in_(wanted.case_ids), Case.deleted_at.is_(None))
        )
    }
    investigations = {
        i.id: i
        for i in await db.scalars(
            select(Investigation).where(Investigation.id.in_(wanted.investigation_ids))
        )
    }
    case_ids = [i for i in wanted.case_ids if i in cases]
    run_ids = [i for i in wanted.investigation_ids if i in investigations]
    evidence = await fetch_rows(
        db,
        select(EvidenceItem)
        .where(EvidenceItem.case_id.in_(case_ids))
        .order_by(EvidenceItem.created_at, EvidenceItem.id),
        limit=MAX_EVIDENCE,
        offset=0,
    )
    evidence_ids = [item.id for item in evidence[0]]
    counted = await db.execute(
        select(EvidenceLedgerEntry.evidence_id, func.count())
        .where(EvidenceLedgerEntry.evidence_id.in_(evidence_ids))
        .group_by(EvidenceLedgerEntry.evidence_id)
    )
    return _Records(
        alerts=[alerts[i] for i in wanted.alert_ids if i in alerts],
        cases=[cases[i] for i in case_ids],
        investigations=[investigations[i] for i in run_ids],
        case_events=await fetch_rows(
            db,
            select(CaseEvent).where(CaseEvent.case_id.in_(case_ids)).order_by(CaseEvent.id),
            limit=MAX_TIMELINE,
            offset=0,
        ),
        observables=await fetch_rows(
            db,
            select(CaseObservable)
            .where(CaseObservable.case_id.in_(case_ids))
            .order_by(CaseObservable.created_at, CaseObservable.id),
            limit=MAX_INDICATORS,
            offset=0,
        ),
        evidence=evidence,
        custody=await fetch_rows(
            db,
            select(EvidenceLedgerEntry)
            .where(EvidenceLedgerEntry.evidence_id.in_(evidence_ids))
            .order_by(EvidenceLedgerEntry.id),
            limit=MAX_TIMELINE,
            offset=0,
        ),
        custody_counts={str(ident): int(count) for ident, count in counted},
        approvals=await fetch_rows(
            db,
            select(Approval)
            .where(Approval.investigation_id.in_(run_ids))
            .order_by(Approval.requested_at, Approval.id),
            limit=MAX_ACTIONS,
            offset=0,
        ),
        executions=await fetch_rows(
            db,
            select(ResponseActionRecord)
            .where(ResponseActionRecord.investigation_id.in_(run_ids))
            .order_by(ResponseActionRecord.created_at, ResponseActionRecord.key),
            limit=MAX_ACTIONS,
            offset=0,
        ),
    )


# -- text from records ---------------------------------------------------------------------------


def _plain(value: object, limit: int) -> str:
    """A stored value as one line of at most ``limit`` characters (cut ones end in "…"):
    control, line-breaking, zero-width and bidirectional characters become spaces and runs of
    whitespace one space. Only strings and numbers are shown; anything else is empty."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        return ""
    cut = len(text) > limit * 8  # bounded work on any input
    text = " ".join(_UNSAFE.sub(" ", text[: limit * 8]).split())
    if cut or len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text


def _md(value: object, limit: int = LINE_CHARS) -> str:
    """A stored value as Markdown that shows it literally: every ASCII punctuation character
    backslash-escaped, so it opens no link, image, emphasis, code span, HTML, entity or block
    (at the start of a list item), nor a bare-URL autolink where a renderer linkifies them."""
    return _PUNCTUATION.sub(r"\\\1", _plain(value, limit))


def _code(value: object, limit: int = LINE_CHARS) -> str:
    """A stored value as a code span (ids, hashes, indicators): literal in Markdown, escaped by
    the renderer; its fence is longer than any run of backticks in it."""
    text = _plain(value, limit)
    if not text:
        return "(none)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _moment(value: object) -> datetime | None:
    """A stored time as aware UTC: a datetime, epoch seconds (a receipt's timeline) or ISO
    8601 text (an evidence ledger's); None for anything else."""
    try:
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC) if math.isfinite(value) else None
        if isinstance(value, str) and len(value) <= 40:
            return _moment(datetime.fromisoformat(value))
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _ratio(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}"


def _dicts(value: object) -> list[dict[str, Any]]:
    """The objects of a list in a receipt (whatever else a receipt holds there is skipped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _receipt(investigation: Investigation) -> dict[str, Any]:
    return _dict(investigation.receipt)


def _actor(name: object) -> str:
    return _md(name, WORD_CHARS) or "an actor not recorded"


def _omitted(shown: int, total: int, what: str, cap: int) -> list[str]:
    """The note under a section that shows ``shown`` of ``total`` entries (at most ``cap``)."""
    if total <= shown:
        return []
    return ["", f"*{total - shown} more {what} not shown (a report shows at most {cap}).*"]


# -- the Markdown --------------------------------------------------------------------------------


def _markdown(
    records: _Records,
    title: str,
    missing: tuple[str, ...],
    requested_by: str,
    moment: datetime,
) -> str:
    lines = [f"# {_md(title, TITLE_CHARS)}", ""]
    for section in (
        _summary(records, missing),
        _timeline(records),
        _findings(records),
        _techniques(records),
        _indicators(records),
        _actions(records),
        _evidence(records),
    ):
        lines += [*section, ""]
    lines += [
        "---",
        "",
        f"Generated at {_iso(moment)} by {_md(requested_by, WORD_CHARS)}, only from the "
        "platform's stored records: alerts, cases and their timelines, evidence and its "
        "custody ledger, investigations and their receipts, and the approval and "
        "response-action ledgers. Text taken from those records is shown as written, never as "
        "formatting.",
        "",
        "The report's SHA-256 is computed over this Markdown text (UTF-8, this footer "
        "included) and kept beside it: recompute it to check that the text is unchanged.",
    ]
    return "\n".join(lines) + "\n"


def _verdict(investigation: Investigation) -> str | None:
    verdict = _receipt(investigation).get("verdict")
    return verdict if isinstance(verdict, str) and verdict in VERDICT_RANK else None


def _summary(records: _Records, missing: tuple[str, ...]) -> list[str]:
    lines = ["## Summary", ""]
    for alert in records.alerts:
        case_note = f", on case {_code(alert.case_id)}" if alert.case_id else ""
        lines.append(
            f"- Alert {_code(alert.id)}: {_md(alert.title, TITLE_CHARS)} (severity "
            f"**{_md(alert.severity, WORD_CHARS)}**, status **{_md(alert.status, WORD_CHARS)}**"
            f", source {_md(alert.source, WORD_CHARS)}, {alert.occurrences} occurrence(s)"
            f"{case_note})"
        )
        if alert.description:
            lines.append(f"  - {_md(alert.description, TEXT_CHARS)}")
    for case_ in records.cases:
        assignee = f", assignee {_md(case_.assignee, WORD_CHARS)}" if case_.assignee else ""
        lines.append(
            f"- Case {_code(case_.id)}: {_md(case_.title, TITLE_CHARS)} (severity "
            f"**{_md(case_.severity, WORD_CHARS)}**, status **{_md(case_.status, WORD_CHARS)}**"
            f", {_md(case_.tlp, WORD_CHARS)}, {_md(case_.pap, WORD_CHARS)}{assignee})"
        )
        if case_.description:
            lines.append(f"  - {_md(case_.description, TEXT_CHARS)}")
    for run in records.investigations:
        receipt = _receipt(run)
        about = [
            f"{kind} {_code(ident)}"
            for kind, ident in (("alert", run.alert_id), ("case", run.case_id))
            if ident
        ]
        verdict = _verdict(run)
        judged = (
            f", verdict **{_md(verdict)}** (severity "
            f"{_md(receipt.get('severity'), WORD_CHARS) or 'n/a'}"
            f", confidence {_ratio(receipt.get('confidence'))}"
            + (", degraded" if receipt.get("degraded") is True else "")
            + ")"
            if verdict
            else ", no verdict yet"
        )
        lines.append(
            f"- Investigation {_code(run.id)}"
            + (f" of {' and '.join(about)}" if about else "")
            + f" (status **{_md(run.status, WORD_CHARS)}**, priority "
            f"{_md(run.priority, WORD_CHARS)}){judged}"
        )
        if run.error:
            lines.append(f"  - error: {_md(run.error)}")
    if missing:
        lines.append(f"- Not found: {', '.join(_code(ident, ID_CHARS) for ident in missing)}")
    judged_runs = [(v, run) for run in records.investigations if (v := _verdict(run))]
    lines.append("")
    if judged_runs:
        worst = max(VERDICT_RANK[v] for v, _ in judged_runs)
        verdict = next(v for v, _ in judged_runs if VERDICT_RANK[v] == worst)
        by = ", ".join(_code(run.id) for v, run in judged_runs if v == verdict)
        lines.append(f"**Overall verdict: {_md(verdict)}** (from {by}).")
    elif records.investigations:
        lines.append("**Overall verdict:** none yet: no investigation here has finished with one.")
    else:
        lines.append("**Overall verdict:** none: no investigation is part of this report.")
    return lines


# -- the timeline --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Event:
    at: datetime
    subject: str
    what: str
    actor: object
    detail: str = ""


def _short(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and value:
        return ", ".join(_plain(v, 40) for v in value[:5]) + (", …" if len(value) > 5 else "")
    return _plain(value, 40) or "none"


def _changes_text(changes: object) -> str:
    """What a case timeline entry changed: ``name: old → new`` per field (values cut short)."""
    parts = []
    for name, change in list(_dict(changes).items())[:8]:
        if isinstance(change, dict) and {"old", "new"} <= change.keys():
            parts.append(f"{name}: {_short(change['old'])} → {_short(change['new'])}")
        else:
            parts.append(f"{name}: {_short(change)}")
    return "; ".join(parts)


def _alert_events(alert: Alert) -> list[_Event]:
    events = [_Event(alert.created_at, alert.id, "alert.created", alert.created_by)]
    if alert.created_at - alert.first_seen >= timedelta(seconds=1):  # reported late
        events.append(_Event(alert.first_seen, alert.id, "alert.first_seen", alert.source))
    if alert.occurrences > 1 and alert.last_seen > alert.first_seen:
        detail = f"{alert.occurrences} occurrences"
        events.append(_Event(alert.last_seen, alert.id, "alert.last_seen", alert.source, detail))
    if alert.acknowledged_at is not None:
        events.append(
            _Event(alert.acknowledged_at, alert.id, "alert.acknowledged", alert.acknowledged_by)
        )
    if alert.closed_at is not None:
        events.append(_Event(alert.closed_at, alert.id, f"alert.{alert.status}", None))
    return events


def _run_events(run: Investigation) -> list[_Event]:
    about = ", ".join(f"{k} {i}" for k, i in (("alert", run.alert_id), ("case", run.case_id)) if i)
    events = [
        _Event(run.created_at, run.id, "investigation.queued", run.requested_by, about),
    ]
    if run.started_at is not None:
        events.append(_Event(run.started_at, run.id, "investigation.started", SYSTEM))
    if run.finished_at is not None:
        verdict = _verdict(run)
        detail = f"verdict {verdict}" if verdict else (run.error or "")
        events.append(
            _Event(run.finished_at, run.id, f"investigation.{run.status}", SYSTEM, detail)
        )
    return events


def _proposed_at(run: Investigation) -> datetime | None:
    """When the guardrails decided the investigation's actions (its receipt's timeline)."""
    stamps = [e for e in _dicts(_receipt(run).get("timeline")) if e.get("event") == "guardrails"]
    return _moment(stamps[-1].get("at")) if stamps else None


def _action_events(records: _Records) -> list[_Event]:
    events = []
    asked = {a.id for a in records.approvals[0]}
    executed = {r.key for r in records.executions[0]}
    for approval in records.approvals[0]:
        what = f"{approval.action} on {approval.target}"
        events.append(
            _Event(
                approval.requested_at,
                approval.investigation_id,
                "action.approval_requested",
                SYSTEM,
                f"{approval.id}: {what}",
            )
        )
        if approval.decided_at is not None:
            comment = f" ({approval.comment})" if approval.comment else ""
            events.append(
                _Event(
                    approval.decided_at,
                    approval.investigation_id,
                    f"action.{approval.status}",
                    approval.decided_by or SYSTEM,
                    f"{approval.id}: {what}{comment}",
                )
            )
    for record in records.executions[0]:
        what = f"{record.key}: {record.action} on {record.target}"
        approved = f", approved by {record.approved_by}" if record.approved_by else ""
        events.append(
            _Event(
                record.created_at,
                record.investigation_id,
                "action.started",
                record.executor,
                what + approved,
            )
        )
        if record.finished_at is not None:
            events.append(
                _Event(
                    record.finished_at,
                    record.investigation_id,
                    f"action.{record.status}",
                    record.executor,
                    what,
                )
            )
    for run in records.investigations:
        at = _proposed_at(run) or run.finished_at
        if at is None:
            continue
        for action in _dicts(_receipt(run).get("actions")):
            key = action.get("key")
            if key in asked or key in executed:
                continue  # the ledgers tell it, with their own times and actors
            mode = _plain(_dict(action.get("guardrail")).get("mode"), 16)
            events.append(
                _Event(
                    at,
                    run.id,
                    f"action.{_plain(action.get('status'), WORD_CHARS) or 'proposed'}",
                    SYSTEM,
                    f"{_plain(key, WORD_CHARS)}: {_plain(action.get('action'), WORD_CHARS)} on "
                    f"{_plain(action.get('target'), LINE_CHARS)}"
                    + (f" (mode {mode})" if mode else ""),
                )
            )
    return events


def _timeline(records: _Records) -> list[str]:
    events: list[_Event] = []
    for alert in records.alerts:
        events += _alert_events(alert)
    events += [
        _Event(e.created_at, e.case_id, e.action, e.actor, _changes_text(e.changes))
        for e in records.case_events[0]
    ]
    names = {item.id: item.name for item in records.evidence[0]}
    for entry in records.custody[0]:
        at = _moment(entry.at)
        if at is not None:
            detail = f"{names.get(entry.evidence_id, '')}: {entry.reason}"
            events.append(
                _Event(at, entry.evidence_id, f"custody.{entry.action}", entry.actor, detail)
            )
    for run in records.investigations:
        events += _run_events(run)
    events += _action_events(records)
    # Each source gave its earliest rows: their merge's first MAX_TIMELINE are the report's.
    total = len(events) + sum(
        count - len(rows)
        for rows, count in (
            records.case_events,
            records.custody,
            records.approvals,
            records.executions,
        )
    )
    shown = sorted(events, key=lambda event: event.at)[:MAX_TIMELINE]
    lines = ["## Timeline", ""]
    for event in shown:
        detail = f": {_md(event.detail)}" if event.detail else ""
        lines.append(
            f"- {_iso(event.at)} **{_md(event.what, WORD_CHARS)}** {_code(event.subject)} by "
            f"{_actor(event.actor)}{detail}"
        )
    if not shown:
        lines.append("No recorded events.")
    return lines + _omitted(len(shown), total, "timeline entries", MAX_TIMELINE)


# -- findings, techniques, indicators ------------------------------------------------------------


def _findings(records: _Records) -> list[str]:
    lines = ["## Findings"]
    shown = total = 0
    for run in records.investigations:
        receipt = _receipt(run)
        lines += ["", f"### Investigation {_code(run.id)}", ""]
        if not receipt:
            lines.append(f"No receipt yet (status {_md(run.status, WORD_CHARS)}).")
            continue
        findings = _dicts(receipt.get("findings"))
        failures = _dicts(receipt.get("failures"))
        total += len(findings)
        for finding in findings:
            if shown >= MAX_FINDINGS:
                break
            shown += 1
            notes = [_md(finding.get("backend"), WORD_CHARS)]
            if finding.get("degraded") is True:
                notes.append("degraded")
            lines.append(
                f"- **{_md(finding.get('agent'), WORD_CHARS) or 'an agent'}**: severity "
                f"{_md(finding.get('severity'), WORD_CHARS) or 'n/a'}, confidence "
                f"{_ratio(finding.get('confidence'))}"
                f" ({', '.join(n for n in notes if n) or 'backend not said'}): "
                f"{_md(finding.get('summary'), TEXT_CHARS)}"
            )
        for failure in failures[:20]:
            lines.append(
                f"- **{_md(failure.get('agent'), WORD_CHARS) or 'an agent'}** failed: "
                f"{_md(failure.get('reason'))}"
            )
        if not findings and not failures:
            lines.append("The receipt records no finding.")
    if not records.investigations:
        lines += ["", "No investigation is part of this report."]
    return lines + _omitted(shown, total, "findings", MAX_FINDINGS)


def _add(table: dict[str, dict[str, list[str]]], key: str, subject: str, how: str) -> None:
    sources = table.setdefault(key, {}).setdefault(subject, [])
    if how not in sources:
        sources.append(how)


def _techniques(records: _Records) -> list[str]:
    named: dict[str, dict[str, list[str]]] = {}

    def tagged(subject: str, tags: object, how: str) -> None:
        for tag in _list(tags):
            found = _TECHNIQUE_TAG.match(tag) if isinstance(tag, str) else None
            if found and (tid := normalise_technique_id(found[1])):
                _add(named, tid, subject, how)

    for alert in records.alerts:
        tagged(alert.id, alert.tags, "tag")
        for entity in _dicts(alert.entities):
            tid = normalise_technique_id(entity.get("value", ""))
            if entity.get("type") == "attack_technique" and tid:
                _add(named, tid, alert.id, "entity")
    for case_ in records.cases:
        tagged(case_.id, case_.tags, "tag")
    for observable in records.observables[0]:
        tid = normalise_technique_id(observable.value)
        if observable.type == "attack_technique" and tid:
            _add(named, tid, observable.case_id, "observable")
    for run in records.investigations:
        receipt = _receipt(run)
        observed = _dicts(receipt.get("techniques")) or [
            # a receipt without the union: its findings' own lists
            {"id": value, "agents": [finding.get("agent")]}
            for finding in _dicts(receipt.get("findings"))
            for value in _list(finding.get("mitre_techniques"))
        ]
        for technique in observed:
            if tid := normalise_technique_id(technique.get("id", "")):
                agents = [_plain(a, WORD_CHARS) for a in _list(technique.get("agents"))]
                _add(
                    named,
                    tid,
                    run.id,
                    "observed by " + (", ".join(a for a in agents if a) or "an agent"),
                )
        for technique in _dicts(receipt.get("text_techniques")):
            if tid := normalise_technique_id(technique.get("id", "")):
                _add(named, tid, run.id, "described in its text")
    ordered = sorted(named, key=technique_sort_key)
    lines = ["## ATT&CK techniques", ""]
    for tid in ordered[:MAX_TECHNIQUES]:
        by = "; ".join(
            f"{_code(subject)} ({_md(', '.join(hows))})" for subject, hows in named[tid].items()
        )
        lines.append(f"- {_code(tid)}: {by}")
    if not ordered:
        lines.append("No technique is named in these records.")
    shown = min(len(ordered), MAX_TECHNIQUES)
    return lines + _omitted(shown, len(ordered), "techniques", MAX_TECHNIQUES)


def _indicators(records: _Records) -> list[str]:
    noted: list[tuple[object, object, str, str]] = []
    for alert in records.alerts:
        noted += [
            (e.get("type"), e.get("value"), alert.id, "entity") for e in _dicts(alert.entities)
        ]
    for observable in records.observables[0]:
        flags = [f for f, on in (("ioc", observable.ioc), ("sighted", observable.sighted)) if on]
        noted.append((observable.type, observable.value, observable.case_id, ", ".join(flags)))
    for run in records.investigations:
        noted += [
            (i.get("type"), i.get("value"), run.id, "") for i in _dicts(_receipt(run).get("iocs"))
        ]
    seen: dict[tuple[str, str], dict[str, list[str]]] = {}
    left_out: set[tuple[str, str]] = set()
    for kind, value, subject, how in noted:
        key = (_plain(kind, WORD_CHARS), _plain(value, LINE_CHARS))
        if not all(key):
            continue
        if key not in seen and len(seen) >= MAX_INDICATORS:
            left_out.add(key)
            continue
        hows = seen.setdefault(key, {}).setdefault(subject, [])
        if how and how not in hows:
            hows.append(how)
    unread = records.observables[1] - len(records.observables[0])
    lines = ["## Indicators", ""]
    for (kind, value), named_by in seen.items():
        by = ", ".join(
            _code(subject) + (f" ({_md(', '.join(hows))})" if hows else "")
            for subject, hows in named_by.items()
        )
        lines.append(f"- {_md(kind)} {_code(value)}: {by}")
    if not seen:
        lines.append("No indicator or observable is recorded.")
    total = len(seen) + len(left_out) + unread
    return lines + _omitted(len(seen), total, "indicators", MAX_INDICATORS)


# -- actions and evidence ------------------------------------------------------------------------


def _actions(records: _Records) -> list[str]:
    approvals = {a.id: a for a in records.approvals[0]}
    executions = {r.key: r for r in records.executions[0]}
    planned: dict[str, dict[str, Any]] = {}
    for run in records.investigations:
        for action in _dicts(_receipt(run).get("actions")):
            if isinstance(action.get("key"), str):
                planned.setdefault(action["key"], action)
    keys = list(dict.fromkeys([*planned, *approvals, *executions]))
    lines = ["## Actions and approvals", ""]
    for key in keys[:MAX_ACTIONS]:
        action = planned.get(key, {})
        approval, execution = approvals.get(key), executions.get(key)
        row = approval or execution
        name = action.get("action") or (row.action if row else "")
        target = action.get("target") or (row.target if row else "")
        mode = _dict(action.get("guardrail")).get("mode")
        status = action.get("status") or (approval.status if approval else None)
        facts = [
            f"mode {_md(mode, 16)}" if mode else "mode not recorded",
            f"status {_md(status, WORD_CHARS)}" if status else "",
            f"impact {_md(action.get('impact'), 16)}" if action.get("impact") else "",
        ]
        lines.append(
            f"- {_code(key, WORD_CHARS)} **{_md(name, WORD_CHARS)}** on {_code(target)}: "
            + ", ".join(f for f in facts if f)
        )
        lines += _approval_lines(approval, _dict(action.get("approval")))
        if execution is not None:
            finished = (
                f" at {_iso(execution.finished_at)}" if execution.finished_at is not None else ""
            )
            lines.append(
                f"  - execution: {_md(execution.status, WORD_CHARS)} by "
                f"{_actor(execution.executor)}{finished}"
            )
        elif isinstance(action.get("execution"), dict):
            lines.append(
                f"  - execution: {_md(action['execution'].get('status'), WORD_CHARS)} (receipt)"
            )
        reason = action.get("reason") or (execution.reason if execution else "")
        if reason:
            lines.append(f"  - reason: {_md(reason)}")
    if not keys:
        lines.append("No response action was proposed.")
    total = len(keys) + sum(
        count - len(rows) for rows, count in (records.approvals, records.executions)
    )
    return lines + _omitted(min(len(keys), MAX_ACTIONS), total, "actions", MAX_ACTIONS)


def _approval_lines(approval: Approval | None, recorded: dict[str, Any]) -> list[str]:
    """Who decided the action and when: the approvals ledger, else the receipt's record."""
    if approval is not None:
        if approval.decided_at is None:
            return [
                f"  - approval: {_md(approval.status, WORD_CHARS)}, requested at "
                f"{_iso(approval.requested_at)}, expires at {_iso(approval.expires_at)}"
            ]
        by, decided = approval.decided_by or SYSTEM, _iso(approval.decided_at)
        comment = f" ({_md(approval.comment)})" if approval.comment else ""
        return [
            f"  - approval: {_md(approval.status, WORD_CHARS)} by {_actor(by)} at {decided}"
            + comment
        ]
    if recorded:
        at = _moment(recorded.get("at"))
        when = f" at {_iso(at)}" if at else ""
        return [
            f"  - approval: {_md(recorded.get('decision'), WORD_CHARS)} by "
            f"{_actor(recorded.get('by'))}{when}"
        ]
    return ["  - approval: none required"]


def _evidence(records: _Records) -> list[str]:
    items, total = records.evidence
    lines = ["## Evidence", ""]
    for item in items:
        custody = records.custody_counts.get(item.id, 0)
        purged = (
            f"; content purged at {_iso(item.purged_at)} by {_actor(item.purged_by)}"
            if item.purged_at is not None
            else ""
        )
        lines += [
            f"- {_code(item.id)} {_md(item.name, TITLE_CHARS)} (case {_code(item.case_id)})",
            f"  - SHA-256 {_code(item.sha256)}, {item.size:,} bytes, "
            f"{_md(item.content_type, WORD_CHARS)}{purged}",
            f"  - custody: {custody} ledger event(s), ledger head {_code(item.ledger_head)}",
        ]
    if not items:
        lines.append("No evidence is stored for these cases.")
    return lines + _omitted(len(items), total, "evidence items", MAX_EVIDENCE)


# -- the HTML document ---------------------------------------------------------------------------


def _document(title: str, body: str, sha256: str) -> str:
    """The sanitised fragment as a standalone page that loads nothing and runs nothing."""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<main>\n{body}</main>\n"
        f"<footer><p>SHA-256 of this report's Markdown: <code>{sha256}</code></p></footer>\n"
        "</body>\n</html>\n"
    )
