"""Cases on SQLite and PostgreSQL: CRUD, workflow, observables, comments, tasks, the audit
timeline, soft deletion and optimistic versioning."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db.base import Base
from core.security.permissions import Role
from gateway.cases.models import Case, CaseComment, CaseEvent, CaseObservable, CaseTask
from gateway.keys import BUS, DATABASE
from tests.conftest import Gateway

API = "/api/v1/cases"
RANSOM = {
    "title": "Ransomware on FIN-WS-042",
    "description": "LockBit note found on **finance** workstation.",
    "severity": "critical",
    "tlp": "amber+strict",
    "pap": "PAP:RED",
    "tags": ["Ransomware", "finance"],
    "assignee": "ana",
}


@pytest.fixture
async def analyst(gateway: Gateway) -> dict[str, str]:
    return await gateway.user(Role.ANALYST, "ana")


async def count(gateway: Gateway, table: type[Base]) -> int:
    async with gateway.app[DATABASE].session() as db:
        return int((await db.execute(select(func.count()).select_from(table))).scalar_one())


async def call(
    gateway: Gateway, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    response = await gateway.client.request(method, path, json=body, headers=headers)
    if response.status == 204:
        return 204, None
    return response.status, await response.json()


async def new_case(gateway: Gateway, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    status, body = await call(gateway, "POST", API, headers, {**RANSOM, **fields})
    assert status == 201, body
    return dict(body)


async def test_create_read_and_list(gateway: Gateway, analyst: dict[str, str]) -> None:
    created = gateway.app[BUS].subscribe("cases.*", maxsize=16)
    case = await new_case(gateway, analyst)
    assert re.fullmatch(rf"CASE-{datetime.now(UTC).year}-00001", case["id"])
    assert (case["status"], case["severity"], case["tlp"], case["pap"]) == (
        "open",
        "critical",
        "TLP:AMBER+STRICT",
        "PAP:RED",
    )
    assert case["tags"] == ["finance", "ransomware"]
    assert (case["created_by"], case["assignee"], case["version"]) == ("ana", "ana", 1)
    event = await asyncio.wait_for(created.get(), 5)
    assert (event.topic, event.payload["id"]) == ("cases.created", case["id"])

    status, detail = await call(gateway, "GET", f"{API}/{case['id']}", analyst)
    assert status == 200
    assert {k: v for k, v in detail.items() if k not in {"timeline", "alerts"}} == case
    assert detail["alerts"] == []
    assert [(e["action"], e["actor"]) for e in detail["timeline"]] == [("case.created", "ana")]
    assert detail["timeline"][0]["changes"]["title"] == RANSOM["title"]

    second = await new_case(gateway, analyst, title="Phish", severity="low", tags=["phishing"])
    assert second["id"].endswith("-00002")
    assert second["tlp"] == "TLP:AMBER+STRICT"
    viewer = await gateway.user(Role.VIEWER)
    status, page = await call(gateway, "GET", f"{API}?sort=-severity", viewer)
    assert status == 200
    assert ([c["id"] for c in page["items"]], page["total"]) == ([case["id"], second["id"]], 2)
    status, reply = await call(gateway, "POST", API, viewer, RANSOM)
    assert (status, reply["error"]["code"]) == (403, "AURORA-4030")


async def test_filters_sort_and_pages(gateway: Gateway, analyst: dict[str, str]) -> None:
    for title, severity, tags, assignee in (
        ("Beacon", "critical", ["c2"], "bob"),
        ("Mimikatz", "high", ["creds", "c2"], "ana"),
        ("Port scan", "low", ["scan"], None),
        ("DNS tunnel", "medium", ["dns"], None),
    ):
        await new_case(
            gateway, analyst, title=title, severity=severity, tags=tags, assignee=assignee
        )
    first = (await call(gateway, "GET", f"{API}?sort=title", analyst))[1]["items"][0]
    await call(gateway, "PATCH", f"{API}/{first['id']}", analyst, {"status": "in_progress"})

    async def titles(query: str) -> tuple[list[str], int]:
        status, page = await call(gateway, "GET", f"{API}?{query}", analyst)
        assert status == 200, page
        return [c["title"] for c in page["items"]], page["total"]

    assert await titles("tag=c2&sort=title") == (["Beacon", "Mimikatz"], 2)
    assert await titles("assignee=ana") == (["Mimikatz"], 1)
    assert await titles("severity=low") == (["Port scan"], 1)
    assert await titles("status=in_progress") == (["Beacon"], 1)
    assert await titles("status=open&sort=title") == (["DNS tunnel", "Mimikatz", "Port scan"], 3)
    assert await titles("sort=-severity&limit=2&offset=1") == (["Mimikatz", "DNS tunnel"], 4)
    for bad in ("sort=password", "limit=0", "status=new", "tag=%22x", "severity=huge", "x=1"):
        status, reply = await call(gateway, "GET", f"{API}?{bad}", analyst)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), bad


async def test_bad_case_input_changes_nothing(gateway: Gateway, analyst: dict[str, str]) -> None:
    for body, loc in (
        ({**RANSOM, "severity": "apocalyptic"}, ["body", "severity"]),
        ({**RANSOM, "tlp": "TLP:WHITE"}, ["body", "tlp"]),
        ({**RANSOM, "pap": "PAP:AMBER+STRICT"}, ["body", "pap"]),
        ({**RANSOM, "tags": ['bad"tag']}, ["body", "tags"]),
        ({**RANSOM, "title": ""}, ["body", "title"]),
        ({**RANSOM, "status": "closed"}, ["body", "status"]),
    ):
        status, reply = await call(gateway, "POST", API, analyst, body)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), body
        assert loc in [d["loc"] for d in reply["error"]["detail"]], reply
    assert (await count(gateway, Case), await count(gateway, CaseEvent)) == (0, 0)


async def test_workflow_updates_and_timeline(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}"
    status, working = await call(
        gateway, "PATCH", url, analyst, {"status": "in_progress", "severity": "high", "tlp": "red"}
    )
    assert status == 200, working
    assert (working["status"], working["severity"], working["tlp"]) == (
        "in_progress",
        "high",
        "TLP:RED",
    )
    status, done = await call(gateway, "PATCH", url, analyst, {"status": "resolved"})
    assert (done["status"], done["closed_at"] is not None) == ("resolved", True)
    status, reply = await call(gateway, "PATCH", url, analyst, {"status": "open"})
    assert (status, reply["error"]["code"]) == (422, "AURORA-4220")
    assert "resolved to open" in reply["error"]["detail"][0]["msg"]
    status, closed = await call(gateway, "PATCH", url, analyst, {"status": "closed"})
    assert closed["status"] == "closed"
    status, reopened = await call(gateway, "PATCH", url, analyst, {"status": "in_progress"})
    assert (reopened["status"], reopened["closed_at"]) == ("in_progress", None)
    unchanged = reopened["version"]
    status, same = await call(gateway, "PATCH", url, analyst, {"severity": "high"})
    assert (status, same["version"]) == (200, unchanged)  # no change, no new version

    _, detail = await call(gateway, "GET", url, analyst)
    timeline = detail["timeline"]
    assert [e["action"] for e in timeline] == ["case.updated"] * 4 + ["case.created"]
    assert timeline[-2]["changes"] == {
        "status": {"old": "open", "new": "in_progress"},
        "severity": {"old": "critical", "new": "high"},
        "tlp": {"old": "TLP:AMBER+STRICT", "new": "TLP:RED"},
    }
    assert timeline[0]["changes"] == {"status": {"old": "closed", "new": "in_progress"}}
    assert all(e["actor"] == "ana" for e in timeline)
    assert await count(gateway, CaseEvent) == 5  # the refused transition wrote nothing


async def test_optimistic_versioning(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}"
    status, first = await call(gateway, "PATCH", url, analyst, {"title": "A", "version": 1})
    assert (status, first["version"]) == (200, 2)
    status, stale = await call(gateway, "PATCH", url, analyst, {"title": "B", "version": 1})
    assert (status, stale["error"]["code"]) == (409, "AURORA-4090")
    assert stale["error"]["detail"]["current_version"] == 2
    _, final = await call(gateway, "GET", url, analyst)
    assert final["title"] == "A"
    assert len(final["timeline"]) == 2


async def test_concurrent_patches_one_wins(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}"
    results = await asyncio.gather(
        *(
            call(gateway, "PATCH", url, analyst, {"title": f"title {n}", "version": 1})
            for n in range(5)
        )
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409, 409, 409, 409], results
    assert {r["error"]["code"] for s, r in results if s == 409} == {"AURORA-4090"}
    winner = next(r for s, r in results if s == 200)
    _, final = await call(gateway, "GET", url, analyst)
    assert (final["title"], final["version"]) == (winner["title"], 2)
    assert [e["action"] for e in final["timeline"]] == ["case.updated", "case.created"]


async def test_soft_delete(gateway: Gateway, analyst: dict[str, str]) -> None:
    keep = await new_case(gateway, analyst, title="Keep")
    gone = await new_case(gateway, analyst, title="Gone")
    url = f"{API}/{gone['id']}"
    assert (await call(gateway, "DELETE", url, analyst))[0] == 204
    for method, path, body in (
        ("GET", url, None),
        ("PATCH", url, {"title": "x"}),
        ("DELETE", url, None),
        ("GET", f"{url}/observables", None),
        ("POST", f"{url}/comments", {"body": "late"}),
        ("POST", f"{url}/tasks", {"title": "late"}),
    ):
        status, reply = await call(gateway, method, path, analyst, body)
        assert (status, reply["error"]["code"]) == (404, "AURORA-4041"), (method, path)
    _, page = await call(gateway, "GET", API, analyst)
    assert ([c["id"] for c in page["items"]], page["total"]) == ([keep["id"]], 1)
    async with gateway.app[DATABASE].session() as db:
        stored = await db.get(Case, gone["id"])
        assert stored is not None
        assert (stored.deleted_by, stored.deleted_at is not None) == ("ana", True)
        actions = (
            await db.execute(
                select(CaseEvent.action, CaseEvent.actor)
                .where(CaseEvent.case_id == gone["id"])
                .order_by(CaseEvent.id)
            )
        ).all()
    assert [tuple(a) for a in actions] == [("case.created", "ana"), ("case.deleted", "ana")]
    assert await count(gateway, CaseComment) == 0


async def test_unknown_ids(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    missing = f"{API}/CASE-1999-99999"
    for method, path in (
        ("GET", missing),
        ("PATCH", missing),
        ("DELETE", missing),
        ("GET", f"{missing}/observables"),
        ("POST", f"{missing}/observables"),
        ("GET", f"{missing}/comments"),
        ("POST", f"{missing}/comments"),
        ("GET", f"{missing}/tasks"),
        ("POST", f"{missing}/tasks"),
        ("PATCH", f"{missing}/tasks/nope"),
    ):
        body = None
        if method != "GET":
            body = {"type": "ip", "value": "1.2.3.4"} if path.endswith("observables") else {}
            body = {"body": "x"} if path.endswith("comments") else body
            body = {"title": "x"} if path.endswith("tasks") else body
        status, reply = await call(gateway, method, path, analyst, body)
        assert (status, reply["error"]["code"]) == (404, "AURORA-4041"), (method, path)
    status, reply = await call(
        gateway, "PATCH", f"{API}/{case['id']}/tasks/nope", analyst, {"title": "x"}
    )
    assert (status, reply["error"]["code"]) == (404, "AURORA-4040")


OBSERVABLES = [
    ({"type": "ip", "value": "45.33.32[.]156"}, ("ip", "ipv4", "45.33.32.156")),
    ({"type": "ipv6", "value": "2001:DB8::0:1"}, ("ip", "ipv6", "2001:db8::1")),
    ({"type": "domain", "value": "Evil-Corp[.]COM."}, ("domain", None, "evil-corp.com")),
    (
        {"type": "url", "value": "hxxps://Login.Evil-Corp[.]com/Auth?Token=AbC"},
        ("url", None, "https://login.evil-corp.com/Auth?Token=AbC"),
    ),
    ({"type": "email", "value": "Bob[@]Corp.COM"}, ("email", None, "bob@corp.com")),
    (
        {"type": "md5", "value": "D41D8CD98F00B204E9800998ECF8427E"},
        ("hash", "md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ),
    (
        {"type": "sha1", "value": "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        ("hash", "sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ),
    (
        {
            "type": "hash",
            "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        },
        ("hash", "sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ),
    ({"type": "cve", "value": "cve-2021-44228"}, ("cve", None, "CVE-2021-44228")),
    (
        {
            "type": "registry_key",
            "value": "hklm\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
        },
        ("registry_key", None, "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"),
    ),
    ({"type": "user", "value": "CORP\\Alice"}, ("user", None, "corp\\alice")),
    (
        {"type": "host", "value": "FIN-WS-042.corp.example"},
        ("host", None, "fin-ws-042.corp.example"),
    ),
    ({"type": "filename", "value": "Invoice.PDF.exe"}, ("filename", None, "Invoice.PDF.exe")),
    ({"type": "hostname", "value": "FIN-WS-042"}, ("host", None, "fin-ws-042")),
    ({"type": "domain-name", "value": "Example.ORG"}, ("domain", None, "example.org")),
    ({"type": "ipv4-addr", "value": "10.0.0.1"}, ("ip", "ipv4", "10.0.0.1")),
    ({"type": "asn", "value": "as13335"}, ("asn", None, "AS13335")),
    ({"type": "mac", "value": "00-1A-2B-3C-4D-5E"}, ("mac", None, "00:1a:2b:3c:4d:5e")),
    ({"type": "attack_technique", "value": "t1059.001"}, ("attack_technique", None, "T1059.001")),
    (
        {"type": "user_agent", "value": " Mozilla/5.0 (X11) "},
        ("user_agent", None, "Mozilla/5.0 (X11)"),
    ),
    (
        {"type": "process", "value": "C:\\Windows\\System32\\RunDLL32.exe"},
        ("process", None, "C:\\Windows\\System32\\RunDLL32.exe"),
    ),
]


async def test_observables_are_normalised(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}/observables"
    for body, (kind, subtype, value) in OBSERVABLES:
        status, reply = await call(gateway, "POST", url, analyst, {**body, "ioc": True})
        assert status == 201, (body, reply)
        assert (reply["type"], reply["subtype"], reply["value"]) == (kind, subtype, value)
        assert (reply["ioc"], reply["sighted"], reply["similar_cases"]) == (True, False, [])
    status, page = await call(gateway, "GET", f"{url}?limit=3&offset=2", analyst)
    assert (status, page["total"]) == (200, len(OBSERVABLES))
    assert [o["value"] for o in page["items"]] == [v for _, (_, _, v) in OBSERVABLES[2:5]]
    _, detail = await call(gateway, "GET", f"{API}/{case['id']}", analyst)
    added = [e for e in detail["timeline"] if e["action"] == "observable.added"]
    assert len(added) == len(OBSERVABLES)
    assert added[-1]["changes"] == {
        "type": "ip",
        "value": "45.33.32.156",
        "ioc": True,
        "sighted": False,
    }


BAD_OBSERVABLES = [
    ({"type": "ip", "value": "999.1.1.1"}, "value"),
    ({"type": "ipv4", "value": "2001:db8::1"}, "value"),
    ({"type": "domain", "value": "localhost"}, "value"),
    ({"type": "domain", "value": "evil.notatld"}, "value"),
    ({"type": "url", "value": "https:///nohost"}, "value"),
    ({"type": "email", "value": "no-at-sign.example"}, "value"),
    (
        {
            "type": "md5",
            "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        },
        "value",
    ),
    ({"type": "sha256", "value": "xyz"}, "value"),
    ({"type": "hash", "value": "g" * 32}, "value"),
    ({"type": "cve", "value": "CVE-1990-0001"}, "value"),
    ({"type": "registry_key", "value": "Software\\NoHive"}, "value"),
    ({"type": "attack_technique", "value": "T12"}, "value"),
    ({"type": "user", "value": "alice smith"}, "value"),
    ({"type": "host", "value": "bad host!"}, "value"),
    ({"type": "filename", "value": "dir/evil.exe"}, "value"),
    ({"type": "asn", "value": "AS99999999999"}, "value"),
    ({"type": "mac", "value": "00:11:22:33:44"}, "value"),
    ({"type": "user_agent", "value": "bad\x00agent"}, "value"),
    ({"type": "Bad Type!", "value": "x"}, "type"),
    ({"type": "ip", "value": "   "}, "value"),
    ({"type": "domain-name", "value": "not a domain"}, "value"),
    ({"type": "sha1", "value": "d41d8cd98f00b204e9800998ecf8427e"}, "value"),
    ({"type": "ip", "value": "1.2.3.4", "flag": True}, "flag"),
]


async def test_bad_observables_change_nothing(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}/observables"
    for body, field in BAD_OBSERVABLES:
        status, reply = await call(gateway, "POST", url, analyst, body)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), body
        assert ["body", field] in [d["loc"] for d in reply["error"]["detail"]], reply
    assert (await count(gateway, CaseObservable), await count(gateway, CaseEvent)) == (0, 1)


async def test_duplicate_observables(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}/observables"
    _, first = await call(gateway, "POST", url, analyst, {"type": "domain", "value": "evil.com"})
    again = {"type": "domain", "value": "EVIL[.]com", "sighted": True, "tags": ["c2"]}
    status, reply = await call(gateway, "POST", url, analyst, again)
    assert (status, reply["error"]["code"]) == (409, "AURORA-4090")
    assert reply["error"]["detail"]["existing_observable_id"] == first["id"]
    status, merged = await call(gateway, "POST", url, analyst, {**again, "on_duplicate": "merge"})
    assert status == 200
    assert (merged["id"], merged["sighted"], merged["ioc"], merged["tags"]) == (
        first["id"],
        True,
        False,
        ["c2"],
    )
    assert await count(gateway, CaseObservable) == 1
    _, detail = await call(gateway, "GET", f"{API}/{case['id']}", analyst)
    assert detail["timeline"][0]["action"] == "observable.merged"
    assert detail["timeline"][0]["changes"] == {
        "sighted": {"old": False, "new": True},
        "tags": {"old": [], "new": ["c2"]},
    }
    results = await asyncio.gather(
        *(call(gateway, "POST", url, analyst, {"type": "ip", "value": "8.8.8.8"}) for _ in range(4))
    )
    assert sorted(s for s, _ in results) == [201, 409, 409, 409]
    assert await count(gateway, CaseObservable) == 2


async def test_similar_cases(gateway: Gateway, analyst: dict[str, str]) -> None:
    one = await new_case(gateway, analyst, title="One")
    two = await new_case(gateway, analyst, title="Two")
    three = await new_case(gateway, analyst, title="Three")
    shared = {"type": "ip", "value": "45.33.32.156"}
    for case in (one, two, three):
        status, _ = await call(gateway, "POST", f"{API}/{case['id']}/observables", analyst, shared)
        assert status == 201
    await call(
        gateway,
        "POST",
        f"{API}/{one['id']}/observables",
        analyst,
        {"type": "ip", "value": "1.1.1.1"},
    )
    # the same value under another type is another observable
    await call(
        gateway,
        "POST",
        f"{API}/{two['id']}/observables",
        analyst,
        {"type": "host", "value": "1.1.1.1"},
    )
    _, page = await call(gateway, "GET", f"{API}/{one['id']}/observables", analyst)
    similar = {o["value"]: o["similar_cases"] for o in page["items"]}
    assert similar == {
        "45.33.32.156": [{"id": two["id"], "title": "Two"}, {"id": three["id"], "title": "Three"}],
        "1.1.1.1": [],
    }
    await call(gateway, "DELETE", f"{API}/{three['id']}", analyst)
    _, page = await call(gateway, "GET", f"{API}/{one['id']}/observables", analyst)
    assert page["items"][0]["similar_cases"] == [{"id": two["id"], "title": "Two"}]


async def test_comments(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}/comments"
    bob = await gateway.user(Role.ANALYST, "bob")
    for headers, text in ((analyst, "First look: **LockBit 3.0**"), (bob, "Isolated the host.")):
        status, comment = await call(gateway, "POST", url, headers, {"body": text})
        assert status == 201, comment
        assert comment["body"] == text
    status, page = await call(gateway, "GET", url, analyst)
    assert [(c["author"], c["body"]) for c in page["items"]] == [
        ("ana", "First look: **LockBit 3.0**"),
        ("bob", "Isolated the host."),
    ]
    for body in ({"body": ""}, {"body": "  \n "}, {"body": "x" * 50_001}, {}):
        status, reply = await call(gateway, "POST", url, analyst, body)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), body
    assert await count(gateway, CaseComment) == 2
    _, detail = await call(gateway, "GET", f"{API}/{case['id']}", analyst)
    assert [(e["action"], e["actor"]) for e in detail["timeline"][:2]] == [
        ("comment.added", "bob"),
        ("comment.added", "ana"),
    ]


async def test_tasks(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    url = f"{API}/{case['id']}/tasks"
    due = "2026-12-01T12:00:00Z"
    status, task = await call(
        gateway,
        "POST",
        url,
        analyst,
        {"title": "Collect memory", "assignee": "bob", "due_date": due},
    )
    assert status == 201, task
    assert (task["status"], task["assignee"], task["version"]) == ("todo", "bob", 1)
    assert task["due_date"].startswith("2026-12-01T12:00:00")
    turl = f"{url}/{task['id']}"
    status, working = await call(
        gateway, "PATCH", turl, analyst, {"status": "in_progress", "version": 1}
    )
    assert (status, working["status"], working["version"]) == (200, "in_progress", 2)
    status, stale = await call(gateway, "PATCH", turl, analyst, {"status": "done", "version": 1})
    assert (status, stale["error"]["code"]) == (409, "AURORA-4090")
    status, done = await call(gateway, "PATCH", turl, analyst, {"status": "done"})
    assert done["status"] == "done"
    status, bad = await call(gateway, "PATCH", turl, analyst, {"status": "cancelled"})
    assert (status, bad["error"]["code"]) == (422, "AURORA-4220")
    for body in ({"title": ""}, {"due_date": "2026-12-01T12:00:00"}, {"owner": "x"}):
        status, reply = await call(gateway, "POST", url, analyst, body)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), body
    assert await count(gateway, CaseTask) == 1
    # a task is reached through its own case only
    other = await new_case(gateway, analyst, title="Other")
    status, reply = await call(
        gateway, "PATCH", f"{API}/{other['id']}/tasks/{task['id']}", analyst, {"title": "x"}
    )
    assert (status, reply["error"]["code"]) == (404, "AURORA-4040")
    _, page = await call(gateway, "GET", url, analyst)
    assert [(t["title"], t["status"]) for t in page["items"]] == [("Collect memory", "done")]
    _, detail = await call(gateway, "GET", f"{API}/{case['id']}", analyst)
    assert [e["action"] for e in detail["timeline"]] == [
        "task.updated",
        "task.updated",
        "task.created",
        "case.created",
    ]
    assert detail["timeline"][0]["changes"] == {"status": {"old": "in_progress", "new": "done"}}
    assert detail["timeline"][0]["target_id"] == task["id"]


async def test_timeline_is_bounded_newest_first(gateway: Gateway, analyst: dict[str, str]) -> None:
    case = await new_case(gateway, analyst)
    async with gateway.app[DATABASE].session() as db:
        db.add_all(
            CaseEvent(case_id=case["id"], actor="bot", action="comment.added", changes={"n": n})
            for n in range(250)
        )
        await db.commit()
    updates = gateway.app[BUS].subscribe("cases.updated", maxsize=4)
    status, patched = await call(gateway, "PATCH", f"{API}/{case['id']}", analyst, {"tags": []})
    assert (status, patched["version"]) == (200, 2)
    event = await asyncio.wait_for(updates.get(), 5)
    assert (event.payload["id"], event.payload["tags"]) == (case["id"], [])
    _, detail = await call(gateway, "GET", f"{API}/{case['id']}", analyst)
    timeline = detail["timeline"]
    assert len(timeline) == 200
    assert timeline[0]["changes"] == {"tags": {"old": ["finance", "ransomware"], "new": []}}
    assert [e["changes"]["n"] for e in timeline[1:4]] == [249, 248, 247]
    ids = [e["id"] for e in timeline]
    assert ids == sorted(ids, reverse=True)
    for path in ("observables", "comments", "tasks"):
        status, reply = await call(gateway, "GET", f"{API}/{case['id']}/{path}?limit=0", analyst)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), path
