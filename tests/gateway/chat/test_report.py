"""Incident reports built from stored records: every section from real alerts, a case with its
timeline, observables and evidence custody, and an investigation with its receipt and its
approval and action ledgers; missing ids, refusals, caps, and hostile text that must stay text."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from core.blobs import BlobStore
from core.db import Database, create_database
from core.db.base import utcnow
from core.errors import ValidationFailed
from core.ledger import Keyring
from core.settings import Settings
from gateway.alerts.api import acknowledge_alert, create_alert, promote_alert, update_alert
from gateway.alerts.models import Alert
from gateway.alerts.schemas import AlertCreate, AlertPromote, AlertUpdate
from gateway.cases.api import add_observable, create_case, update_case
from gateway.cases.evidence import service as evidence
from gateway.cases.models import CaseEvent, CaseObservable
from gateway.cases.schemas import CaseCreate, CaseUpdate, ObservableCreate
from gateway.cases.service import delete_case
from gateway.chat.report import (
    HTML_TAGS,
    MAX_ACTIONS,
    MAX_INDICATORS,
    MAX_SUBJECTS,
    MAX_TIMELINE,
    IncidentReport,
    ReportSubjects,
    build_report,
)
from gateway.investigations.models import Approval, Investigation, ResponseActionRecord

CONTENT = b"memory image of ws-042\n" * 64
HOSTILE = "<script>alert(1)</script> ![x](http://evil/x.png?q=secret) [click](javascript:alert(1))"
ISO = re.compile(r"^- (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \*\*([a-z_.]+)\*\* `")


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    opened = create_database(settings.effective_database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


@dataclass(frozen=True)
class Incident:
    alert_id: str
    closed_alert_id: str
    case_id: str
    evidence_id: str
    ledger_head: str
    investigation_id: str
    started: datetime


def section(markdown: str, title: str) -> str:
    """The text of the section ``## title`` (up to the next one or the footer)."""
    start = markdown.index(f"\n## {title}\n")
    end = min(
        (i for i in (markdown.find("\n## ", start + 1), markdown.find("\n---\n", start)) if i > 0),
        default=len(markdown),
    )
    return markdown[start:end]


def receipt(investigation_id: str, alert_id: str, at: datetime) -> dict[str, Any]:
    """A receipt as the investigation runner stores it (see orchestrator.receipt)."""
    key = f"{investigation_id}/A1"
    return {
        "investigation_id": investigation_id,
        "verdict": "malicious",
        "severity": "high",
        "confidence": 0.93,
        "techniques": [
            {"id": "T1059.001", "agents": ["endpoint"], "support": []},
            {"id": "T1071.001", "agents": ["network", "threat_intel"], "support": []},
        ],
        "text_techniques": [{"id": "T1566.001", "name": "Spearphishing Attachment"}],
        "iocs": [
            {"type": "ip", "value": "45.33.32.156"},
            {"type": "domain", "value": "c2.evil.example"},
        ],
        "findings": [
            {
                "agent": "endpoint",
                "summary": "Encoded PowerShell spawned by winword.exe on ws-042.",
                "severity": "high",
                "confidence": 0.88,
                "mitre_techniques": ["T1059.001"],
                "iocs": [],
                "evidence": [{"kind": "rule_hit", "ref": "sigma:ps-enc", "summary": "hit"}],
                "recommended_actions": [],
                "backend": "builtin",
                "degraded": False,
                "round": 1,
                "latency_ms": 12.5,
            },
            {
                "agent": "threat_intel",
                "summary": "45.33.32.156 is listed by two feeds as a C2 server.",
                "severity": "critical",
                "confidence": 0.97,
                "mitre_techniques": ["T1071.001"],
                "backend": "llm",
                "degraded": True,
                "round": 1,
                "latency_ms": 40.0,
            },
        ],
        "failures": [{"agent": "malware", "reason": "deadline exceeded"}],
        "errors": [],
        "degraded": True,
        "actions": [
            {
                "key": key,
                "action": "isolate_host",
                "target": "ws-042",
                "reason": "C2 beaconing confirmed by two feeds",
                "impact": "high",
                "guardrail": {"decision": "require_approval", "mode": "active"},
                "status": "executed",
                "approval": {"decision": "approved", "by": "bob", "at": None},
                "execution": {"status": "executed", "executor": "edr"},
            },
            {
                "key": f"{investigation_id}/A2",
                "action": "block_ip",
                "target": "45.33.32.156",
                "reason": "listed C2",
                "impact": "low",
                "guardrail": {"decision": "allow", "mode": "monitor"},
                "status": "proposed",
            },
        ],
        "tool_calls": [],
        "tool_call_chain": "0" * 64,
        "tokens": 0,
        "timeline": [
            {"at": (at + timedelta(seconds=2)).timestamp(), "event": "intake"},
            {
                "at": (at + timedelta(seconds=3, milliseconds=500)).timestamp(),
                "event": "guardrails",
            },
        ],
        "latency_ms": 7000.0,
    }


