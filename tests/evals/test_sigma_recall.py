"""The Sigma recall eval's scoring: what credits a technique, and how the report counts."""

from __future__ import annotations

import pytest

from evals.sigma_recall import Technique, related, render, summarise


@pytest.mark.parametrize(
    ("tag", "technique", "credited"),
    [
        ("T1059.001", "T1059.001", True),
        ("T1059", "T1059.001", True),  # the parent
        ("T1059.003", "T1059", True),  # a sub-technique of the folder's technique
        ("T1059.003", "T1059.001", False),  # a sibling is another technique
        ("T1105", "T1059", False),
        ("t1059.001", "T1059.001", True),
    ],
)
def test_related_credits_the_technique_its_parent_and_its_subtechniques(
    tag: str, technique: str, credited: bool
) -> None:
    assert related(tag, technique) is credited


def test_detected_means_attributed_and_unattributed_firing_is_apart() -> None:
    attributed = Technique("T1003", "T1003-dumping", events=10, events_hit=4, events_attributed=2)
    attributed.rules_fired = {"LSASS access", "Proxy without user agent"}
    attributed.attributed = {"LSASS access"}
    only_other = Technique("T1112", "T1112-registry", events=5, events_hit=5)
    only_other.rules_fired = {"Proxy without user agent"}
    silent = Technique("T1087", "T1087-discovery", events=3)
    techniques = {t.folder: t for t in (attributed, only_other, silent)}
    assert [t.detected for t in techniques.values()] == [True, False, False]
    assert only_other.unattributed == {"Proxy without user agent"}
    assert summarise(techniques) == {
        "techniques": 3,
        "detected": 1,
        "unattributed_only": 1,
        "silent": 1,
        "events": 18,
        "events_hit": 9,
        "events_attributed": 2,
        "unattributed_rules": 1,
        "unattributed_pairs": 2,
    }
    report = render(techniques)
    assert "techniques detected (an attributed rule fired) 1/3" in report
    assert "only unattributed rules fired 1/3" in report
    assert "unattributed firing: 1 distinct rules, 2 (rule, technique folder) pairs" in report
