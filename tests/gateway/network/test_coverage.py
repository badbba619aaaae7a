"""ATT&CK coverage from enabled Sigma rules (real pySigma conversions) and network detectors,
against the telemetry a real chDB store holds; the Navigator layer it exports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.db import Database, create_database
from core.logstore.schema import LogEvent
from core.logstore.store import LogStore
from core.settings import Settings
from gateway.detections.models import DetectionRule
from gateway.network.configuration import NetworkConfig, TelemetrySource
from gateway.network.coverage import (
    LAYER_VERSION,
    Coverage,
    CoverageQuery,
    CoveredTechnique,
    coverage,
    navigator_layer,
)
from gateway.network.detectors import DETECTOR_TECHNIQUES
from tests.core.logstore.conftest import open_store
from tools.attack import AttackKB
from tools.attack.kb import normalise_technique_id
from tools.sigma import convert

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

ZEEK_DNS = """
title: Queries for a known tunnelling domain
id: 6f1c0a52-3d1e-4b8e-9a51-0c1f4f0b7d11
status: test
logsource: {product: zeek, service: dns}
detection:
  selection:
    query|endswith: '.tunnel.example'
  condition: selection
tags: [attack.command-and-control, attack.t1071.004]
level: high
"""

POWERSHELL = """
title: Encoded PowerShell command line
id: 0b1d5c5e-7f3a-4a8e-8a4c-2f6c9b1d3e22
status: test
logsource: {product: windows, category: process_creation}
detection:
  selection:
    CommandLine|contains: ' -enc '
  condition: selection
tags: [attack.execution, attack.t1059.001, attack.t1086]
level: high
"""

CREDENTIALS = """
title: Credential dumping tool
id: 9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6
status: test
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\\\mimikatz.exe'
  condition: selection