@pytest.fixture
async def incident(database: Database, tmp_path: Path) -> Incident:
    """Two alerts (one promoted to a case, one closed), the case's observables, an evidence
    item handed over once, and a finished investigation with an approved, executed action."""
    async with database.session() as db:
        alert, _ = await create_alert(
            db=db,
            actor="detections",
            body=AlertCreate(
                title="Encoded PowerShell from winword.exe",
                description="Parent winword.exe spawned powershell -enc ...",
                severity="high",
                source="edr",
                tags=["attack.t1566.001", "phishing"],
                entities=[
                    {"type": "ip", "value": "45.33.32.156"},
                    {"type": "host", "value": "WS-042"},
                    {"type": "attack_technique", "value": "T1059.001"},
                ],
            ),
            dedup_window_seconds=0,
        )
        await acknowledge_alert(db=db, actor="ana", alert_id=alert.id)
    async with database.session() as db:
        closed, _ = await create_alert(
            db=db,
            actor="detections",
            body=AlertCreate(title="Port scan from the printer VLAN", source="ids"),
            dedup_window_seconds=0,
        )
        await update_alert(
            db=db, actor="ana", alert_id=closed.id, body=AlertUpdate(status="false_positive")
        )
    async with database.session() as db:
        promoted = await promote_alert(
            db=db, actor="ana", alert_id=alert.id, body=AlertPromote(assignee="ana")
        )
    case_id = promoted.case_id
    async with database.session() as db:
        await add_observable(
            db=db,
            actor="ana",
            case_id=case_id,
            body=ObservableCreate(type="sha256", value="a" * 64, ioc=True),
        )
    async with database.session() as db:
        await update_case(
            db=db, actor="ana", case_id=case_id, body=CaseUpdate(status="in_progress")
        )
    blobs = BlobStore(tmp_path / "evidence", max_bytes=10_000_000)
    keys = Keyring(tmp_path / "ledger-keys")
    async with database.session() as db:
        with blobs.stage() as content:
            content.write(CONTENT)
            item = await evidence.add_evidence(
                db=db,
                blobs=blobs,
                keys=keys,
                case_id=case_id,
                actor="ana",
                name="ws-042.mem",
                content_type="application/octet-stream",
                description=None,
                reason="acquired from ws-042",
                content=content,
            )
    async with database.session() as db:
        locked = await evidence.get_evidence(db=db, case_id=case_id, evidence_id=item.id, lock=True)
        await evidence.append_custody(
            db=db,
            keys=keys,
            item=locked,
            action="transfer",
            actor="carol",
            reason="handed to legal",
        )
        await db.commit()
        head = locked.ledger_head
    start = utcnow() + timedelta(seconds=1)
    run_id = "INV-2026-00001"
    key = f"{run_id}/A1"
    async with database.session() as db:
        db.add_all(
            [
                Investigation(
                    id=run_id,
                    status="completed",
                    priority="high",
                    alert_id=alert.id,
                    case_id=case_id,
                    subject={"title": alert.title, "text": "", "iocs": []},
                    requested_by="ana",
                    attempts=2,
                    receipt=receipt(run_id, alert.id, start),
                    created_at=start,
                    started_at=start + timedelta(seconds=1),
                    finished_at=start + timedelta(seconds=8),
                ),
                Approval(
                    id=key,
                    investigation_id=run_id,
                    action="isolate_host",
                    target="ws-042",
                    request={"reason": "C2 beaconing confirmed by two feeds"},
                    status="approved",
                    requested_at=start + timedelta(seconds=3),
                    expires_at=start + timedelta(minutes=15),
                    decided_by="bob",
                    decided_at=start + timedelta(seconds=4),
                    comment="go ahead",
                ),
                ResponseActionRecord(
                    key=key,
                    investigation_id=run_id,
                    action="isolate_host",
                    target="ws-042",
                    reason="C2 beaconing confirmed by two feeds",
                    approved_by="bob",
                    status="executed",
                    executor="edr",
                    detail={},
                    created_at=start + timedelta(seconds=5),
                    finished_at=start + timedelta(seconds=6),
                ),
            ]
        )
        await db.commit()
    return Incident(alert.id, closed.id, case_id, item.id, head, run_id, start)


