"""SIEM through the API: ingest (NDJSON, arrays, text, malformed lines), search, sources,
stats; detection rules end to end (preview, backfill without duplicates, suppressions,
feedback, metrics, the scheduler), hunts and promotion of an event to a rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.security.permissions import Role
from tests.conftest import Gateway, shared_data_dir
from tests.waiting import eventually

# Half past the previous hour: the events (a few minutes before it) never straddle an hour
# boundary, which the correlation test's one-hour windows would split.
NOW = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=30, second=0, microsecond=0)


def sysmon(
    minute: int, host: str, image: str, command: str, user: str = "CORP\\alice"
) -> dict[str, Any]:
    return {
        "EventID": 1,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": host,
        "TimeCreated": (NOW - timedelta(minutes=minute)).isoformat(),
        "Image": image,
        "CommandLine": command,
        "ParentImage": "C:\\Windows\\explorer.exe",
        "User": user,
        "ProcessId": 4000 + minute,
    }


PS = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
EVENTS = [
    sysmon(5, "ws-17", PS, "powershell.exe -nop -w hidden -enc SQBFAFgA"),
    sysmon(4, "ws-18", PS, "powershell.exe -enc SQBFAFgAIAAoAE4AZQB3AA=="),
    sysmon(3, "ws-17", "C:\\Windows\\System32\\cmd.exe", "cmd.exe /c whoami"),
    sysmon(2, "build-01", PS, "powershell.exe -enc ZQBjAGgAbwA=", user="CORP\\svc_build"),
]
RULE = """
title: Encoded PowerShell
id: 6b7c1e2a-1b2c-4d5e-8f90-123456789abc
status: test
description: PowerShell started with an encoded command.
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '\\\\powershell.exe'
    CommandLine|contains: ' -enc '
  condition: selection
level: high
tags:
  - attack.execution
  - attack.t1059.001
