"""The IOC extraction eval: its scoring, and AuroraSOC's score on ioc-finder's cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.ioc_extraction import (
    CASES_RELATIVE_PATH,
    Case,
    Tally,
    aurora_extractor,
    canonical,
    defang,
    evaluate,
    load_cases,
    main,
    score,
)
from tests.conftest import shared_data_dir

# Measured: plain 162 of 163 found, no false positive (P 1.000, R 0.994); defanged 83 of 83
# (P 1.000, R 1.000). The floors leave room for a case or two, not for a regression.
MIN_RECALL = 0.97
MIN_PRECISION = 0.97


def cases_path() -> Path:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent (../shared/data or AURORA_SHARED_DATA)")
    return data / CASES_RELATIVE_PATH


def test_canonical_forms() -> None:
    assert canonical("ipv6", "2001:0DB8:0000:0000:0000:ff00:0042:8329") == "2001:db8::ff00:42:8329"
    assert canonical("ipv4", "not-an-ip") == "not-an-ip"
    assert canonical("url", "HTTPS://Example.COM/Path?Q=A") == "https://example.com/Path?Q=A"
    assert canonical("url", "Example.COM/Path") == "example.com/Path"
    assert canonical("domain", " Example.COM ") == "example.com"


def test_defang_touches_only_what_analysts_defang() -> None:
    assert defang("see https://a.b.com/x.php and me@a.b.com, T1059.001 1.2.3.4.") == (
        "see hxxps://a[.]b[.]com/x[.]php and me[@]a[.]b[.]com, T1059[.]001 1[.]2[.]3[.]4."
    )


def test_score_tallies_per_kind() -> None:
    case = Case(
        id="c",
        text="x",
        expected={"ipv4": frozenset({"1.2.3.4", "5.6.7.8"}), "domain": frozenset()},
        scored=frozenset({"ipv4", "domain"}),
    )
    report = score(
        "aurorasoc",
        lambda _: {"ipv4": {"1.2.3.4", "9.9.9.9"}, "domain": {"a.com"}, "url": {"http://x"}},
        [case],
        defanged=False,
    )
    assert report.per_kind["ipv4"] == Tally(tp=1, fp=1, fn=1)
    assert report.per_kind["domain"] == Tally(tp=0, fp=1, fn=0)
    assert "url" not in report.per_kind  # not scored for this case
    assert report.overall == Tally(tp=1, fp=2, fn=1)
    assert report.misses == [("c", "ipv4", "5.6.7.8")]
    assert Tally().precision is None
    assert Tally().recall is None


def test_load_cases_reading_rules(tmp_path: Path) -> None:
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "a",
                    "text": "t",
                    "expected": {"ipv4s": ["1.2.3.4"], "asns": ["AS1"]},
                    "find_iocs_kwargs": {},
                },
                {
                    "id": "b",
                    "text": "t",
                    "expected": {"domains": ["a.com"]},
                    "find_iocs_kwargs": {"included_ioc_types": ["domains"]},
                },
                {
                    "id": "c",
                    "text": "t",
                    "expected": {},
                    "find_iocs_kwargs": {"included_ioc_types": ["asns"]},
                },
                {
                    "id": "d",
                    "text": "t",
                    "expected": {"domains": ["a.com"]},
                    "find_iocs_kwargs": {"parse_domain_from_url": False},
                },
                {
                    "id": "e",
                    "text": "t",
                    "find_iocs_kwargs": {},
                    "expected": {"attack_techniques": {"enterprise": ["T1001"], "mobile": []}},
                },
            ]
        )
    )
    cases, left_out = load_cases(path)
    assert left_out == 1
    assert [case.id for case in cases] == ["a", "b", "e"]
    assert cases[0].expected["ipv4"] == {"1.2.3.4"}
    assert cases[1].scored == {"domain"}
    assert cases[2].expected["attack_technique"] == {"t1001"}


def test_main_without_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cases", str(tmp_path / "absent.json")]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_aurora_scores_on_ioc_finder_cases() -> None:
    cases, left_out = load_cases(cases_path())
    assert (len(cases), left_out) == (106, 8)
    plain, defanged = evaluate(cases, {"aurorasoc": aurora_extractor})["aurorasoc"]
    for report in (plain, defanged):
        overall = report.overall
        assert overall.recall is not None
        assert overall.recall >= MIN_RECALL, report.misses
        assert overall.precision is not None
        assert overall.precision >= MIN_PRECISION, report.extras
    # Every kind is found at least once: a kind silently lost would show here first.
    assert {kind for kind, tally in plain.per_kind.items() if tally.tp == 0} == set()


def test_main_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert main(["--cases", str(cases_path()), "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["cases"] == 106
    assert [r["variant"] for r in payload["reports"]] == ["plain", "defanged"]
    assert payload["reports"][0]["overall"]["recall"] >= MIN_RECALL
