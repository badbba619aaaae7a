"""The network agent over real Suricata eve.json samples (FrankHassanabad/suricata-sample-data,
MIT): one alert per signature from a honeypot, a conference training capture and two CCDC
competitions. Used in place from the shared data folder."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from agents.acp.server import AgentServer
from agents.network.rules import AddressBook, assess_alerts, build_telemetry
from agents.network.schemas import AnalyzeNetworkRequest
from tests.agents.network.conftest import analyse
from tests.conftest import shared_data_dir
from tools.attack import AttackKB


def sample(name: str) -> list[dict[str, Any]]:
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data (../shared/data or AURORA_SHARED_DATA) is not available")
    path = root / "network" / "suricata_sample_data" / "samples" / name / "alerts-only.json"
    if not path.is_file():
        pytest.skip(f"Suricata sample {name} is not in the shared data")
    events: list[dict[str, Any]] = json.loads(path.read_text())
    return events


def actions(result: dict[str, Any]) -> Counter[str]:
    return Counter(a["action"] for a in result["recommended_actions"])


def targets(result: dict[str, Any], action: str) -> set[str]:
    return {a["target"] for a in result["recommended_actions"] if a["action"] == action}


@pytest.mark.parametrize(
    ("name", "alerts", "severities"),
    [
        ("honeypot-2018", 44, {"low": 43, "informational": 1}),
        ("first-org-conf-2015", 136, {"high": 10, "medium": 52, "low": 53, "informational": 21}),
        ("wrccdc-2017", 161, {"high": 5, "medium": 20, "low": 81, "informational": 55}),
        ("wrccdc-2018", 207, {"high": 9, "medium": 39, "low": 112, "informational": 47}),
    ],
)
def test_every_sample_alert_is_rated(
    kb: AttackKB, name: str, alerts: int, severities: dict[str, int]
) -> None:
    request = AnalyzeNetworkRequest.model_validate({"alerts": sample(name)})
    telemetry = build_telemetry(request)
    assert len(telemetry.alerts) == alerts
    rated = assess_alerts(telemetry.alerts, AddressBook([]), kb)
    assert len(rated) == alerts  # one alert per signature in these samples
    assert dict(Counter(d.severity for d in rated)) == severities
    for detection in rated:
        assert all(kb.canonical_id(t) == t for t in detection.techniques), detection.title


async def test_honeypot_scans_and_reputation_hits(server: AgentServer) -> None:
    result = await analyse(server, {"alerts": sample("honeypot-2018")})
    # Scans and known-bad sources knocking: nothing shows an attack that worked.
    assert result["severity"] == "low"
    assert result["mitre_techniques"] == ["T1046"]
    assert set(actions(result)) == {"block_ip"}
    blocked = targets(result, "block_ip")
    assert "92.63.194.33" in blocked  # listed by both DShield (ET DROP) and CINS
    reason = next(
        a["reason"] for a in result["recommended_actions"] if a["target"] == "92.63.194.33"
    )
    assert "ET DROP Dshield Block Listed Source" in reason
    assert "ET CINS Active Threat Intelligence" in reason
    assert "138.68.3.71" not in blocked  # the honeypot itself


async def test_honeypot_with_its_address_as_home(server: AgentServer) -> None:
    events = sample("honeypot-2018")
    result = await analyse(server, {"alerts": events, "home_networks": ["138.68.3.71/32"]})
    # The honeypot is ours: no action may point at it, the scanners are external.
    everything = {a["target"] for a in result["recommended_actions"]}
    assert "138.68.3.71" not in everything
    assert result["severity"] == "low"


async def test_conference_capture_finds_the_infected_client_and_the_web_server(
    server: AgentServer,
) -> None:
    result = await analyse(server, {"alerts": sample("first-org-conf-2015")})
    assert result["severity"] == "high"
    assert result["summary"].startswith("High: Suricata 2018582 'ET TROJAN Miuref/Boaxxe Checkin'")
    assert {"T1071", "T1190", "T1046", "T1505.003"} <= set(result["mitre_techniques"])
    isolate = targets(result, "isolate_host")
    assert {"192.168.0.53", "192.168.0.2"} <= isolate  # C2 check-in; id command output served
    assert "193.9.28.35" in targets(result, "block_ip")
    assert len(result["recommended_actions"]) == 30  # capped, worst first


async def test_ccdc_2018_lateral_compromise(server: AgentServer) -> None:
    result = await analyse(server, {"alerts": sample("wrccdc-2018")})
    assert result["severity"] == "high"
    assert "Windows 7 CMD Shell from Local System" in result["summary"]
    assert {"T1210", "T1059.003", "T1087"} <= set(result["mitre_techniques"])
    assert {"10.47.8.152", "10.47.4.153", "10.47.24.55"} <= targets(result, "isolate_host")
    top = result["recommended_actions"][0]
    assert (top["action"], top["target"], top["impact"]) == ("isolate_host", "10.47.8.152", "high")


async def test_ccdc_2017_attack_responses(server: AgentServer) -> None:
    result = await analyse(server, {"alerts": sample("wrccdc-2017")})
    assert result["severity"] == "high"
    isolate = targets(result, "isolate_host")
    # The Meterpreter handler reached 172.16.24.74: the internal end is the victim.
    assert {"172.16.27.74", "172.16.24.74"} <= isolate
    assert "54.190.53.19" in targets(result, "block_ip")
    assert "T1090.003" in result["mitre_techniques"]  # Tor relay traffic
