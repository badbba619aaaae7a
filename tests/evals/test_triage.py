"""The triage eval: samples from the labelled attack logs, verdicts of findings and receipts,
scoring, and calibration."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.acp.finding import Evidence, Finding
from core.schemas import Severity
from evals.triage import (
    Label,
    attack_ids,
    calibrate,
    load_triage_samples,
    score,
    severity_baseline,
    split_of,
    verdict_of,
)
from orchestrator.verdict import CALIBRATED
from tests.conftest import shared_data_dir


def test_the_file_name_lists_the_attack_event_ids() -> None:
    assert attack_ids("ID800-4103-4104-LSASS dump with LSASSY (PowerShell).jsonl") == {
        800,
        4103,
        4104,
    }
    assert attack_ids("ID4688,4674-DCOMexec process spawned.jsonl") == {4688, 4674}
    assert attack_ids("ID 5376, 5379, 5382 credential manager.jsonl") == {5376, 5379, 5382}
    assert attack_ids("ID-4688 Native Windows sniffer Pktmon usage.jsonl") == {4688}
    assert attack_ids("notes.jsonl") == frozenset()


def test_the_split_is_by_technique_folder_and_stable() -> None:
    assert split_of("T1003-Credential dumping") == split_of("T1003-Credential dumping")
    assert {split_of(f"T{n}-x") for n in range(1000, 1040)} == {"tune", "test"}


def test_samples_are_windows_of_one_label(tmp_path: Path) -> None:
    folder = tmp_path / "logs/evtx_to_mitre_attack/jsonl/TA0006-Credential Access/T1003-Dump"
    folder.mkdir(parents=True)
    lines = [f'{{"EventID": {i}, "Channel": "Security"}}' for i in (600, 4104, 4104, 600, 4103)]
    (folder / "ID4103-4104-LSASS dump.jsonl").write_text("\n".join(lines) + "\n")
    samples = load_triage_samples(tmp_path)
    assert [(s.label, len(s.events)) for s in samples] == [
        ("benign", 1),
        ("malicious", 2),
        ("benign", 1),
        ("malicious", 1),
    ]
    assert {s.technique for s in samples} == {"T1003-Dump"}
    assert samples[1].id == "T1003-Dump/ID4103-4104-LSASS dump#1"
    with pytest.raises(FileNotFoundError):
        load_triage_samples(tmp_path / "nowhere")


def test_verdict_of_a_receipt_and_of_a_finding() -> None:
    assert verdict_of({"verdict": "malicious", "confidence": 0.9}) == ("malicious", 0.9)
    assert verdict_of({"verdict": "suspicious", "confidence": 0.6}) == ("malicious", 0.6)
    label, p = verdict_of({"verdict": "benign_or_unknown", "confidence": 0.7})
    assert (label, round(p, 3)) == ("benign", 0.3)
    assert verdict_of({"verdict": "inconclusive", "confidence": 0.0}) == ("benign", 0.5)
    said = Finding(agent="endpoint", summary="s", severity=Severity.HIGH, confidence=0.9)
    assert verdict_of(said)[0] == "benign"  # a severity with no evidence behind it
    seen = said.model_copy(
        update={"evidence": [Evidence(kind="rule_hit", ref="r @ e", summary="high: r")]}
    )
    label, p = verdict_of(seen.model_dump(mode="json"))
    assert label == "malicious"
    assert 0.5 <= p < 1
    assert severity_baseline(said) == ("malicious", 0.9)


def test_accuracy_and_brier() -> None:
    figures = score(
        [
            ("malicious", ("malicious", 0.8)),
            ("malicious", ("benign", 0.4)),
            ("benign", ("benign", 0.1)),
        ]
    )
    assert figures.samples == 3
    assert figures.malicious == 2
    assert figures.accuracy == pytest.approx(2 / 3)
    assert figures.balanced_accuracy == pytest.approx((0.5 + 1.0) / 2)
    assert figures.brier == pytest.approx((0.04 + 0.36 + 0.01) / 3)


def test_calibration_separates_what_the_labels_separate() -> None:
    bad: Label = "malicious"
    good: Label = "benign"
    rows = [({"detection": 3.0, "impact": 1.0}, bad)] * 6
    rows += [({"detection": 0.0}, good)] * 6 + [({"detection": 0.0}, bad)]
    fitted = calibrate(rows, steps=3000, rate=0.2)
    assert fitted.prior < 0 < fitted.detection
    assert fitted.decoded == 0.0  # no sample had one: the penalty keeps it at zero
    assert fitted.intel == pytest.approx(
        CALIBRATED.intel * fitted.detection / CALIBRATED.detection, abs=1e-2
    )
    with pytest.raises(ValueError, match="both labels"):
        calibrate([({"detection": 1.0}, "malicious")])


def test_the_shared_logs_give_windows_of_both_labels() -> None:
    root = shared_data_dir()
    if root is None or not (root / "logs/evtx_to_mitre_attack/jsonl").is_dir():
        pytest.skip("shared data (logs/evtx_to_mitre_attack) not found: set AURORA_SHARED_DATA")
    samples = load_triage_samples(root)
    labels = [s.label for s in samples]
    assert labels.count("malicious") > labels.count("benign") > 10
    assert {s.split for s in samples} == {"tune", "test"}
    assert all(s.events for s in samples)
    # Every folder's attack events are some window's.
    assert len({s.technique for s in samples if s.label == "malicious"}) >= 28
