"""Labelled attack logs → techniques (evals.attack_logs): scoring, and the leave-one-source-out
figure on the shared logs."""

from __future__ import annotations

import pytest

from evals.attack_logs import LogSource, evaluate, score_source
from tests.conftest import shared_data_dir

LOSO_FLOOR = 12
"""Measured: the agent's scan finds the label (hierarchy credit) in 12 of 30 folders with the
rules informed by each folder set aside (22 of 30 in-sample)."""


def test_score_source_credits_the_hierarchy() -> None:
    source = LogSource("T1003-Credential dumping", "T1003", [])
    assert (
        score_source(source, ["t1003.001"]).exact,
        score_source(source, ["T1003.001"]).hierarchy,
    ) == (False, True)
    assert score_source(source, ["T1003"]).exact
    assert not score_source(source, ["T1059"]).hierarchy


def test_loso_figure_is_reported_and_holds() -> None:
    root = shared_data_dir()
    if root is None or not (root / "logs" / "evtx_to_mitre_attack" / "jsonl").is_dir():
        pytest.skip("shared data (logs/evtx_to_mitre_attack) not found: set AURORA_SHARED_DATA")
    report = evaluate(root)
    assert report["sources"] == 30
    loso, in_sample = report["agent_loso"], report["agent_in_sample"]
    assert loso["hierarchy"] >= LOSO_FLOOR
    assert in_sample["hierarchy"] >= loso["hierarchy"]
    assert report["engine_loso"]["of"] == 30
