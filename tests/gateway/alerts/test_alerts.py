"""Alerts on SQLite and PostgreSQL: dedup, filters, workflow, concurrency, the live stream."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sql_events
from sqlalchemy import func, select

from core.errors import DuplicateAlert
from core.security.permissions import Role
from gateway.alerts.api import stage_alerts
from gateway.alerts.models import Alert
from gateway.alerts.schemas import AlertCreate
from gateway.keys import BUS, DATABASE
from tests.conftest import Gateway

PHISH = {
    "title": "Phishing link clicked",
    "source": "proofpoint",
    "rule_id": "PP-CLICK-001",
    "severity": "high",
    "tags": ["Phishing", "email"],
    "entities": [
        {"type": "url", "value": "hxxps://login-micr0soft[.]com/auth"},
        {"type": "ip", "value": "45.33.32.156"},
        {"type": "user", "value": "Alice@Corp.example"},
    ],
    "raw": {"message_id": "<abc@mail>", "recipient": "alice@corp.example"},
}


@pytest.fixture
async def analyst(gateway: Gateway) -> dict[str, str]:
    return await gateway.user(Role.ANALYST, "ana")


async def count(gateway: Gateway) -> int:
    async with gateway.app[DATABASE].session() as db:
        return int((await db.execute(select(func.count()).select_from(Alert))).scalar_one())


async def post(gateway: Gateway, headers: dict[str, str], body: dict[str, Any]) -> Any:
    response = await gateway.client.post("/api/v1/alerts", json=body, headers=headers)
    return response.status, await response.json()


async def test_create_normalises_and_numbers(gateway: Gateway, analyst: dict[str, str]) -> None:
    status, alert = await post(gateway, analyst, PHISH)
    assert status == 201, alert
    assert re.fullmatch(rf"ALRT-{datetime.now(UTC).year}-00001", alert["id"])
    assert (alert["status"], alert["severity"], alert["occurrences"]) == ("new", "high", 1)
    assert alert["tags"] == ["email", "phishing"]
    assert alert["entities"] == [
        {"type": "url", "value": "https://login-micr0soft.com/auth"},
        {"type": "ip", "value": "45.33.32.156", "subtype": "ipv4"},
        {"type": "user", "value": "alice@corp.example"},
    ]
    assert alert["created_by"] == "ana"
    second = await post(gateway, analyst, {**PHISH, "rule_id": "PP-CLICK-002"})
    assert second[1]["id"].endswith("-00002")
    fetched = await (
        await gateway.client.get(f"/api/v1/alerts/{alert['id']}", headers=analyst)
    ).json()
    assert fetched == alert


async def test_duplicates_are_refused_or_merged(gateway: Gateway, analyst: dict[str, str]) -> None:
    _, first = await post(gateway, analyst, PHISH)
    # the same thing, entities reordered and written differently
    again = {
        **PHISH,
        "entities": [
            {"type": "user", "value": "alice@corp.example"},
            {"type": "ip", "value": "45.33.32[.]156"},
            {"type": "url", "value": "https://login-micr0soft.com/auth"},
        ],
    }
    status, body = await post(gateway, analyst, again)
    assert (status, body["error"]["code"]) == (409, "AURORA-4091")
    assert body["error"]["detail"]["existing_alert_id"] == first["id"]
    assert await count(gateway) == 1

    later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    status, merged = await post(
        gateway, analyst, {**again, "on_duplicate": "merge", "observed_at": later}
    )
    assert status == 200
    assert merged["id"] == first["id"]
    assert merged["occurrences"] == 2
    assert merged["last_seen"] > first["last_seen"]
    assert await count(gateway) == 1


async def test_closed_alerts_and_the_window(
    gateway: Gateway, analyst: dict[str, str], admin: dict[str, str]
) -> None:
    _, first = await post(gateway, analyst, PHISH)
    closed = await gateway.client.patch(
        f"/api/v1/alerts/{first['id']}", headers=analyst, json={"status": "false_positive"}
    )
    assert closed.status == 200
    status, fresh = await post(gateway, analyst, PHISH)
    assert status == 201  # a closed alert does not swallow a new occurrence
    assert fresh["id"] != first["id"]
    off = await gateway.client.patch(
        "/api/v1/settings/runtime", headers=admin, json={"alert_dedup_window_seconds": 0}
    )
    assert off.status == 200
    status, _ = await post(gateway, analyst, PHISH)
    assert status == 201
    assert await count(gateway) == 3


async def test_bad_input_changes_nothing(gateway: Gateway, analyst: dict[str, str]) -> None:
    cases = [
        (
            {**PHISH, "entities": [{"type": "ip", "value": "999.1.1.1"}]},
            ["body", "entities", 0, "value"],
        ),
        ({**PHISH, "severity": "apocalyptic"}, ["body", "severity"]),
        ({**PHISH, "tags": ['bad"tag']}, ["body", "tags"]),
        ({**PHISH, "source": ""}, ["body", "source"]),
        ({k: v for k, v in PHISH.items() if k != "title"}, ["body", "title"]),
        ({**PHISH, "unexpected": 1}, ["body", "unexpected"]),
    ]
    for body, loc in cases:
        status, reply = await post(gateway, analyst, body)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), body
        assert loc in [d["loc"] for d in reply["error"]["detail"]], reply
    assert await count(gateway) == 0
    viewer = await gateway.user(Role.VIEWER)
    status, reply = await post(gateway, viewer, PHISH)
    assert (status, reply["error"]["code"]) == (403, "AURORA-4030")


async def test_filters_sort_and_pages(gateway: Gateway, analyst: dict[str, str]) -> None:
    specs = [
        ("Port scan", "suricata", "low", ["scan"], None),
        ("Beacon", "zeek", "critical", ["c2"], "bob"),
        ("Mimikatz", "sysmon", "high", ["creds", "c2"], "ana"),
        ("DNS tunnel", "zeek", "medium", ["dns", "ex-fil"], None),
    ]
    for title, source, severity, tags, assignee in specs:
        status, _ = await post(
            gateway,
            analyst,
            {
                "title": title,
                "source": source,
                "severity": severity,
                "tags": tags,
                "assignee": assignee,
            },
        )
        assert status == 201

    async def titles(query: str) -> tuple[list[str], int]:
        page = await (await gateway.client.get(f"/api/v1/alerts?{query}", headers=analyst)).json()
        return [a["title"] for a in page["items"]], page["total"]

    assert await titles("source=zeek&sort=title") == (["Beacon", "DNS tunnel"], 2)
    assert await titles("tag=c2&sort=title") == (["Beacon", "Mimikatz"], 2)
    # a tag is matched as written: '_' (or any LIKE wildcard) stands for no other character
    assert await titles("tag=ex-fil") == (["DNS tunnel"], 1)
    assert await titles("tag=ex_fil") == ([], 0)
    assert await titles("assignee=ana") == (["Mimikatz"], 1)
    assert await titles("sort=-severity") == (["Beacon", "Mimikatz", "DNS tunnel", "Port scan"], 4)
    assert await titles("severity=low") == (["Port scan"], 1)
    assert await titles("sort=-severity&limit=2&offset=1") == (["Mimikatz", "DNS tunnel"], 4)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert await titles(f"since={future}") == ([], 0)
    for bad in ("sort=password", "limit=0", "status=open", "tag=%22x"):
        response = await gateway.client.get(f"/api/v1/alerts?{bad}", headers=analyst)
        assert response.status == 422, bad


async def test_workflow_and_acknowledgement(gateway: Gateway, analyst: dict[str, str]) -> None:
    _, alert = await post(gateway, analyst, PHISH)
    url = f"/api/v1/alerts/{alert['id']}"
    invalid = await gateway.client.patch(url, headers=analyst, json={"status": "resolved"})
    body = await invalid.json()
    assert (invalid.status, body["error"]["code"]) == (422, "AURORA-4220")
    assert "new to resolved" in body["error"]["detail"][0]["msg"]

    acked = await (await gateway.client.post(f"{url}/acknowledge", headers=analyst)).json()
    assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "ana")
    assert acked["acknowledged_at"] is not None
    again = await (await gateway.client.post(f"{url}/acknowledge", headers=analyst)).json()
    assert again["acknowledged_at"] == acked["acknowledged_at"]

    working = await (
        await gateway.client.patch(
            url, headers=analyst, json={"status": "in_progress", "assignee": "ana"}
        )
    ).json()
    assert (working["status"], working["assignee"]) == ("in_progress", "ana")
    done = await (
        await gateway.client.patch(url, headers=analyst, json={"status": "resolved"})
    ).json()
    assert done["status"] == "resolved"
    assert done["closed_at"] is not None
    refused = await gateway.client.post(f"{url}/acknowledge", headers=analyst)
    assert refused.status == 422
    reopened = await (
        await gateway.client.patch(url, headers=analyst, json={"status": "in_progress"})
    ).json()
    assert (reopened["status"], reopened["closed_at"]) == ("in_progress", None)

    for method, path in (
        ("GET", "/api/v1/alerts/ALRT-1999-99999"),
        ("PATCH", "/api/v1/alerts/ALRT-1999-99999"),
        ("POST", "/api/v1/alerts/ALRT-1999-99999/acknowledge"),
    ):
        response = await gateway.client.request(
            method, path, headers=analyst, json={} if method != "GET" else None
        )
        reply = await response.json()
        assert (response.status, reply["error"]["code"]) == (404, "AURORA-4042"), path


async def test_optimistic_versioning(gateway: Gateway, analyst: dict[str, str]) -> None:
    _, alert = await post(gateway, analyst, PHISH)
    url = f"/api/v1/alerts/{alert['id']}"
    version = alert["version"]
    first = await gateway.client.patch(
        url, headers=analyst, json={"severity": "critical", "version": version}
    )
    assert first.status == 200
    assert (await first.json())["version"] == version + 1
    stale = await gateway.client.patch(
        url, headers=analyst, json={"severity": "low", "version": version}
    )
    body = await stale.json()
    assert (stale.status, body["error"]["code"]) == (409, "AURORA-4090")
    assert body["error"]["detail"]["current_version"] == version + 1
    final = await (await gateway.client.get(url, headers=analyst)).json()
    assert final["severity"] == "critical"


async def test_concurrent_duplicates_make_one_alert(
    gateway: Gateway, analyst: dict[str, str]
) -> None:
    results = await asyncio.gather(*(post(gateway, analyst, PHISH) for _ in range(6)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert await count(gateway) == 1


async def test_live_stream_with_filters(gateway: Gateway, analyst: dict[str, str]) -> None:
    token = analyst["Authorization"].removeprefix("Bearer ")
    async with gateway.client.ws_connect(
        f"/api/v1/ws/alerts?access_token={token}&severity=high"
    ) as ws:
        # The stream subscribes before it accepts the socket: nothing published from here is missed.
        _, low = await post(gateway, analyst, {"title": "noise", "source": "x", "severity": "low"})
        _, high = await post(gateway, analyst, PHISH)
        await gateway.client.post(f"/api/v1/alerts/{high['id']}/acknowledge", headers=analyst)
        created = await asyncio.wait_for(ws.receive_json(), 5)
        updated = await asyncio.wait_for(ws.receive_json(), 5)
    assert (created["type"], created["alert"]["id"]) == ("created", high["id"])
    assert (updated["type"], updated["alert"]["status"]) == ("updated", "acknowledged")
    assert low["id"] not in {created["alert"]["id"], updated["alert"]["id"]}


async def test_an_event_is_serialised_once_for_every_subscriber(
    gateway: Gateway, analyst: dict[str, str]
) -> None:
    delivered: list[Any] = []
    gateway.app[BUS].tap(delivered.append)
    async with (
        gateway.client.ws_connect("/api/v1/ws/alerts", headers=analyst) as first,
        gateway.client.ws_connect("/api/v1/ws/alerts", headers=analyst) as second,
    ):
        _, alert = await post(gateway, analyst, PHISH)
        texts = [await asyncio.wait_for(ws.receive_str(), 5) for ws in (first, second)]
    assert texts[0] == texts[1]
    assert json.loads(texts[0])["alert"]["id"] == alert["id"]
    [event] = [e for e in delivered if e.topic == "alerts.created"]
    assert list(event.encoded.values()) == [texts[0]]  # made once, sent twice


async def test_slow_stream_consumer_never_blocks_writers(
    gateway: Gateway, analyst: dict[str, str]
) -> None:
    async with gateway.client.ws_connect("/api/v1/ws/alerts", headers=analyst) as ws:
        # The stream subscribes before it accepts the socket: nothing published from here is missed.
        for n in range(700):  # the consumer reads nothing meanwhile; its queue holds 512
            gateway.app[BUS].publish("alerts.created", {"id": f"A-{n}", "severity": "low"})
        status, _ = await post(gateway, analyst, PHISH)  # writers still work at once
        assert status == 201
        first = await asyncio.wait_for(ws.receive_json(), 5)
    assert first["type"] == "gap"
    assert first["dropped"] >= 700 - 512


async def test_promote_to_a_case(gateway: Gateway, analyst: dict[str, str]) -> None:
    _, alert = await post(gateway, analyst, PHISH)
    response = await gateway.client.post(
        f"/api/v1/alerts/{alert['id']}/promote", headers=analyst, json={"tlp": "red"}
    )
    promoted = await response.json()
    assert response.status == 201, promoted
    case_id = promoted["case_id"]
    assert promoted["alert"]["case_id"] == case_id
    assert promoted["alert"]["status"] == "in_progress"
    assert promoted["observables_added"] == 3
    case = await (await gateway.client.get(f"/api/v1/cases/{case_id}", headers=analyst)).json()
    assert (case["title"], case["severity"], case["tlp"]) == (
        "Phishing link clicked",
        "high",
        "TLP:RED",
    )
    assert [a["id"] for a in case["alerts"]] == [alert["id"]]
    assert any(e["action"] == "alert.linked" for e in case["timeline"])
    observables = await (
        await gateway.client.get(f"/api/v1/cases/{case_id}/observables", headers=analyst)
    ).json()
    values = {(o["type"], o["value"]) for o in observables["items"]}
    assert ("ip", "45.33.32.156") in values
    assert ("url", "https://login-micr0soft.com/auth") in values

    again = await gateway.client.post(f"/api/v1/alerts/{alert['id']}/promote", headers=analyst)
    body = await again.json()
    assert (again.status, body["error"]["code"]) == (409, "AURORA-4090")
    assert body["error"]["detail"]["case_id"] == case_id
    missing = await gateway.client.post("/api/v1/alerts/ALRT-1999-00001/promote", headers=analyst)
    assert (await missing.json())["error"]["code"] == "AURORA-4042"
    _, fresh = await post(gateway, analyst, {**PHISH, "rule_id": "PP-CLICK-009"})
    bad = await gateway.client.post(
        f"/api/v1/alerts/{fresh['id']}/promote", headers=analyst, json={"tlp": "purple"}
    )
    assert bad.status == 422
    listed = await (await gateway.client.get("/api/v1/cases", headers=analyst)).json()
    assert listed["total"] == 1  # the refused promotion opened no case
    still = await (
        await gateway.client.get(f"/api/v1/alerts/{fresh['id']}", headers=analyst)
    ).json()
    assert (still["case_id"], still["status"]) == (None, "new")


async def test_link_to_an_existing_case(gateway: Gateway, analyst: dict[str, str]) -> None:
    created = await gateway.client.post(
        "/api/v1/cases", headers=analyst, json={"title": "Credential phishing campaign"}
    )
    case_id = (await created.json())["id"]
    _, first = await post(gateway, analyst, PHISH)
    _, second = await post(
        gateway, analyst, {**PHISH, "rule_id": "PP-CLICK-002", "entities": PHISH["entities"][:2]}
    )
    for alert in (first, second):
        response = await gateway.client.post(
            f"/api/v1/alerts/{alert['id']}/case-link", headers=analyst, json={"case_id": case_id}
        )
        linked = await response.json()
        assert response.status == 200, linked
        assert linked["alert"]["case_id"] == case_id
    assert linked["observables_added"] == 0  # the case already held those entities
    same = await gateway.client.post(
        f"/api/v1/alerts/{first['id']}/case-link", headers=analyst, json={"case_id": case_id}
    )
    assert same.status == 200
    case = await (await gateway.client.get(f"/api/v1/cases/{case_id}", headers=analyst)).json()
    assert [a["id"] for a in case["alerts"]] == [first["id"], second["id"]]
    unknown = await gateway.client.post(
        f"/api/v1/alerts/{first['id']}/case-link",
        headers=analyst,
        json={"case_id": "CASE-1999-00001"},
    )
    assert (await unknown.json())["error"]["code"] == "AURORA-4041"
    other = await (
        await gateway.client.post("/api/v1/cases", headers=analyst, json={"title": "Other"})
    ).json()
    moved = await gateway.client.post(
        f"/api/v1/alerts/{first['id']}/case-link", headers=analyst, json={"case_id": other["id"]}
    )
    assert (await moved.json())["error"]["code"] == "AURORA-4090"
    empty = await gateway.client.post(
        f"/api/v1/alerts/{first['id']}/case-link", headers=analyst, json={}
    )
    assert empty.status == 422


async def test_a_batch_of_alerts_is_staged_in_two_statements_and_merged_as_one_by_one(
    gateway: Gateway, analyst: dict[str, str]
) -> None:
    """``stage_alerts`` (a detection run's alerts): the ids taken together and the open
    duplicates read together, whatever the number of bodies; each body merges as it would
    alone, into an open alert or into one an earlier body of the batch raised."""
    _, existing = await post(gateway, analyst, PHISH)
    window = 86_400
    now = datetime.now(UTC)
    new = {"title": "Beacon", "source": "edr", "severity": "medium", "on_duplicate": "merge"}
    old = {**new, "title": "Old beacon", "observed_at": (now - timedelta(days=2)).isoformat()}
    bodies = [
        AlertCreate.model_validate(b)
        for b in ({**PHISH, "on_duplicate": "merge"}, new, new, old, old)
    ]
    database = gateway.app[DATABASE]
    statements: list[str] = []
    async with database.session() as db:
        mine = (await db.connection()).sync_connection

        def counted(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if conn is mine:  # not the gateway's own work meanwhile
                statements.append(statement)

        sql_events.listen(database.engine.sync_engine, "before_cursor_execute", counted)
        try:
            staged = await stage_alerts(
                db=db, actor="detections", bodies=bodies, dedup_window_seconds=window
            )
        finally:
            sql_events.remove(database.engine.sync_engine, "before_cursor_execute", counted)
        await db.commit()
    assert len(statements) == 2, statements  # the ids, the open duplicates
    assert [merged for _, merged in staged] == [True, False, True, False, False]
    assert staged[0][0].id == existing["id"]
    assert staged[1][0] is staged[2][0]  # the second "Beacon" merged into the first
    # Seen before the window, as alone: never found as an open duplicate, so two alerts.
    assert staged[3][0] is not staged[4][0]
    year = now.year
    # Ids are taken for every body, merged or not (gaps are allowed): 2 to 6 here.
    assert [staged[i][0].id for i in (1, 3, 4)] == [f"ALRT-{year}-{n:05d}" for n in (3, 5, 6)]
    async with database.session() as db:
        occurrences = dict((await db.execute(select(Alert.id, Alert.occurrences))).all())
    assert occurrences == {
        existing["id"]: 2,
        f"ALRT-{year}-00003": 2,
        f"ALRT-{year}-00005": 1,
        f"ALRT-{year}-00006": 1,
    }
    rejecting = AlertCreate.model_validate({**new, "title": "Once", "on_duplicate": "reject"})
    async with database.session() as db:
        with pytest.raises(DuplicateAlert):
            await stage_alerts(
                db=db, actor="a", bodies=[rejecting, rejecting], dedup_window_seconds=window
            )
