"""The behaviour rules on real attack telemetry: the command lines, scripts and process starts of
mdecrevoisier/EVTX-to-MITRE-Attack (shared data), one folder per labelled technique."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_data_dir
from tools.behaviour import ProcessView, RuleHit, assess, scan_process, scan_text_deep

# folder technique → what the rules must find there (ATT&CK ids) and how many of the
# folder's events must fire a rule of severity medium or more.
EXPECTED: dict[str, tuple[set[str], int]] = {
    "T1059.001": ({"T1059.001", "T1105"}, 2),  # IEX(New-Object Net.WebClient).downloadString
    "T1053.005": ({"T1053.005"}, 1),  # schtasks /create ... /ru SYSTEM
    "T1197": ({"T1197"}, 3),  # Start-BitsTransfer (script block, pipeline, engine log)
    "T1003": ({"T1003.001"}, 10),  # comsvcs.dll MiniDump of lsass, in 10 PowerShell logs
    "T1027": ({"T1027.010", "T1059.001", "T1003.001", "T1562.001"}, 2),  # CME launcher
    # sqlservr → cmd (69 times) echoing a base64 PE, then cscript and the payload from Temp
    "T1059.003": ({"T1505.001", "T1027", "T1059.005", "T1204.002"}, 71),
    "T1574": ({"T1068"}, 2),  # Add-PrinterPort -Name ...dll (PrintDemon)
    "T1040": ({"T1040"}, 1),  # pktmon filter add
    "T1021.001": ({"T1563.002"}, 2),  # tscon 2 /dest:rdp-tcp#5
    "T1572": ({"T1090.001"}, 2),  # netsh interface portproxy add
    "T1482": ({"T1482"}, 0),  # GetCurrentForest(): discovery, low severity
}


def _dataset() -> Path:
    root = shared_data_dir()
    folder = root / "logs" / "evtx_to_mitre_attack" / "jsonl" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip("shared data (logs/evtx_to_mitre_attack) not found: set AURORA_SHARED_DATA")
    return folder


def _events(technique: str) -> list[dict[str, Any]]:
    files = [
        f for f in _dataset().glob("*/*/*.jsonl") if f.parent.name.split("-", 1)[0] == technique
    ]
    assert len(files) == 1, technique
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def _scan(event: dict[str, Any]) -> list[RuleHit]:
    hits: list[RuleHit] = []
    texts = [event.get(k) for k in ("CommandLine", "ScriptBlockText", "Payload", "TaskContent")]
    if isinstance(event.get("Data"), list):
        texts.append("\n".join(str(x) for x in event["Data"]))
    for text in texts:
        if isinstance(text, str) and text.strip():
            hits += scan_text_deep(text, "event")[0]
    image = event.get("Image") or event.get("NewProcessName")
    if image:
        parent = event.get("ParentImage") or event.get("ParentProcessName")
        hits += scan_process(ProcessView(image, parent_image=parent), "process")
    return hits


@pytest.mark.parametrize("technique", sorted(EXPECTED))
def test_labelled_technique_is_detected(technique: str) -> None:
    expected, serious_events = EXPECTED[technique]
    events = _events(technique)
    hits_per_event = [_scan(event) for event in events]
    found = {t for hits in hits_per_event for h in hits for t in h.rule.techniques}
    assert expected <= found, sorted(found)
    serious = [
        hits
        for hits in hits_per_event
        if any(h.rule.severity in ("medium", "high", "critical") for h in hits)
    ]
    assert len(serious) == serious_events


def test_payload_download_folder_rates_high() -> None:
    hits = [h for event in _events("T1059.001") for h in _scan(event)]
    verdict = assess(hits, behaviour=True)
    assert verdict.severity == "high"
    assert verdict.confidence == 0.9  # download-and-execute (0.8) and web download (0.5)


def test_folders_without_command_lines_raise_nothing() -> None:
    # Kerberos failures, group changes and trust enumeration logs carry no command line.
    for technique in ("T1110.xxx", "T1098.xxx", "T1087"):
        assert [h for event in _events(technique) for h in _scan(event)] == []
