"""The network agent's built-in rules on deterministic synthetic telemetry, its eve.json
handling, its bad-input answers and its LLM path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from agents.acp.server import AgentServer
from agents.network.rules import (
    channel_techniques,
    looks_generated,
    shannon_entropy,
    split_domain,
)
from core.llm import LLMBackend
from core.llm.fence import unfence
from core.settings import Settings
from tests.agents.network.conftest import analyse, network_server, rpc
from tests.agents.network.synthetic import START, beacon, browsing, flow, port_scan
from tests.fakes.openai_server import ScriptedOpenAI
from tools.attack import AttackKB

MODEL = "aurora-test-model"


def actions(result: dict[str, Any]) -> set[tuple[str, str]]:
    return {(a["action"], a["target"]) for a in result["recommended_actions"]}


def detections(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in result["evidence"] if e["ref"].startswith(f"{kind}: ")]


# -- beaconing ------------------------------------------------------------------------------


async def test_beacon_every_60s_is_found(server: AgentServer) -> None:
    result = await analyse(server, {"flows": beacon(), "alert_id": "ALRT-7"})
    assert result["agent"] == "network"
    assert result["backend"] == "builtin"
    assert result["severity"] == "medium"
    assert result["mitre_techniques"] == ["T1071.001", "T1573.002"]
    assert 0.85 <= result["confidence"] <= 0.95
    assert {"type": "ip", "value": "203.0.113.7", "subtype": "ipv4"} in result["iocs"]
    assert actions(result) == {
        ("isolate_host", "10.0.0.5"),
        ("block_ip", "203.0.113.7"),
        ("collect_pcap", "10.0.0.5"),
    }
    isolate = next(a for a in result["recommended_actions"] if a["action"] == "isolate_host")
    assert isolate["impact"] == "high"
    [found] = detections(result, "beaconing")
    assert "60 check-ins every ~60 s" in found["summary"]
    assert "flows[0], flows[1]" in found["ref"]
    assert "(+52 more)" in found["ref"]
    assert result["summary"].startswith("Medium: beaconing 10.0.0.5 → 203.0.113.7:443/TCP")
    # Every rule ran as a reported tool call.
    tools = [e["ref"] for e in result["evidence"] if e["kind"] == "tool_call"]
    assert tools == ["detect_beaconing", "detect_scans", "detect_exfiltration", "detect_ports"]


async def test_beacon_on_odd_port_and_internal_destination(server: AgentServer) -> None:
    odd = await analyse(server, {"flows": beacon(port=7443, interval=300, count=12)})
    assert odd["mitre_techniques"] == ["T1071", "T1571"]
    internal = await analyse(server, {"flows": beacon(dst="10.0.0.9", port=8080)})
    assert internal["severity"] == "low"
    assert actions(internal) == {("collect_pcap", "10.0.0.5")}
    assert "monitoring and polling look alike" in internal["summary"]


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ({"jitter": 18.0}, "±30 % jitter is not a schedule"),
        ({"count": 7}, "too few check-ins"),
        ({"interval": 4.0, "jitter": 0.1}, "a burst, not check-ins"),
        ({"src": "198.51.100.77", "dst": "10.0.0.5"}, "an external poller (uptime check)"),
    ],
)
async def test_not_beaconing(server: AgentServer, variant: dict[str, Any], reason: str) -> None:
    result = await analyse(server, {"flows": beacon(**variant)})
    assert detections(result, "beaconing") == [], reason


async def test_ntp_is_exempt(server: AgentServer) -> None:
    flows = [
        flow(START + i * 64, "10.0.0.5", "203.0.113.123", 123, proto="UDP", bytes_out=76)
        for i in range(30)
    ]
    result = await analyse(server, {"flows": flows})
    assert result["severity"] == "informational"


# -- scans ----------------------------------------------------------------------------------


async def test_thousand_port_scan_from_an_internal_host(server: AgentServer) -> None:
    result = await analyse(server, {"flows": port_scan()})
    assert result["severity"] == "medium"
    assert result["mitre_techniques"] == ["T1046"]
    assert actions(result) == {("collect_triage", "10.0.0.66"), ("collect_pcap", "10.0.0.66")}
    [found] = detections(result, "port_scan")
    assert "1000 ports of 10.0.0.10 in 50 s" in found["summary"]
    assert "1000 of 1000 connections got little or no answer" in found["summary"]
    assert result["confidence"] == 0.9


async def test_external_scanner_and_host_sweep(server: AgentServer) -> None:
    external = await analyse(server, {"flows": port_scan(src="198.51.100.200")})
    assert external["severity"] == "low"
    assert external["mitre_techniques"] == ["T1046", "T1595"]
    assert actions(external) == {("block_ip", "198.51.100.200")}
    sweep = [
        flow(START + i * 0.2, "10.0.0.66", f"10.0.1.{i}", 445, bytes_out=60, bytes_in=0)
        for i in range(1, 41)
    ]
    result = await analyse(server, {"flows": sweep})
    [found] = detections(result, "port_scan")
    assert "40 hosts on 445/TCP" in found["summary"]
    # Too slow for the window: 40 hosts over 40 minutes is not a sweep.
    slow = [{**f, "ts": START + i * 60} for i, f in enumerate(sweep)]
    assert detections(await analyse(server, {"flows": slow}), "port_scan") == []


async def test_benign_browsing_is_neither_beaconing_nor_scanning(server: AgentServer) -> None:
    result = await analyse(server, {"flows": browsing()})
    assert result["severity"] == "informational"
    assert result["mitre_techniques"] == []
    assert result["recommended_actions"] == []
    assert result["summary"].startswith("No beaconing, scanning, exfiltration")
    assert 0.3 < result["confidence"] <= 0.6


async def test_beacon_and_scan_hidden_in_browsing(server: AgentServer) -> None:
    flows = browsing() + beacon() + port_scan()
    result = await analyse(server, {"flows": flows})
    kinds = sorted(e["ref"].split(":")[0] for e in result["evidence"] if e["kind"] == "log")
    assert kinds == ["beaconing", "port_scan"]
    assert {"T1046", "T1071.001", "T1573.002"} == set(result["mitre_techniques"])
    hosts = {a["target"] for a in result["recommended_actions"]}
    assert hosts == {"10.0.0.5", "203.0.113.7", "10.0.0.66"}


# -- exfiltration and ports -----------------------------------------------------------------


def upload(dst: str = "203.0.113.50", start: float = START) -> list[dict[str, Any]]:
    return [
        flow(start + i * 30, "10.0.0.8", dst, 443, bytes_out=20_000_000, bytes_in=40_000)
        for i in range(5)
    ]


async def test_exfiltration_to_a_rare_destination(server: AgentServer) -> None:
    result = await analyse(server, {"flows": upload()})
    assert result["severity"] == "high"
    assert result["mitre_techniques"] == ["T1048"]
    [found] = detections(result, "exfiltration")
    assert "10.0.0.8 sent 100.0 MB to 203.0.113.50" in found["summary"]
    assert ("isolate_host", "10.0.0.8") in actions(result)
    assert ("block_ip", "203.0.113.50") in actions(result)
    # a flow's field is the caller's data: it corroborates nothing by itself
    assert {str(a["provenance"]) for a in result["recommended_actions"]} == {
        str([{"kind": "log_field", "ref": "network events"}])
    }
    assert result["corroborations"] == []
    # The same volume to a destination many hosts use is not "rare".
    shared = upload() + [
        flow(START + i, f"10.0.0.{i}", "203.0.113.50", 443, bytes_out=500, bytes_in=9000)
        for i in range(20, 25)
    ]
    assert detections(await analyse(server, {"flows": shared}), "exfiltration") == []
    # Balanced traffic (a download as big as the upload) is not exfiltration either.
    balanced = [{**f, "bytes_in": 20_000_000} for f in upload()]
    assert detections(await analyse(server, {"flows": balanced}), "exfiltration") == []


async def test_exfiltration_over_a_beacon_is_critical(server: AgentServer) -> None:
    flows = beacon(src="10.0.0.8", dst="203.0.113.50") + upload(start=START + 600)
    result = await analyse(server, {"flows": flows})
    assert result["severity"] == "critical"
    assert "T1041" in result["mitre_techniques"]
    assert result["summary"].startswith("Critical: possible exfiltration")
    assert "exfiltration over the C2 channel" in result["summary"]
    alone = await analyse(server, {"flows": upload()})
    assert result["confidence"] > alone["confidence"] + 0.2  # two rules agree on one pair


async def test_suspicious_outbound_port_and_exposed_rdp(server: AgentServer) -> None:
    flows = [
        flow(START, "10.0.0.31", "203.0.113.44", 4444, bytes_out=3000, bytes_in=90_000),
        flow(START + 5, "198.51.100.9", "10.0.0.40", 3389, bytes_out=9000, bytes_in=250_000),
        flow(START + 9, "198.51.100.10", "10.0.0.40", 3389, bytes_out=60, bytes_in=0),
    ]
    result = await analyse(server, {"flows": flows})
    assert {"T1571", "T1133"} <= set(result["mitre_techniques"])
    assert ("block_ip", "203.0.113.44") in actions(result)
    assert ("block_ip", "198.51.100.9") in actions(result)
    # A probe RDP never answered is noise, not access.
    assert ("block_ip", "198.51.100.10") not in actions(result)


# -- DNS ------------------------------------------------------------------------------------


def dns_event(index: int, name: str, rrtype: str = "A", rcode: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "timestamp": f"2024-05-01T10:00:{index % 60:02d}.000000+0000",
        "event_type": "dns",
        "src_ip": "10.0.0.12",
        "src_port": 53000 + index,
        "dest_ip": "10.0.0.2",
        "dest_port": 53,
        "proto": "UDP",
        "dns": {"type": "query", "id": index, "rrname": name, "rrtype": rrtype},
    }
    if rcode:
        event["dns"]["rcode"] = rcode
    return event


async def test_dns_tunnelling(server: AgentServer) -> None:
    # dnscat-style: hex-encoded chunks of data as the leading label, a sequence number after it.
    events = [
        dns_event(
            i, f"{hashlib.sha256(b'secret %d' % i).hexdigest()[:40]}.{i:04x}.t.exfil-cdn.net", "TXT"
        )
        for i in range(12)
    ]
    result = await analyse(server, {"alerts": events})
    assert result["mitre_techniques"] == ["T1071.004", "T1572"]
    assert result["severity"] == "medium"
    assert ("block_domain", "exfil-cdn.net") in actions(result)
    assert ("collect_pcap", "10.0.0.12") in actions(result)
    [found] = detections(result, "dns_tunnelling")
    assert "12 distinct long, high-entropy subdomains of exfil-cdn.net" in found["summary"]


async def test_dga_lookups_and_ordinary_names(server: AgentServer) -> None:
    generated = ["xkqzjvbwrtpl.com", "qwhdlxmzpvyr.net", "a8f3k2m9q1z7.org", "okfwtqlbrnzd.info"]
    ordinary = ["www.stackoverflow.com", "login.microsoftonline.com", "en.wikipedia.org"]
    events = [dns_event(i, n, rcode="NXDOMAIN") for i, n in enumerate(generated)]
    events += [dns_event(10 + i, n, rcode="NOERROR") for i, n in enumerate(ordinary)]
    result = await analyse(server, {"alerts": events})
    assert result["mitre_techniques"] == ["T1568.002"]
    [found] = detections(result, "dga")
    assert "10.0.0.12 looked up 4 generated-looking domains" in found["summary"]
    assert "4 of them NXDOMAIN" in found["summary"]
    blocked = {t for a, t in actions(result) if a == "block_domain"}
    assert blocked == set(generated)
    clean = await analyse(server, {"alerts": events[4:]})
    assert clean["severity"] == "informational"


def test_name_helpers() -> None:
    assert split_domain("a.b.example.co.uk") == ("example.co.uk", "a.b")
    assert split_domain("www.example.com") == ("example.com", "www")
    assert split_domain("example.com") == ("example.com", "")
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    for name in ("stackoverflow", "microsoftonline", "googlesyndication", "msftconnecttest"):
        assert not looks_generated(name), name
    for name in ("xkqzjvbwrt", "a8f3k2m9q1z7", "qwhdlxmzpvyr"):
        assert looks_generated(name), name
    assert channel_techniques(443, tls=False) == ["T1071.001", "T1573.002"]
    assert channel_techniques(53, tls=False) == ["T1071.004"]
    assert channel_techniques(25, tls=False) == ["T1071.003"]
    assert channel_techniques(4433, tls=True) == ["T1071", "T1573.002", "T1571"]


# -- Suricata eve events --------------------------------------------------------------------


def alert_event(
    signature: str,
    category: str,
    severity: int,
    src: str = "198.51.100.23",
    dst: str = "10.0.0.80",
    **extra: Any,
) -> dict[str, Any]:
    alert = {
        "action": extra.pop("action", "allowed"),
        "gid": 1,
        "signature_id": extra.pop("sid", 2_000_001),
        "rev": 1,
        "signature": signature,
        "category": category,
        "severity": severity,
    }
    alert.update(extra.pop("alert", {}))
    return {
        "timestamp": "2024-05-01T10:00:00.000000+0000",
        "flow_id": extra.pop("flow_id", 1),
        "event_type": "alert",
        "src_ip": src,
        "src_port": 51515,
        "dest_ip": dst,
        "dest_port": 80,
        "proto": "TCP",
        "alert": alert,
        **extra,
    }


async def test_suricata_metadata_techniques_win(server: AgentServer) -> None:
    event = alert_event(
        "ET EXPLOIT Apache log4j RCE Attempt (CVE-2021-44228)",
        "Attempted Administrator Privilege Gain",
        1,
        alert={"metadata": {"mitre_technique_id": ["T1190"], "mitre_tactic_id": ["TA0001"]}},
    )
    result = await analyse(server, {"alerts": [event]})
    assert result["mitre_techniques"] == ["T1190"]
    assert result["severity"] == "medium"
    assert ("block_ip", "198.51.100.23") in actions(result)
    [found] = [e for e in result["evidence"] if e["kind"] == "alert"]
    assert found["ref"] == "ids_alert: alerts[0] flow_id=1"
    assert "class 'Attempted Administrator Privilege Gain'" in found["summary"]


async def test_suricata_severity_rules(server: AgentServer) -> None:
    cases = [
        # (event, expected severity)
        (alert_event("ET TROJAN Zeus CnC Checkin", "A Network Trojan was detected", 1), "high"),
        (
            alert_event(
                "ET TROJAN Zeus CnC Checkin",
                "A Network Trojan was detected",
                1,
                action="blocked",
            ),
            "low",
        ),
        (
            alert_event("ET POLICY curl User-Agent Outbound", "A Network Trojan was detected", 1),
            "low",
        ),
        (
            alert_event(
                "ET MALWARE Suspicious User-Agent (1 space)", "A Network Trojan was detected", 1
            ),
            "medium",
        ),
        (
            alert_event("GPL ATTACK_RESPONSE id check returned root", "Potentially Bad Traffic", 2),
            "high",
        ),
        (alert_event("Vendor rule without a known class", "Some Vendor Class", 2), "medium"),
        (
            alert_event(
                "Vendor rule",
                "Some Vendor Class",
                3,
                alert={"metadata": {"signature_severity": ["Critical"]}},
            ),
            "high",
        ),
    ]
    for event, expected in cases:
        result = await analyse(server, {"alerts": [event]})
        assert result["severity"] == expected, event["alert"]


async def test_outbound_c2_alert_proposes_isolation_and_domain_block(server: AgentServer) -> None:
    event = alert_event(
        "ET CNC Known Command and Control Traffic",
        "Malware Command and Control Activity Detected",
        1,
        src="10.0.0.77",
        dst="203.0.113.66",
        http={"hostname": "update-check.badsite.example.com", "url": "/gate.php"},
    )
    result = await analyse(
        server, {"alerts": [event, {**event, "flow_id": 2}, {**event, "flow_id": 3}]}
    )
    assert result["severity"] == "high"
    assert result["mitre_techniques"] == ["T1071"]
    assert {
        ("isolate_host", "10.0.0.77"),
        ("block_ip", "203.0.113.66"),
        ("block_domain", "update-check.badsite.example.com"),
        ("collect_triage", "10.0.0.77"),
    } <= actions(result)
    [found] = [e for e in result["evidence"] if e["kind"] == "alert"]
    assert "x3" in found["summary"]


async def test_reputation_alerts_name_the_listed_address(server: AgentServer) -> None:
    event = alert_event(
        "ET CINS Active Threat Intelligence Poor Reputation IP TCP group 12", "Misc Attack", 2
    )
    result = await analyse(server, {"alerts": [event]})
    assert result["severity"] == "low"
    assert actions(result) == {("block_ip", "198.51.100.23")}


async def test_eve_flow_events_count_once_per_flow(server: AgentServer) -> None:
    events = []
    for i, item in enumerate(beacon(count=10)):
        stamp = item["ts"]
        common = {
            "flow_id": 900 + i,
            "src_ip": item["src_ip"],
            "src_port": item["src_port"],
            "dest_ip": item["dst_ip"],
            "dest_port": 443,
            "proto": "TCP",
        }
        events.append(
            {
                "event_type": "tls",
                "timestamp": stamp,
                **common,
                "tls": {"sni": "cdn-sync.example.net"},
            }
        )
        events.append(
            {
                "event_type": "flow",
                "timestamp": stamp,
                **common,
                "flow": {"bytes_toserver": 500, "bytes_toclient": 1000, "start": "x"},
            }
        )
    result = await analyse(server, {"alerts": events})
    [found] = detections(result, "beaconing")
    assert "10 check-ins" in found["summary"]
    assert "similar sizes" in found["summary"]
    assert "10 connection(s)" in result["summary"]


async def test_dns_answer_events_are_attributed_to_the_client(server: AgentServer) -> None:
    events = [
        {
            "event_type": "dns",
            "src_ip": "10.0.0.2",
            "src_port": 53,
            "dest_ip": "10.0.0.12",
            "dest_port": 53001,
            "dns": {
                "version": 3,
                "queries": [{"rrname": name, "rrtype": "A"}],
                "rcode": "NXDOMAIN",
            },
        }
        for name in ("xkqzjvbwrtpl.com", "qwhdlxmzpvyr.net", "a8f3k2m9q1z7.org")
    ]
    result = await analyse(server, {"alerts": events})
    [found] = detections(result, "dga")
    assert found["summary"].startswith("medium")
    assert "10.0.0.12 looked up 3" in found["summary"]


# -- indicators, context, home networks -----------------------------------------------------


async def test_given_indicators_are_looked_for(server: AgentServer) -> None:
    flows = beacon()
    result = await analyse(
        server,
        {
            "flows": flows,
            "iocs": [
                {"type": "ip", "value": "203.0.113[.]7"},
                {"type": "domain", "value": "not-seen.example.com"},
                {"type": "ip", "value": "300.1.1.1"},
            ],
            "context": "Proxy alert for 10.0.0.5 talking to 203.0.113.7 over HTTPS",
        },
    )
    sightings = detections(result, "ioc_sighting")
    # The address, given and in the context, is one indicator; the internal host named in the
    # context is ours, not an indicator.
    assert len(sightings) == 1
    assert any(
        "indicator 203.0.113.7 seen in 60 record(s), with 10.0.0.5" in e["summary"]
        for e in sightings
    )
    [rejected] = [e for e in result["evidence"] if e["kind"] == "rejected_iocs"]
    assert "300.1.1.1" in rejected["summary"]
    values = [i["value"] for i in result["iocs"]]
    assert values[:2] == ["203.0.113.7", "not-seen.example.com"]
    # The sighting corroborates the beacon: confidence above the beacon alone.
    alone = await analyse(server, {"flows": flows})
    assert result["confidence"] > alone["confidence"]
    assert ("watchlist", "203.0.113.7") in actions(result)


async def test_home_networks_make_a_public_host_ours(server: AgentServer) -> None:
    flows = beacon(src="198.51.100.5")
    assert detections(await analyse(server, {"flows": flows}), "beaconing") == []
    mine = await analyse(server, {"flows": flows, "home_networks": ["198.51.100.0/24"]})
    assert ("isolate_host", "198.51.100.5") in actions(mine)


async def test_only_context_and_special_addresses(server: AgentServer) -> None:
    result = await analyse(server, {"context": "nothing to see here"})
    assert result["severity"] == "informational"
    assert result["confidence"] == 0.1
    assert result["summary"].startswith("No network telemetry to analyse")
    loopback = [flow(START + i * 60, "127.0.0.1", "127.0.0.1", 8080) for i in range(20)]
    assert (await analyse(server, {"flows": loopback}))["severity"] == "informational"


# -- bad input ------------------------------------------------------------------------------


GOOD_FLOW = {
    "ts": "2024-05-01T10:00:00Z",
    "src_ip": "10.0.0.1",
    "dst_ip": "203.0.113.1",
    "dst_port": 443,
}


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, []),
        ({"flows": []}, []),
        ({"flows": [{**GOOD_FLOW, "ts": "yesterday"}]}, ["flows", 0, "ts"]),
        ({"flows": [{**GOOD_FLOW, "src_ip": "999.1.1.1"}]}, ["flows", 0, "src_ip"]),
        ({"flows": [{**GOOD_FLOW, "dst_port": 70000}]}, ["flows", 0, "dst_port"]),
        ({"flows": [{**GOOD_FLOW, "bytes_out": -5}]}, ["flows", 0, "bytes_out"]),
        ({"flows": [{**GOOD_FLOW, "colour": "red"}]}, ["flows", 0, "colour"]),
        ({"flows": [{"ts": 1}]}, ["flows", 0, "src_ip"]),
        ({"alerts": [{"event_type": "alert", "src_ip": "10.0.0.1"}]}, ["alerts", 0]),
        ({"alerts": [{"src_ip": "10.0.0.1"}]}, ["alerts", 0, "event_type"]),
        ({"alerts": ["not an object"]}, ["alerts", 0]),
        ({"iocs": [{"type": "ip"}]}, ["iocs", 0, "value"]),
        ({"flows": [GOOD_FLOW], "home_networks": ["10.0.0.0/33"]}, ["home_networks", 0]),
        ({"flows": [GOOD_FLOW], "unexpected": True}, ["unexpected"]),
        ({"flows": "not a list"}, ["flows"]),
    ],
)
async def test_bad_input_is_invalid_params(
    server: AgentServer, params: dict[str, Any], loc: list[object]
) -> None:
    reply = await rpc(server, params)
    assert "result" not in reply
    assert reply["error"]["code"] == -32602
    errors = reply["error"]["data"]["errors"]
    assert errors[0]["loc"][: len(loc)] == loc


async def test_card_names_the_method(server: AgentServer) -> None:
    card = (await rpc(server, None, "agent.card"))["result"]
    assert card["name"] == "network"
    assert "analyze_network" in json.dumps(card)
    assert card["prompt_versions"] == {"network": "v1"}


# -- LLM path -------------------------------------------------------------------------------


async def test_llm_path_calls_a_tool_then_answers(kb: AttackKB, tmp_path: Path) -> None:
    async with ScriptedOpenAI(models=(MODEL,)) as fake:
        fake.reply_tool_call("network_detections", {"kinds": ["beaconing"]})
        fake.reply_json(
            {
                "agent": "network",
                "summary": "10.0.0.5 beacons to 203.0.113.7 every 60 s over HTTPS.",
                "severity": "high",
                "confidence": 0.8,
                "mitre_techniques": ["t1071.001", "T9999"],
                "iocs": [{"type": "ip", "value": "203.0.113[.]7"}],
                "recommended_actions": [
                    {
                        "action": "isolate_host",
                        "target": "10.0.0.5",
                        "reason": "beacon",
                        "impact": "high",
                    }
                ],
            }
        )
        async with LLMBackend(base_url=fake.base_url, model=MODEL, max_retries=0) as llm:
            server = network_server(kb, tmp_path, llm)
            result = await analyse(server, {"flows": beacon()})
        offered = fake.chat_requests[0].tool_names
        tool_reply = fake.chat_requests[1].messages[-1]
    assert offered == [
        "network_detections",
        "host_activity",
        "domain_profile",
        "map_attack_techniques",
    ]
    assert tool_reply["role"] == "tool"
    [fenced] = unfence(tool_reply["content"])
    assert fenced.source == "tool network_detections"
    detections_seen = json.loads(fenced.text)
    assert detections_seen[0]["kind"] == "beaconing"
    assert detections_seen[0]["facts"]["checkins"] == 60
    assert result["backend"] == "llm"
    assert result["model"] == MODEL
    assert result["prompt_version"] == "v1"
    assert result["degraded"] is False
    assert result["severity"] == "high"
    assert result["mitre_techniques"] == ["T1071.001"]
    assert result["iocs"] == [{"type": "ip", "value": "203.0.113.7", "subtype": "ipv4"}]
    refs = [e["ref"] for e in result["evidence"]]
    assert "detect_beaconing" in refs  # the tool's own rule runs are evidence
    assert "not in ATT&CK: T9999" in json.dumps(result["evidence"])


async def test_llm_failure_falls_back_to_builtin(kb: AttackKB, tmp_path: Path) -> None:
    async with ScriptedOpenAI(models=(MODEL,)) as fake:
        fake.fail(500)
        settings = Settings(
            data_dir=tmp_path, llm_base_url=fake.base_url, llm_model=MODEL, llm_max_retries=0
        )
        llm = LLMBackend.from_settings(settings)
        assert llm is not None
        async with llm:
            server = network_server(kb, tmp_path, llm)
            result = await analyse(server, {"flows": beacon()})
        assert len(fake.chat_requests) == 1
    assert result["backend"] == "builtin"
    assert result["degraded"] is True
    assert result["severity"] == "medium"
    assert ("isolate_host", "10.0.0.5") in actions(result)