tags: [attack.credential-access, attack.t1003]
level: critical
"""


@pytest.fixture
def backend() -> str:
    """SQLite only: the rules are read with one plain query; the engine is not in question."""
    return "sqlite"


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def rule_row(number: int, sigma: str, *, enabled: bool) -> DetectionRule:
    conversion = convert(sigma)
    meta = conversion.meta
    return DetectionRule(
        id=f"RULE-2026-{number:05d}",
        sigma_id=meta.id,
        title=meta.title,
        description=None,
        level=meta.level,
        severity="high",
        status=meta.status,
        sigma=sigma,
        condition=conversion.condition,
        correlation=None,
        techniques=list(meta.techniques),
        tags=list(meta.tags),
        logsource={"product": meta.product, "category": meta.category, "service": meta.service},
        warnings=list(conversion.warnings),
        enabled=enabled,
        created_by="alice",
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    opened = create_database(settings.database_url)
    async with opened.session() as db:
        db.add(rule_row(1, ZEEK_DNS, enabled=True))
        db.add(rule_row(2, POWERSHELL, enabled=True))
        db.add(rule_row(3, CREDENTIALS, enabled=False))
        await db.commit()
    try:
        yield opened
    finally:
        await opened.dispose()


def zeek(at: datetime, code: str, **values: str | int) -> LogEvent:
    return LogEvent(
        timestamp=at,
        format="zeek",
        source="zeek",
        raw="{}",
        values={
            "event.code": code,
            "source.ip": "10.0.0.5",
            "destination.ip": "10.0.0.53",
            **values,
        },
        fields={},
    )


@pytest.fixture
async def store() -> AsyncIterator[LogStore]:
    async with open_store() as opened:
        await opened.insert(
            [
                # DNS queries (Zeek dns.log) and connections in the last day
                *(
                    zeek(NOW - timedelta(minutes=m), "dns", **{"dns.question.name": f"a{m}.x.org"})
                    for m in range(1, 6)
                ),
                *(zeek(NOW - timedelta(hours=h), "conn") for h in range(1, 4)),
                # a Windows process creation, but three days ago: outside a day's lookback
                LogEvent(
                    timestamp=NOW - timedelta(days=3),
                    format="windows",
                    source="dc1",
                    raw="{}",
                    values={
                        "event.code": "1",
                        "event.provider": "Microsoft-Windows-Sysmon/Operational",
                        "process.command_line": "powershell -enc AAAA",
                    },
                    fields={},
                ),
            ]
        )
        yield opened


def by_id(result: Coverage) -> dict[str, CoveredTechnique]:
    return {t.id: t for t in result.techniques}


async def run(
    database: Database,
    store: LogStore,
    kb: AttackKB,
    config: NetworkConfig,
    lookback: timedelta = DAY,
) -> Coverage:
    async with database.session() as db:
        return await coverage(db, store, config, kb=kb, now=NOW, lookback=lookback)


async def test_rules_cover_only_with_their_telemetry(
    database: Database, store: LogStore, kb: AttackKB
) -> None:
    result = await run(database, store, kb, NetworkConfig())
    techniques = by_id(result)

    dns = techniques["T1071.004"]
    assert dns.state == "covered"
    assert dns.name == "Application Layer Protocol: DNS"
    assert dns.tactics == ["Command and Control"]
    rule = next(s for s in dns.sources if s.kind == "rule")
    assert (rule.id, rule.telemetry, rule.telemetry_flowing, rule.events) == (
        "RULE-2026-00001",
        "product=zeek service=dns",
        True,
        5,
    )

    # the PowerShell rule's source sent nothing in the lookback: it covers nothing; its
    # revoked tag (T1086) is the same technique today (T1059.001), listed once
    powershell = techniques["T1059.001"]
    assert powershell.state == "no_telemetry"
    assert [(s.id, s.telemetry_flowing, s.events) for s in powershell.sources] == [
        ("RULE-2026-00002", False, 0)
    ]
    assert "T1086" not in techniques
    assert "T1003" not in techniques  # its rule is disabled

    # with a longer lookback the Windows event of three days ago counts
    longer = by_id(await run(database, store, kb, NetworkConfig(), lookback=4 * DAY))
    assert longer["T1059.001"].state == "covered"
    assert longer["T1059.001"].sources[0].events == 1

    assert result.totals.rules == 2
    assert result.totals.rules_flowing == 1
    assert result.attack_version == "18.1"
    assert result.window_start == NOW - DAY


async def test_detectors_cover_only_while_their_telemetry_flows(
    database: Database, store: LogStore, kb: AttackKB
) -> None:
    result = await run(database, store, kb, NetworkConfig())
    techniques = by_id(result)

    def detector(tid: str, name: str) -> tuple[bool, int]:
        source = next(s for s in techniques[tid].sources if s.id == name)
        assert source.kind == "detector"
        if source.events:  # counted in the last hour when it flowed there, else the lookback
            assert source.counted_seconds == 3600
        return source.telemetry_flowing, source.events

    # connections flow: the scan detectors cover network service discovery
    assert techniques["T1046"].state == "covered"
    # 3 conn + 5 dns records with both ends, 6 of them in the last hour
    assert detector("T1046", "port_scan") == (True, 6)
    # DNS queries flow: tunnelling is covered; no NXDOMAIN answers, so DGA is not
    assert detector("T1572", "dns_tunnelling") == (True, 5)
    assert techniques["T1572"].state == "covered"
    assert techniques["T1568.002"].state == "no_telemetry"
    # no flow records carry byte counts: exfiltration by volume sees nothing
    assert detector("T1048", "exfiltration") == (False, 0)
    assert techniques["T1048"].state == "no_telemetry"
    assert result.totals.detectors == len(DETECTOR_TECHNIQUES)

    # Zeek disabled: its events count for no detector and no rule
    suricata_only = NetworkConfig(sources=[TelemetrySource.SURICATA])
    quiet = by_id(await run(database, store, kb, suricata_only))
    assert quiet["T1046"].state == "no_telemetry"
    assert quiet["T1071.004"].state == "no_telemetry"
    assert all(not s.telemetry_flowing for t in quiet.values() for s in t.sources)

    # a disabled detector reports nothing
    config = NetworkConfig.model_validate({"thresholds": {"dga": {"enabled": False}}})
    without_dga = await run(database, store, kb, config)
    assert "T1568.002" not in by_id(without_dga)
    assert without_dga.totals.detectors == len(DETECTOR_TECHNIQUES) - 1


def layer_problems(layer: Mapping[str, Any]) -> list[str]:
    """What makes ``layer`` not a layer of format 4.5: its required fields and their types as
    the ATT&CK Navigator's layer format specification (v4.5) gives them."""
    problems: list[str] = []
    if not isinstance(layer.get("name"), str):
        problems.append("name: a string is required")
    if layer.get("domain") not in ("enterprise-attack", "mobile-attack", "ics-attack"):
        problems.append("domain: enterprise-attack, mobile-attack or ics-attack")
    versions = layer.get("versions")
    if not isinstance(versions, Mapping):
        problems.append("versions: an object")
    else:
        if versions.get("layer") != "4.5":
            problems.append('versions.layer must be "4.5"')
        parts = tuple(int(p) for p in str(versions.get("navigator", "")).split("."))
        if len(parts) != 3 or parts < (4, 9, 0):
            problems.append('versions.navigator must be at least "4.9.0"')
        if not isinstance(versions.get("attack", ""), str):
            problems.append("versions.attack: a string")
    for index, technique in enumerate(layer.get("techniques", [])):
        where = f"techniques[{index}]"
        tid = technique.get("techniqueID")
        if not isinstance(tid, str) or normalise_technique_id(tid) != tid:
            problems.append(f"{where}.techniqueID: T#### or T####.###")
        if not isinstance(technique.get("score", 0), int | float):
            problems.append(f"{where}.score: a number")
        for key in ("comment", "color", "tactic"):
            if not isinstance(technique.get(key, ""), str):
                problems.append(f"{where}.{key}: a string")
        if not isinstance(technique.get("enabled", True), bool):
            problems.append(f"{where}.enabled: a boolean")
        for item in technique.get("metadata", []):
            named = isinstance(item.get("name"), str) and isinstance(item.get("value"), str)
            if not (named or item.get("divider") is True):
                problems.append(f"{where}.metadata: name and value strings, or a divider")
        for link in technique.get("links", []):
            if not (isinstance(link.get("label"), str) and str(link.get("url")).startswith("http")):
                problems.append(f"{where}.links: label and a URL with its protocol")
    gradient = layer.get("gradient", {"colors": ["#fff", "#000"], "minValue": 0, "maxValue": 1})
    colors = gradient.get("colors")
    if not isinstance(colors, list) or len(colors) < 2:
        problems.append("gradient.colors: at least two")
    low, high = gradient.get("minValue"), gradient.get("maxValue")
    if not (isinstance(low, int | float) and isinstance(high, int | float) and high > low):
        problems.append("gradient: minValue and maxValue numbers, maxValue > minValue")
    for item in layer.get("legendItems", []):
        if not (isinstance(item.get("label"), str) and isinstance(item.get("color"), str)):
            problems.append("legendItems: label and color strings")
    return problems