"""


def ndjson(events: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(e) for e in events).encode()


async def ingest(gateway: Gateway, headers: dict[str, str], body: bytes, **query: str) -> Any:
    response = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**headers, "Content-Type": "application/x-ndjson"},
        params=query,
        data=body,
    )
    return response.status, await response.json()


async def test_ingest_keeps_the_good_lines_and_says_why_others_failed(gateway: Gateway) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    body = ndjson(EVENTS[:2]) + b"\n{not json\n" + ndjson(EVENTS[2:]) + b"\n[1, 2]\n"
    status, result = await ingest(gateway, analyst, body, source="sysmon-lab")
    assert status == 200, result
    assert result["accepted"] == 4
    assert result["rejected"] == 2
    assert [r["line"] for r in result["rejections"]] == [3, 6]
    assert all(r["reason"] for r in result["rejections"])
    assert len(result["ids"]) == 4
    assert result["formats"] == {"windows": 4}
    # nothing valid: AURORA-4220 and nothing stored
    status, error = await ingest(gateway, analyst, b"{oops\n\n")
    assert status == 422
    assert error["error"]["code"] == "AURORA-4220"
    found = await (
        await gateway.client.get(
            "/api/v1/siem/logs",
            headers=analyst,
            params={"q": "process.name:powershell.exe AND host.name:ws-17", "sort": "timestamp"},
        )
    ).json()
    assert [i["process.command_line"] for i in found["items"]] == [EVENTS[0]["CommandLine"]]
    item = found["items"][0]
    assert item["source"] == "sysmon-lab"
    assert item["process.pid"] == 4005
    assert item["fields"]["Image"] == PS
    page = await (
        await gateway.client.get("/api/v1/siem/logs", headers=analyst, params={"limit": "3"})
    ).json()
    assert len(page["items"]) == 3
    rest = await (
        await gateway.client.get(
            "/api/v1/siem/logs",
            headers=analyst,
            params={"limit": "3", "cursor": page["next_cursor"]},
        )
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    for bad in (
        {"q": "process.name:"},
        {"cursor": "bm9wZQ"},
        {"limit": "0"},
        {"start": "yesterday"},
    ):
        response = await gateway.client.get("/api/v1/siem/logs", headers=analyst, params=bad)
        assert response.status == 422, bad
        assert (await response.json())["error"]["code"] == "AURORA-4220"
    sources = await (await gateway.client.get("/api/v1/siem/sources", headers=analyst)).json()
    assert [(s["source"], s["events"]) for s in sources["items"]] == [("sysmon-lab", 4)]
    stats = await (await gateway.client.get("/api/v1/siem/stats", headers=analyst)).json()
    assert stats["events_total"] == 4
    assert stats["by_source"] == [{"source": "sysmon-lab", "events": 4}]
    assert stats["storage"]["rows"] == 4


async def test_a_lone_surrogate_escape_costs_no_event(gateway: Gateway) -> None:
    """``\\udc80`` without its pair (an EVTX string can hold one) decodes to text that cannot
    be stored: it becomes U+FFFD, the event and the good ones beside it are stored."""
    analyst = await gateway.user(Role.ANALYST, "ana")
    body = (
        ndjson(EVENTS[:1]) + b'\n{"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", '
        b'"Computer": "ws-99", "CommandLine": "run \\udc80 me", "bad\\ud800key": "x"}\n'
    )
    status, result = await ingest(gateway, analyst, body, source="lab")
    assert status == 200, result
    assert result["accepted"] == 2
    assert result["rejected"] == 0
    found = await (
        await gateway.client.get("/api/v1/siem/logs", headers=analyst, params={"host": "ws-99"})
    ).json()
    (item,) = found["items"]
    assert item["process.command_line"] == "run \ufffd me"
    assert item["fields"]["bad\ufffdkey"] == "x"
    assert "\\udc80" in item["raw"]  # the original text, as sent


async def test_viewers_search_but_never_ingest(gateway: Gateway) -> None:
    viewer = await gateway.user(Role.VIEWER, "vic")
    status, error = await ingest(gateway, viewer, ndjson(EVENTS))
    assert (status, error["error"]["code"]) == (403, "AURORA-4030")
    response = await gateway.client.get("/api/v1/siem/logs", headers=viewer)
    assert response.status == 200
    assert (await response.json())["items"] == []


async def test_a_rule_from_preview_to_metrics(gateway: Gateway) -> None:
    hunter = await gateway.user(Role.HUNTER, "hana")
    await ingest(gateway, hunter, ndjson(EVENTS), source="sysmon")
    invalid = await gateway.client.post(
        "/api/v1/detections/rules", headers=hunter, json={"sigma": "title: x\ndetection: {}\n"}
    )
    assert invalid.status == 422
    assert (await invalid.json())["error"]["code"] == "AURORA-4222"
    created = await gateway.client.post(
        "/api/v1/detections/rules", headers=hunter, json={"sigma": RULE}
    )
    rule = await created.json()
    assert created.status == 201, rule
    assert rule["techniques"] == ["T1059.001"]
    assert (rule["enabled"], rule["severity"]) == (False, "high")
    window = {
        "start": (NOW - timedelta(hours=1)).isoformat(),
        "end": (NOW + timedelta(minutes=1)).isoformat(),
    }

    async def run(mode: str) -> dict[str, Any]:
        response = await gateway.client.post(
            f"/api/v1/detections/rules/{rule['id']}/run",
            headers=hunter,
            json={**window, "mode": mode},
        )
        body = await response.json()
        assert response.status == 200, body
        return dict(body)

    preview = await run("preview")
    assert (preview["status"], preview["matches"], preview["alerts"]) == ("succeeded", 3, 0)
    assert {s["host.name"] for s in preview["sample"]} == {"ws-17", "ws-18", "build-01"}
    suppression = await gateway.client.post(
        f"/api/v1/detections/rules/{rule['id']}/suppressions",
        headers=hunter,
        json={
            "match": {"user.name": "svc_build"},
            "reason": "the build agent",
            "duration_seconds": 3600,
        },
    )
    assert suppression.status == 201, await suppression.json()
    first = await run("backfill")
    assert (first["matches"], first["alerts"], first["suppressed"]) == (3, 2, 1)
    again = await run("backfill")
    assert (again["alerts"], again["already_seen"], again["suppressed"]) == (0, 2, 1)
    alerts = await (
        await gateway.client.get(f"/api/v1/alerts?rule_id={rule['id']}", headers=hunter)
    ).json()
    assert alerts["total"] == 2
    assert {a["severity"] for a in alerts["items"]} == {"high"}
    runs = await (
        await gateway.client.get(f"/api/v1/detections/rules/{rule['id']}/runs", headers=hunter)
    ).json()
    assert [r["kind"] for r in runs["items"]] == ["backfill", "backfill", "preview"]
    listed = await (
        await gateway.client.get(
            f"/api/v1/detections/rules/{rule['id']}/suppressions", headers=hunter
        )
    ).json()
    assert listed["items"][0]["hits"] == 2
    assert listed["items"][0]["active"] is True
    for verdict in ("true_positive", "false_positive", "true_positive", "benign"):
        response = await gateway.client.post(
            f"/api/v1/detections/rules/{rule['id']}/feedback",
            headers=hunter,
            json={"verdict": verdict, "comment": "checked"},
        )
        assert response.status == 201
    bad = await gateway.client.post(
        f"/api/v1/detections/rules/{rule['id']}/feedback", headers=hunter, json={"verdict": "meh"}
    )
    assert bad.status == 422
    metrics = await (await gateway.client.get("/api/v1/detections/metrics", headers=hunter)).json()
    (entry,) = metrics["rules"]
    assert entry["runs"] == 3
    assert entry["alerts"] == 2
    assert entry["matches"] == 9
    assert entry["precision"] == pytest.approx(2 / 3, abs=1e-3)
    assert entry["feedback"] == {"true_positive": 2, "false_positive": 1, "benign": 1}
    assert entry["mean_duration_ms"] > 0
    assert metrics["attack_coverage"]["count"] == 0  # the rule is not enabled yet
    # enable it: the scheduler runs it over its lookback, and raises nothing twice
    enabled = await gateway.client.patch(
        f"/api/v1/detections/rules/{rule['id']}",
        headers=hunter,
        json={"enabled": True, "lookback_seconds": 3 * 3600, "version": rule["version"]},
    )
    assert enabled.status == 200, await enabled.json()
    stale = await gateway.client.patch(
        f"/api/v1/detections/rules/{rule['id']}",
        headers=hunter,
        json={"enabled": False, "version": rule["version"]},
    )
    assert (await stale.json())["error"]["code"] == "AURORA-4090"
    # the gateway's scheduler picks it up within its tick

    async def scheduled_run_done() -> dict[str, Any] | None:
        runs: dict[str, Any] = await (
            await gateway.client.get(f"/api/v1/detections/rules/{rule['id']}/runs", headers=hunter)
        ).json()
        latest = runs["items"][0]
        return runs if latest["kind"] == "scheduled" and latest["status"] != "running" else None

    runs = await eventually(scheduled_run_done, interval=0.1, what="a scheduled run finished")
    assert [r["kind"] for r in runs["items"]].count(
        "scheduled"
    ) == 1  # not again before its interval
    scheduled = runs["items"][0]
    assert (scheduled["kind"], scheduled["alerts"], scheduled["already_seen"]) == (
        "scheduled",
        0,
        2,
    )
    coverage = (
        await (await gateway.client.get("/api/v1/detections/metrics", headers=hunter)).json()
    )["attack_coverage"]
    assert coverage == {"techniques": ["T1059.001"], "count": 1}
    missing = await gateway.client.post(
        "/api/v1/detections/rules/RULE-1999-00001/run",
        headers=hunter,
        json={**window, "mode": "preview"},
    )
    assert missing.status == 404


async def test_hunts_and_promoting_an_event(gateway: Gateway) -> None:
    hunter = await gateway.user(Role.HUNTER, "hana")
    status, ingested = await ingest(gateway, hunter, ndjson(EVENTS), source="sysmon")
    assert status == 200
    created = await gateway.client.post(
        "/api/v1/siem/hunts",
        headers=hunter,
        json={"name": "cmd on workstations", "query": "process.name:cmd.exe host.name:ws-*"},
    )
    hunt = await created.json()
    assert created.status == 201, hunt
    ran = await (
        await gateway.client.post(f"/api/v1/siem/hunts/{hunt['id']}/run", headers=hunter, json={})
    ).json()
    assert (ran["status"], ran["matches"]) == ("succeeded", 1)
    assert ran["results"][0]["process.command_line"] == "cmd.exe /c whoami"
    patched = await gateway.client.patch(
        f"/api/v1/siem/hunts/{hunt['id']}", headers=hunter, json={"kind": "sigma", "query": RULE}
    )
    assert patched.status == 200, await patched.json()
    ran = await (
        await gateway.client.post(f"/api/v1/siem/hunts/{hunt['id']}/run", headers=hunter, json={})
    ).json()
    assert ran["matches"] == 3
    listed = await (await gateway.client.get("/api/v1/siem/hunts", headers=hunter)).json()
    assert listed["items"][0]["last_run"]["matches"] == 3
    bad = await gateway.client.post(
        "/api/v1/siem/hunts", headers=hunter, json={"name": "x", "query": "process.name:("}
    )
    assert (await bad.json())["error"]["code"] == "AURORA-4220"
    # promote the cmd.exe event to a rule on its image and command line
    log_id = ingested["ids"][2]
    promoted = await gateway.client.post(
        f"/api/v1/siem/logs/{log_id}/promote",
        headers=hunter,
        json={"fields": ["Image", "CommandLine"], "title": "whoami through cmd", "level": "low"},
    )
    rule = await promoted.json()
    assert promoted.status == 201, rule
    assert rule["enabled"] is False
    assert rule["logsource"]["category"] == "process_creation"
    window = {
        "start": (NOW - timedelta(hours=1)).isoformat(),
        "end": (NOW + timedelta(minutes=1)).isoformat(),
    }
    preview = await (
        await gateway.client.post(
            f"/api/v1/detections/rules/{rule['id']}/run",
            headers=hunter,
            json={**window, "mode": "preview"},
        )
    ).json()
    assert preview["matches"] == 1
    for path, body, status_code in (
        (
            "/api/v1/siem/logs/00000000-0000-0000-0000-000000000000/promote",
            {"fields": ["Image"]},
            404,
        ),
        (f"/api/v1/siem/logs/{log_id}/promote", {"fields": ["NoSuchField"]}, 422),
        (f"/api/v1/siem/logs/{log_id}/promote", {"fields": []}, 422),
    ):
        response = await gateway.client.post(path, headers=hunter, json=body)
        assert response.status == status_code, body


async def test_real_attack_logs_are_searchable(gateway: Gateway) -> None:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data not found: set AURORA_SHARED_DATA or place ../shared/data")
    folder = data / "logs" / "evtx_to_mitre_attack"
    files = sorted(folder.rglob("*.jsonl"))[:5]
    if not files:
        pytest.skip("no JSON lines under logs/evtx_to_mitre_attack")
    analyst = await gateway.user(Role.ANALYST, "ana")
    accepted = 0
    for path in files:
        status, result = await ingest(gateway, analyst, path.read_bytes(), source="evtx-lab")
        assert status == 200, (path.name, result)
        accepted += result["accepted"]
        assert result["rejected"] == 0, (path.name, result["rejections"][:3])
    found = await (
        await gateway.client.get(
            "/api/v1/siem/logs",
            headers=analyst,
            params={"start": "2000-01-01T00:00:00Z", "limit": "1000"},
        )
    ).json()
    assert len(found["items"]) == min(accepted, 1000)
    assert all(item.get("event.code") for item in found["items"])


CORRELATION = """
title: Process creation
name: any_process
status: test
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '.exe'
  condition: selection
