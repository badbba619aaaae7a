"""The rule planner over the specialist catalogue: who is dispatched for which subject, and with
what params (checked against each specialist's own request model)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.acp.finding import FindingIoc
from agents.catalog import (
    CATALOGUE,
    SPECIALISTS,
    Subject,
    SubjectKind,
    load_specialist,
)
from orchestrator.rules import follow_up, rule_plan

EVERYONE = frozenset(SPECIALISTS)
HASH = "44d88612fea8a8f36de82e1278abb02f"
PROCESS_EVENT = {
    "EventID": 4688,
    "Channel": "Security",
    "Computer": "WS-042.corp.example",
    "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
    "CommandLine": "cmd.exe /c whoami",
}
NESTED_EVENT = {
    "Event": {
        "System": {"EventID": {"#text": "1", "Qualifiers": ""}, "Computer": "ws-7"},
        "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe"},
    }
}


def subject(**fields: Any) -> Subject:
    return Subject.model_validate(fields)


def ioc(kind: str, value: str) -> dict[str, str]:
    return {"type": kind, "value": value}


def planned(given: Subject, available: frozenset[str] = EVERYONE) -> dict[str, dict[str, Any]]:
    return {c["agent"]: c["params"] for c in rule_plan(given, available, investigation_id="INV-1")}


@pytest.mark.parametrize(
    ("fields", "agents"),
    [
        ({"text": "beaconing seen"}, ["threat_intel"]),
        ({"iocs": [ioc("ip", "45.33.32.156")]}, ["threat_intel", "network"]),
        ({"iocs": [ioc("url", "http://evil.example/a")]}, ["threat_intel", "network"]),
        ({"iocs": [ioc("hash", HASH)]}, ["threat_intel", "malware"]),
        ({"iocs": [ioc("email", "a@evil.example")]}, ["threat_intel"]),
        ({"command_lines": ["powershell -enc AAAA"]}, ["malware"]),
        ({"hosts": ["ws-17"], "text": "beacon"}, ["threat_intel", "endpoint", "hunter"]),
        ({"users": ["alice"]}, ["hunter"]),
        ({"events": [PROCESS_EVENT]}, ["endpoint"]),
        ({"flows": [{"src_ip": "10.0.0.5", "dst_ip": "45.33.32.156"}]}, ["network"]),
        ({"title": "only a title"}, []),
        ({"events": [{"message": "not a Windows event"}]}, []),
    ],
    ids=lambda value: ",".join(value) if isinstance(value, list) else None,
)
def test_each_subject_kind_reaches_the_specialists_that_want_it(
    fields: dict[str, Any], agents: list[str]
) -> None:
    assert list(planned(subject(**fields))) == agents


def test_the_plan_follows_the_catalogue_order_and_what_is_available() -> None:
    everything = subject(
        text="beacon",
        iocs=[ioc("ip", "45.33.32.156"), ioc("hash", HASH)],
        hosts=["ws-17"],
        users=["alice"],
    )
    assert list(planned(everything)) == ["threat_intel", "malware", "network", "endpoint", "hunter"]
    assert list(planned(everything, frozenset({"hunter", "network", "responder"}))) == [
        "network",
        "hunter",
    ]
    calls = rule_plan(everything, frozenset({"malware"}), investigation_id="INV-9")
    assert calls == [
        {
            "agent": "malware",
            "method": "analyze_malware",
            "params": {"hashes": [{"value": HASH}], "command_lines": [], "context": "beacon"},
            "investigation_id": "INV-9",
            "round": 0,
            "tool_call_id": None,
        }
    ]


def test_each_specialist_is_given_only_the_indicators_it_takes() -> None:
    given = subject(
        text="beacon",
        iocs=[
            ioc("ip", "45.33.32.156"),
            ioc("hash", HASH),
            ioc("email", "a@evil.example"),
            ioc("cve", "CVE-2021-44228"),
        ],
        hosts=["ws-17"],
        users=["alice"],
    )
    params = planned(given)
    assert [i["type"] for i in params["threat_intel"]["iocs"]] == ["ip", "hash", "email", "cve"]
    assert params["malware"]["hashes"] == [{"value": HASH}]
    assert params["network"] == {"iocs": [ioc("ip", "45.33.32.156")], "context": "beacon"}
    assert [i["type"] for i in params["hunter"]["iocs"]] == ["ip", "hash", "email"]
    assert "iocs" not in params["endpoint"]


def test_the_rule_plan_sends_named_hosts_to_the_hunter() -> None:
    given = subject(text="beacon", hosts=["ws-17"], users=["alice"], iocs=[ioc("ip", "1.2.3.4")])
    hunt = planned(given, frozenset({"threat_intel", "network", "hunter"}))["hunter"]
    assert hunt == {
        "iocs": [ioc("ip", "1.2.3.4")],
        "hosts": ["ws-17"],
        "users": ["alice"],
        "context": "beacon",
    }
    assert planned(subject(text="beacon"), frozenset({"hunter"})) == {}


def test_endpoint_is_given_a_host_it_accepts_and_the_windows_events() -> None:
    named = planned(
        subject(
            title="t",
            text="lateral movement",
            hosts=["CORP\\ws-17", "ws-18"],  # the first is no host name the agent takes
            events=[PROCESS_EVENT, {"message": "syslog line"}, NESTED_EVENT],
            alert_id="ALR-1",
        )
    )["endpoint"]
    assert named == {
        "host": {"hostname": "ws-18"},
        "events": [PROCESS_EVENT, NESTED_EVENT],
        "context": "lateral movement",
        "alert_id": "ALR-1",
    }
    # no host named: the computer the first event came from
    from_events = planned(subject(events=[NESTED_EVENT, PROCESS_EVENT]))["endpoint"]
    assert from_events["host"] == {"hostname": "ws-7"}
    assert from_events["context"] is None
    # a host but nothing to look at, or no host it can take: not dispatched
    assert "endpoint" not in planned(subject(hosts=["ws-17"]))
    assert "endpoint" not in planned(subject(hosts=["bad host"], text="beacon"))


def test_every_planned_entry_builds_params_its_specialist_accepts() -> None:
    everything = subject(
        title="Beacon",
        text="beacon from ws-17",
        iocs=[ioc("ip", "45.33.32.156"), ioc("hash", HASH), ioc("domain", "evil.example")],
        command_lines=["powershell -enc AAAA"],
        hosts=["ws-17"],
        users=["alice"],
        events=[PROCESS_EVENT],
        alert_id="ALR-1",
    )
    params = planned(everything)
    assert set(params) == {e.name for e in CATALOGUE if e.planned}
    for entry in CATALOGUE:
        specialist = load_specialist(entry.name)
        assert specialist.method == entry.method
        if entry.planned:
            specialist.request_model.model_validate(params[entry.name])


def test_the_catalogue_tells_the_llm_planner_what_each_wants() -> None:
    assert SPECIALISTS["network"].describe() == "Give it: flows, indicators (domain, ip, url)."
    assert SPECIALISTS["endpoint"].describe() == "Give it: events, hosts."
    assert not SPECIALISTS["responder"].planned
    assert SPECIALISTS["responder"].describe() == ""
    assert subject(text="x", users=["u"]).kinds() == {SubjectKind.TEXT, SubjectKind.ACCOUNTS}


def test_the_second_round_asks_the_follow_up_specialists_about_new_indicators_only() -> None:
    given = subject(text="beacon", iocs=[ioc("ip", "45.33.32.156")], hosts=["ws-17"])
    new = [FindingIoc(type="domain", value="evil.example")]
    calls = follow_up(given, new, EVERYONE, investigation_id="INV-1", round_=1)
    assert [(c["agent"], c["round"]) for c in calls] == [("threat_intel", 1)]
    assert calls[0]["params"] == {"iocs": [ioc("domain", "evil.example")], "context": "beacon"}
    assert follow_up(given, [], EVERYONE, investigation_id="INV-1", round_=1) == []
    assert follow_up(given, new, EVERYONE - {"threat_intel"}, investigation_id="I", round_=1) == []