async def report_of(database: Database, **subjects: Any) -> IncidentReport:
    async with database.session() as db:
        return await build_report(
            db=db,
            subjects=ReportSubjects(**subjects),
            title=None,
            requested_by="ana",
            generated_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        )


def unescape(markdown: str) -> str:
    """Markdown with its backslash escapes taken out: the text as a reader sees it."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def tokens(markdown: str) -> list[Token]:
    found = []
    pending = MarkdownIt("commonmark", {"html": False}).parse(markdown)
    while pending:
        token = pending.pop()
        found.append(token)
        pending.extend(token.children or [])
    return found


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(document: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(document)
    return parser.tags


async def test_a_report_has_every_section_from_the_stored_records(
    database: Database, incident: Incident
) -> None:
    report = await report_of(
        database,
        alert_ids=(incident.alert_id, incident.closed_alert_id),
        case_ids=(incident.case_id,),
        investigation_ids=(incident.investigation_id,),
    )
    md = report.markdown
    assert report.subjects == ReportSubjects(
        alert_ids=(incident.alert_id, incident.closed_alert_id),
        case_ids=(incident.case_id,),
        investigation_ids=(incident.investigation_id,),
    )
    assert report.missing == ()
    assert report.sha256 == hashlib.sha256(md.encode()).hexdigest()
    assert report.title == (
        f"Incident report: {incident.alert_id}, {incident.closed_alert_id}, {incident.case_id} "
        "and 1 more"
    )
    headings = re.findall(r"^## (.+)$", md, re.MULTILINE)
    assert headings == [
        "Summary",
        "Timeline",
        "Findings",
        "ATT&CK techniques",
        "Indicators",
        "Actions and approvals",
        "Evidence",
    ]
    alert, closed, case_ = (
        f"`{incident.alert_id}`",
        f"`{incident.closed_alert_id}`",
        f"`{incident.case_id}`",
    )
    run = f"`{incident.investigation_id}`"

    summary = unescape(section(md, "Summary"))
    assert (
        f"- Alert {alert}: Encoded PowerShell from winword.exe (severity **high**, status "
        f"**in_progress**, source edr, 1 occurrence(s), on case {case_})" in summary
    )
    assert "  - Parent winword.exe spawned powershell -enc ..." in summary
    assert (
        f"- Alert {closed}: Port scan from the printer VLAN (severity **medium**, status "
        "**false_positive**, source ids, 1 occurrence(s))" in summary
    )
    assert (
        f"- Case {case_}: Encoded PowerShell from winword.exe (severity **high**, status "
        "**in_progress**, TLP:AMBER, PAP:AMBER, assignee ana)" in summary
    )
    assert (
        f"- Investigation {run} of alert {alert} and case {case_} (status **completed**, "
        "priority high), verdict **malicious** (severity high, confidence 0.93, degraded)"
        in summary
    )
    assert f"**Overall verdict: malicious** (from {run})." in summary

    timeline = [line for line in unescape(section(md, "Timeline")).splitlines() if line[:2] == "- "]
    events = [ISO.match(line) for line in timeline]
    assert all(events), timeline
    stamps = [m[1] for m in events if m]
    assert stamps == sorted(stamps)
    what = [m[2] for m in events if m]
    for earlier, later in [
        ("alert.created", "alert.acknowledged"),
        ("alert.acknowledged", "case.created"),
        ("case.created", "alert.linked"),
        ("alert.linked", "case.updated"),
        ("case.updated", "custody.create"),
        ("custody.create", "custody.transfer"),
        ("custody.transfer", "investigation.queued"),
        ("investigation.queued", "investigation.started"),
        ("investigation.started", "action.approval_requested"),
        ("action.approval_requested", "action.proposed"),
        ("action.proposed", "action.approved"),
        ("action.approved", "action.started"),
        ("action.started", "action.executed"),
        ("action.executed", "investigation.completed"),
    ]:
        assert what.index(earlier) < what.index(later), (earlier, later, what)
    line = dict(zip(what, timeline, strict=True))
    assert line["alert.false_positive"].endswith(f"{closed} by an actor not recorded")
    assert line["alert.acknowledged"].endswith(f"{closed} by ana")
    assert f"{case_} by ana: title: Encoded PowerShell from winword.exe; " in line["case.created"]
    assert line["alert.linked"].endswith(f"{case_} by ana: alert_id: {incident.alert_id}")
    assert line["case.updated"].endswith(f"{case_} by ana: status: open → in_progress")
    assert line["custody.create"].endswith(
        f"`{incident.evidence_id}` by ana: ws-042.mem: acquired from ws-042"
    )
    assert line["custody.transfer"].endswith("by carol: ws-042.mem: handed to legal")
    assert line["investigation.queued"] == (
        f"- {_iso(incident.started)} **investigation.queued** {run} by ana: "
        f"alert {incident.alert_id}, case {incident.case_id}"
    )
    assert line["action.approval_requested"].endswith(
        f"{run} by aurora: {incident.investigation_id}/A1: isolate_host on ws-042"
    )
    assert line["action.proposed"].endswith(
        f"{run} by aurora: {incident.investigation_id}/A2: block_ip on 45.33.32.156 (mode monitor)"
    )
    assert line["action.approved"].endswith(
        f"{run} by bob: {incident.investigation_id}/A1: isolate_host on ws-042 (go ahead)"
    )
    assert line["action.started"].endswith(
        f"{run} by edr: {incident.investigation_id}/A1: isolate_host on ws-042, approved by bob"
    )
    assert line["action.executed"].endswith(
        f"{run} by edr: {incident.investigation_id}/A1: isolate_host on ws-042"
    )
    assert line["investigation.completed"] == (
        f"- {_iso(incident.started + timedelta(seconds=8))} **investigation.completed** {run} "
        "by aurora: verdict malicious"
    )

    findings = unescape(section(md, "Findings"))
    assert f"### Investigation {run}" in findings
    assert (
        "- **endpoint**: severity high, confidence 0.88 (builtin): Encoded PowerShell spawned by "
        "winword.exe on ws-042." in findings
    )
    assert (
        "- **threat_intel**: severity critical, confidence 0.97 (llm, degraded): 45.33.32.156 is "
        "listed by two feeds as a C2 server." in findings
    )
    assert "- **malware** failed: deadline exceeded" in findings

    techniques = unescape(section(md, "ATT&CK techniques")).splitlines()
    listed = {line.split("`")[1]: line for line in techniques if line.startswith("- ")}
    assert list(listed) == ["T1059.001", "T1071.001", "T1566.001"]  # in ATT&CK's order
    assert listed["T1059.001"] == (
        f"- `T1059.001`: {alert} (entity); {case_} (observable); {run} (observed by endpoint)"
    )
    assert listed["T1071.001"] == f"- `T1071.001`: {run} (observed by network, threat_intel)"
    assert listed["T1566.001"] == (  # the case took the alert's tags when it was promoted
        f"- `T1566.001`: {alert} (tag); {case_} (tag); {run} (described in its text)"
    )

    indicators = unescape(section(md, "Indicators")).splitlines()
    assert f"- ip `45.33.32.156`: {alert} (entity), {case_} (ioc, sighted), {run}" in indicators
    assert f"- host `ws-042`: {alert} (entity), {case_} (ioc, sighted)" in indicators
    assert f"- hash `{'a' * 64}`: {case_} (ioc)" in indicators
    assert f"- domain `c2.evil.example`: {run}" in indicators

    actions = unescape(section(md, "Actions and approvals"))
    decided, done = incident.started + timedelta(seconds=4), incident.started + timedelta(seconds=6)
    assert (
        f"- `{incident.investigation_id}/A1` **isolate_host** on `ws-042`: mode active, "
        "status executed, impact high\n"
        f"  - approval: approved by bob at {_iso(decided)} (go ahead)\n"
        f"  - execution: executed by edr at {_iso(done)}\n"
        "  - reason: C2 beaconing confirmed by two feeds\n"
    ) in actions
    assert (
        f"- `{incident.investigation_id}/A2` **block_ip** on `45.33.32.156`: mode monitor, "
        "status proposed, impact low\n"
        "  - approval: none required\n"
        "  - reason: listed C2"
    ) in actions

    proof = unescape(section(md, "Evidence"))
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert (
        f"- `{incident.evidence_id}` ws-042.mem (case {case_})\n"
        f"  - SHA-256 `{digest}`, {len(CONTENT):,} bytes, application/octet-stream\n"
        f"  - custody: 2 ledger event(s), ledger head `{incident.ledger_head}`"
    ) in proof

    footer = unescape(md[md.index("\n---\n") :])
    assert "Generated at 2026-12-01T09:30:00Z by ana, only from the platform's stored" in footer
    assert "SHA-256 is computed over this Markdown text" in footer

    page = report.html
    assert page.startswith("<!doctype html>\n")
    assert '<meta charset="utf-8">' in page
    assert f"<title>{report.title}</title>" in page
    assert f"<code>{report.sha256}</code>" in page
    assert "<h2>Evidence</h2>" in page
    assert f"<code>{digest}</code>" in page
    assert "<strong>Overall verdict: malicious</strong>" in page


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def test_missing_ids_are_named_and_what_exists_is_reported(
    database: Database, incident: Incident
) -> None:
    report = await report_of(
        database,
        alert_ids=(incident.alert_id, "ALRT-2026-99999", incident.alert_id),
        case_ids=("CASE-2026-99999",),
        investigation_ids=(" ", "INV-2026-99999"),
    )
    assert report.subjects == ReportSubjects(alert_ids=(incident.alert_id,))
    assert report.missing == ("ALRT-2026-99999", "CASE-2026-99999", "INV-2026-99999")
    assert "- Not found: `ALRT-2026-99999`, `CASE-2026-99999`, `INV-2026-99999`" in report.markdown
    assert "**Overall verdict:** none: no investigation is part of this report." in report.markdown
    assert "No evidence is stored for these cases." in report.markdown
    assert "No response action was proposed." in report.markdown


async def test_a_given_title_is_used_and_a_deleted_case_is_missing(
    database: Database, incident: Incident
) -> None:
    async with database.session() as db:
        gone = await create_case(db=db, actor="ana", body=CaseCreate(title="Duplicate"))
    async with database.session() as db:
        await delete_case(db=db, actor="ana", case_id=gone.id)
    async with database.session() as db:
        report = await build_report(
            db=db,
            subjects=ReportSubjects(case_ids=(incident.case_id, gone.id)),
            title="  Phishing\nwave   on WS-042 ",
            requested_by="ana",
        )
    assert report.title == "Phishing wave on WS-042"
    assert report.markdown.startswith("# Phishing wave on WS\\-042\n")
    assert report.missing == (gone.id,)
    assert report.subjects.case_ids == (incident.case_id,)


@pytest.mark.parametrize(
    ("subjects", "reason"),
    [
        ({}, "name at least one alert, case or investigation"),
        ({"alert_ids": ("", "  ")}, "name at least one alert, case or investigation"),
        (
            {
                "alert_ids": tuple(f"ALRT-2026-{n:05d}" for n in range(15)),
                "case_ids": tuple(f"CASE-2026-{n:05d}" for n in range(6)),
            },
            f"at most {MAX_SUBJECTS} alerts, cases and investigations together; 21 were named",
        ),
        ({"case_ids": ("C" * 65,)}, "an id has at most 64 characters"),
        (
            {"alert_ids": ("ALRT-2026-99999",), "investigation_ids": ("INV-2026-99999",)},
            "none of the alerts, cases or investigations named exists",
        ),
    ],
)
async def test_a_report_that_cannot_be_built_is_refused(
    database: Database, subjects: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await report_of(database, **subjects)
    assert caught.value.code == "AURORA-4220"
    assert caught.value.detail["loc"] == ["subjects"]
    assert reason in caught.value.detail["reason"]
    if "none of" in reason:
        assert caught.value.detail["missing"] == ["ALRT-2026-99999", "INV-2026-99999"]


async def test_twenty_subjects_are_accepted(database: Database, incident: Incident) -> None:
    ids = (incident.alert_id, *(f"ALRT-2026-{n:05d}" for n in range(100, 119)))
    report = await report_of(database, alert_ids=ids)
    assert len(ids) == MAX_SUBJECTS
    assert report.subjects.alert_ids == (incident.alert_id,)
    assert len(report.missing) == MAX_SUBJECTS - 1


async def test_hostile_text_stays_text(database: Database) -> None:
    async with database.session() as db:
        alert, _ = await create_alert(
            db=db,
            actor="detections",
            body=AlertCreate(
                title=HOSTILE,
                description="line one\n# not a heading\n<img src=x onerror=alert(2)>\n"
                "[ref]: javascript:alert(3)\n```\n<iframe src=//evil>\u202eexe.txt",
                source="edr",
                entities=[
                    {"type": "process", "value": "`` ![y](https://evil/y.png) ``"},
                    {"type": "user_agent", "value": "<a href='javascript:alert(4)'>x</a>"},
                ],
            ),
            dedup_window_seconds=0,
        )
    async with database.session() as db:
        case_ = await create_case(
            db=db,
            actor="ana",
            body=CaseCreate(title="**bold** _em_ <b>x</b> &lt;script&gt; [a](http://evil)"),
        )
    async with database.session() as db:
        db.add(
            Investigation(
                id="INV-2026-00009",
                status="completed",
                priority="normal",
                alert_id=alert.id,
                subject={},
                requested_by="ana",
                receipt={
                    "verdict": "suspicious",
                    "findings": [
                        {
                            "agent": "<script>x</script>",
                            "summary": "![z](http://evil/z.png) <svg onload=alert(5)>",
                            "severity": "high",
                            "confidence": "0.9<img>",
                        }
                    ],
                    "actions": [
                        {
                            "key": "INV-2026-00009/A1",
                            "action": "[run](javascript:alert(6))",
                            "target": "` <img src=x> `",
                            "status": "proposed",
                        }
                    ],
                },
                finished_at=utcnow(),
            )
        )
        await db.commit()
    report = await report_of(
        database,
        alert_ids=(alert.id,),
        case_ids=(case_.id,),
        investigation_ids=("INV-2026-00009",),
    )
    md, page = report.markdown, report.html

    kinds = {token.type for token in tokens(md)}
    assert not kinds & {"image", "link_open", "html_inline", "html_block", "fence"}
    assert "![x](" not in md
    assert "](javascript:" not in md
    assert "\u202e" not in md
    assert "\n# not a heading" not in md
    assert md.count("\n# ") == 0
    assert md.startswith("# Incident report\\: ")
    assert "\\<script\\>alert\\(1\\)\\<\\/script\\>" in md  # escaped, not removed

    found = tags_of(page)
    allowed = HTML_TAGS | {"html", "head", "meta", "title", "style", "body", "main", "footer"}
    assert {tag for tag, _ in found} <= allowed
    assert not any(tag in {"script", "img", "svg", "iframe"} for tag, _ in found)
    assert not any(
        (value or "").strip().lower().startswith("javascript:")
        for _, attrs in found
        for value in attrs.values()
    )
    assert not [attrs for tag, attrs in found if tag == "a"]  # no link at all
    assert not any(name.startswith("on") for _, attrs in found for name in attrs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    assert "<title>&lt;script&gt;" not in page  # the default title names ids, not text
    assert "confidence n/a" in md  # a confidence that is not a number is not shown


async def test_sections_are_capped_and_the_report_stays_small(
    database: Database, incident: Incident
) -> None:
    huge = '"&<>' * 5_000  # the characters HTML escaping grows most
    async with database.session() as db:
        db.add_all(
            [
                CaseEvent(
                    case_id=incident.case_id,
                    actor="ana",
                    action="comment.added",
                    changes={"note": huge},
                    created_at=incident.started + timedelta(minutes=1, seconds=n),
                )
                for n in range(300)
            ]
            + [
                Approval(
                    id=f"{incident.investigation_id}/B{n}",
                    investigation_id=incident.investigation_id,
                    action="block_url",
                    target=huge[:512],
                    request={},
                    status="denied",
                    requested_at=incident.started + timedelta(minutes=2),
                    expires_at=incident.started + timedelta(minutes=20),
                    decided_by="bob",
                    decided_at=incident.started + timedelta(minutes=3),
                    comment=huge[:2000],
                )
                for n in range(150)
            ]
            + [
                CaseObservable(
                    case_id=incident.case_id,
                    type="filename",
                    value=f"dropper-{n}-{huge[:1500]}",
                    tags=[],
                    created_by="ana",
                )
                for n in range(300)
            ]
        )
        alerts = [
            Alert(
                id=f"ALRT-2026-{900 + n:05d}",
                title=huge[:500],
                description=huge,
                severity="high",
                status="new",
                source="edr",
                tags=[],
                entities=[{"type": "url", "value": f"https://x{n}.example/{huge[:1000]}"}],
                fingerprint="f" * 64,
                first_seen=incident.started,
                last_seen=incident.started,
                created_by="detections",
            )
            for n in range(17)
        ]
        db.add_all(alerts)
        run = await db.get(Investigation, incident.investigation_id)
        assert run is not None
        big = dict(run.receipt or {})
        big["findings"] = [
            {"agent": f"agent-{n}", "summary": huge, "severity": "high", "confidence": 0.5}
            for n in range(100)
        ]
        big["iocs"] = [{"type": "domain", "value": f"d{n}.{huge[:3000]}"} for n in range(500)]
        run.receipt = big
        await db.commit()
    report = await report_of(
        database,
        alert_ids=tuple(a.id for a in alerts),
        case_ids=(incident.case_id,),
        investigation_ids=(incident.investigation_id,),
    )
    md = report.markdown
    timeline = [line for line in section(md, "Timeline").splitlines() if line.startswith("- ")]
    assert len(timeline) == MAX_TIMELINE
    assert re.search(r"\*\d+ more timeline entries not shown", md)
    indicators = [line for line in section(md, "Indicators").splitlines() if line.startswith("- ")]
    assert len(indicators) == MAX_INDICATORS
    assert "more indicators not shown" in md
    assert "more findings not shown" in section(md, "Findings")
    actions = section(md, "Actions and approvals").splitlines()
    assert len([line for line in actions if line.startswith("- ")]) == MAX_ACTIONS
    assert "*52 more actions not shown (a report shows at most 100).*" in actions
    assert len(md.encode()) < 1_000_000
    assert len(report.html.encode()) < 1_000_000
    assert report.sha256 == hashlib.sha256(md.encode()).hexdigest()