---
title: Busy host
status: test
correlation:
  type: event_count
  rules:
    - any_process
  group-by:
    - Computer
  timespan: 1h
  condition:
    gte: 2
level: medium
tags:
  - attack.t1059
"""


async def test_a_correlation_rule_raises_one_alert_per_group(gateway: Gateway) -> None:
    hunter = await gateway.user(Role.HUNTER, "hana")
    await ingest(gateway, hunter, ndjson(EVENTS), source="sysmon")
    created = await gateway.client.post(
        "/api/v1/detections/rules", headers=hunter, json={"sigma": CORRELATION}
    )
    rule = await created.json()
    assert created.status == 201, rule
    assert rule["correlation"]["type"] == "event_count"
    window = {
        "start": (NOW - timedelta(hours=2)).isoformat(),
        "end": (NOW + timedelta(minutes=1)).isoformat(),
        "mode": "backfill",
    }
    url = f"/api/v1/detections/rules/{rule['id']}/run"
    first = await (await gateway.client.post(url, headers=hunter, json=window)).json()
    assert first["status"] == "succeeded", first
    # ws-17 started two processes within the hour; ws-18 and build-01 one each
    assert (first["matches"], first["alerts"]) == (1, 1)
    assert first["sample"][0]["correlation"]["groups"] == {"Computer": "ws-17"}
    again = await (await gateway.client.post(url, headers=hunter, json=window)).json()
    assert (again["alerts"], again["already_seen"]) == (0, 1)
    # The alert names what every event of the group shares (the host), not the processes that
    # differ, and dates from the group's first event.
    alerts = await (
        await gateway.client.get("/api/v1/alerts", headers=hunter, params={"rule_id": rule["id"]})
    ).json()
    (alert,) = alerts["items"]
    assert [e for e in alert["entities"] if e["type"] == "host"] == [
        {"type": "host", "value": "ws-17"}
    ]
    assert not [e for e in alert["entities"] if e["type"] == "process"]
    first_event = min(e["TimeCreated"] for e in EVENTS if e["Computer"] == "ws-17")
    assert alert["first_seen"][:19] == first_event[:19]


async def test_evtx_files_and_text_lines_through_the_api(gateway: Gateway) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    syslog = (
        b"<34>1 2026-11-20T08:00:00.003Z mymachine.example.com su - ID47 - "
        b"'su root' failed for lonvick on /dev/pts/8\n"
        b"CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 "
        b"dst=2.1.2.2 spt=1232\n"
        b"Nov 20 08:00:01 relay sshd[4242]: Accepted publickey for deploy from 10.9.8.7\n"
    )
    response = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**analyst, "Content-Type": "text/plain"},
        params={"source": "edge"},
        data=syslog,
    )
    result = await response.json()
    assert response.status == 200, result
    assert result["formats"] == {"syslog": 2, "cef": 1}
    assert (result["accepted"], result["rejected"]) == (3, 0)
    cef = await (
        await gateway.client.get(
            "/api/v1/siem/logs",
            headers=analyst,
            params={
                "q": "source.ip:10.0.0.0/8 destination.port:*",
                "start": "2000-01-01T00:00:00Z",
            },
        )
    ).json()
    assert cef["items"] == []  # spt is the source port: no destination port here
    cef = await (
        await gateway.client.get(
            "/api/v1/siem/logs",
            headers=analyst,
            params={"q": "source.ip:10.0.0.0/8 source.port:1232", "start": "2000-01-01T00:00:00Z"},
        )
    ).json()
    assert [i["format"] for i in cef["items"]] == ["cef"]
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data not found: the .evtx half needs ../shared/data")
    evtx = next((data / "logs" / "evtx_to_mitre_attack" / "evtx").rglob("*.evtx"))
    response = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**analyst, "Content-Type": "application/octet-stream", "X-Filename": evtx.name},
        params={"source": "evtx-upload"},
        data=evtx.read_bytes(),
    )
    result = await response.json()
    assert response.status == 200, result
    assert result["accepted"] > 0
    assert result["formats"] == {"windows": result["accepted"]}
    truncated = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**analyst, "Content-Type": "application/octet-stream", "X-Filename": evtx.name},
        data=evtx.read_bytes()[:5000],
    )
    assert truncated.status in {200, 422}