async def test_the_navigator_layer_validates(
    database: Database, store: LogStore, kb: AttackKB
) -> None:
    result = await run(database, store, kb, NetworkConfig())
    layer = json.loads(json.dumps(navigator_layer(result, kb)))  # loaded as JSON
    assert layer_problems(layer) == []
    assert layer["versions"] == {"attack": "18", "navigator": "5.1.0", "layer": LAYER_VERSION}
    assert layer["domain"] == "enterprise-attack"
    entries = {t["techniqueID"]: t for t in layer["techniques"]}
    assert set(entries) == {t.id for t in result.techniques}
    covered, bare = entries["T1071.004"], entries["T1059.001"]
    assert covered["score"] >= 1
    assert "color" not in covered  # drawn from the gradient by its score
    assert (bare["score"], bare["color"]) == (0, "#fdae6b")
    assert {"name": "rule", "value": "Encoded PowerShell command line (RULE-2026-00002)"} in (
        bare["metadata"]
    )
    assert [item["label"] for item in layer["legendItems"]] == [
        "Covered (telemetry flowing)",
        "Detection without telemetry",
    ]


def test_the_validator_finds_what_is_wrong() -> None:
    broken = {
        "name": 1,
        "domain": "enterprise",
        "versions": {"layer": "4.4", "navigator": "4.8.0"},
        "techniques": [{"techniqueID": "1046", "score": "high", "metadata": [{"name": "x"}]}],
        "gradient": {"colors": ["#fff"], "minValue": 5, "maxValue": 1},
    }
    assert [problem.split(":")[0].split(" ")[0] for problem in layer_problems(broken)] == [
        "name",
        "domain",
        "versions.layer",
        "versions.navigator",
        "techniques[0].techniqueID",
        "techniques[0].score",
        "techniques[0].metadata",
        "gradient.colors",
        "gradient",
    ]


def test_coverage_query_bounds() -> None:
    assert CoverageQuery().format == "json"
    assert CoverageQuery(format="navigator", lookback_seconds=3600).lookback_seconds == 3600
    with pytest.raises(ValueError, match="navigator"):
        CoverageQuery.model_validate({"format": "csv"})
