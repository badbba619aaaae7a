"""The endpoint rules on real events in both layouts: every technique folder of
EVTX-to-MITRE-Attack (flat) and every Sigma regression test (nested, as ``evtx`` writes them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.endpoint.agent import scan_events
from tests.conftest import shared_data_dir
from tools.behaviour import assess
from tools.logs.windows import normalise_event

# Folder technique → (techniques the rules must report, severity of the folder's events).
# Folders the rules cannot see are listed with nothing: the record of what is not detected.
FLAT: dict[str, tuple[set[str], str]] = {
    "T1003": ({"T1003.001"}, "critical"),  # comsvcs MiniDump of lsass from PowerShell
    "T1016": ({"T1082", "T1070.001"}, "high"),  # schtasks /query after clearing the log
    "T1021.001": ({"T1563.002"}, "high"),  # tscon session hijack
    "T1021.003": ({"T1021.003"}, "medium"),  # mmc.exe -Embedding (MMC20 DCOM)
    "T1021.006": (set(), "informational"),  # WS-Management listener handles: not covered
    "T1027": ({"T1027.010", "T1003.001", "T1562.001", "T1047"}, "critical"),  # CME launcher
    "T1040": ({"T1040"}, "medium"),  # pktmon filter add
    "T1046": (set(), "informational"),  # anonymous NTLMv1 logons: not covered
    "T1047": ({"T1003.001"}, "critical"),  # PowerShell opened lsass with 0x143a
    "T1053.005": ({"T1053.005"}, "high"),  # task created to run as SYSTEM
    "T1059.001": ({"T1059.001", "T1105"}, "high"),  # IEX downloadString
    "T1059.003": ({"T1505.001", "T1027", "T1059.005", "T1204.002"}, "high"),
    "T1070.006": ({"T1070.006"}, "low"),  # time changed from PowerShell
    "T1078.002": (set(), "informational"),  # special-group logons are not misuse by themselves
    "T1087": ({"T1087.002"}, "low"),  # BloodHound ticket requests for 15+ hosts
    "T1098.xxx": ({"T1098.007"}, "high"),  # members added to Exchange admin groups
    "T1110.xxx": ({"T1110.001"}, "medium"),  # 54 Kerberos pre-auth failures
    "T1112": ({"T1543.003", "T1021.002", "T1105"}, "high"),  # SMBexec service ImagePath
    "T1134.005": ({"T1134.005"}, "high"),  # SID history added
    "T1197": ({"T1197"}, "medium"),  # Start-BitsTransfer
    "T1207": ({"T1207"}, "high"),  # replica rights used by a user (DCShadow)
    "T1482": ({"T1482"}, "low"),  # GetCurrentForest()
    "T1484.001": ({"T1484.001"}, "medium"),  # GPO attributes modified
    "T1550": ({"T1550.002", "T1070.001"}, "high"),  # logon type 9 via seclogo
    "T1553": ({"T1553.003"}, "high"),  # CryptSIPDll provider registered
    "T1555.004": ({"T1555.004"}, "low"),  # Credential Manager reads
    "T1558": (set(), "informational"),  # golden-ticket logons look like Kerberos logons
    "T1562.001": (set(), "informational"),  # Setup-log servicing events only
    "T1572": ({"T1090.001", "T1070.001"}, "high"),  # netsh portproxy
    "T1574": ({"T1068"}, "high"),  # Add-PrinterPort -Name ...dll (PrintDemon)
}

# Sigma regression tests (nested layout) → the technique the rules must report there.
NESTED: dict[str, str] = {
    "proc_creation_win_renamed_binary_highly_relevant": "T1036.003",
    "proc_creation_win_susp_right_to_left_override": "T1036.002",
    "proc_creation_win_reg_add_run_key": "T1547.001",
    "proc_creation_win_wmic_process_creation": "T1047",
    "proc_creation_win_cipher_overwrite_deleted_data": "T1485",
    "proc_creation_win_powershell_base64_invoke": "T1027.010",
    "proc_creation_win_print_dump_sensitive_files": "T1003.002",
    "proc_creation_win_cmdkey_recon": "T1003.005",
    "proc_creation_win_susp_system_exe_anomaly": "T1036.005",
    "proc_creation_win_certutil_decode": "T1140",
    "proc_creation_win_sc_stop_service": "T1562.001",
    "proc_creation_win_browsers_chromium_susp_load_extension": "T1176.001",
    "registry_set_add_port_monitor": "T1547.010",
    "registry_set_disable_system_restore": "T1490",
    "registry_event_add_local_hidden_user": "T1136.001",
    "registry_set_disable_defender_firewall": "T1562.004",
    "file_event_win_susp_lnk_double_extension": "T1036.007",
    "image_load_side_load_vcruntime140": "T1574.001",
    "file_event_win_susp_right_to_left_override_extension_spoofing": "T1036.002",
    "registry_delete_removal_amsi_registry_key": "T1562.001",
}


def _root(*parts: str) -> Path:
    root = shared_data_dir()
    path = root.joinpath(*parts) if root else None
    if path is None or not path.exists():
        pytest.skip(f"shared data ({'/'.join(parts)}) not found: set AURORA_SHARED_DATA")
    return path


def _json_objects(text: str) -> list[Any]:
    decoder, objects, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        while text[at].isspace():
            at += 1
        item, at = decoder.raw_decode(text, at)
        objects.append(item)
    return objects


def test_every_folder_is_in_the_table() -> None:
    folders = {
        f.name.split("-", 1)[0] for f in _root("logs/evtx_to_mitre_attack/jsonl").glob("*/*")
    }
    assert folders == set(FLAT)


@pytest.mark.parametrize("technique", sorted(FLAT))
def test_flat_layout_folder(technique: str) -> None:
    expected, severity = FLAT[technique]
    (path,) = [
        f
        for f in _root("logs/evtx_to_mitre_attack/jsonl").glob("*/*/*.jsonl")
        if f.parent.name.split("-", 1)[0] == technique
    ]
    raws = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    scan = scan_events([normalise_event(raw, i) for i, raw in enumerate(raws)])
    found = {t for hit in scan.rule_hits for t in hit.rule.techniques}
    assert expected <= found, sorted(found)
    assert assess(scan.rule_hits, behaviour=True).severity == severity


def test_nested_layout_regression_events() -> None:
    index = json.loads(_root("sigma/regression_index.json").read_text())
    base = _root("sigma")
    seen: dict[str, set[str]] = {}
    detected = 0
    for rule in index:
        for test in rule["tests"]:
            raws = _json_objects((base / test["json_path"]).read_text())
            events = [normalise_event(raw, i) for i, raw in enumerate(raws)]
            assert all(
                e.event_id == raw["Event"]["System"]["EventID"]
                for e, raw in zip(events, raws, strict=True)
            )
            hits = scan_events(events).rule_hits
            detected += bool(hits)
            seen[Path(test["json_path"]).parent.name] = {t for h in hits for t in h.rule.techniques}
    for name, technique in NESTED.items():
        assert technique in seen[name], (name, sorted(seen[name]))
    # 60 regression tests; the rules fire on 44 of them (measured; see the agent's report).
    assert (len(seen), detected) == (60, 44)
