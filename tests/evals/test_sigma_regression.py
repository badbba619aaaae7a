"""The Sigma regression-pair eval: SigmaHQ's rules against the real events they must match,
through the ingest parser, the log store (embedded chDB) and the logsource-scoped conversion."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from evals.sigma_regression import (
    PairResult,
    RegressionPair,
    load_pairs,
    main,
    read_events,
    score_pairs,
    score_pairs_engine,
)
from tests.conftest import chdb_path, shared_data_dir

# Measured with logsource scoping: 60 of 60 pairs match exactly as expected, as the reference
# implementation does (SigmaHQ's own runner passes them all).
EXPECTED_OK = 60
# The in-process engine on the same pairs: 60 of 60 as well, with the nested events as given and
# rewritten in the flat layout, each rule on the other pairs' events exactly as often as chDB.
ENGINE_EXPECTED_OK = 60


def data_root() -> Path:
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data not found (../shared/data or AURORA_SHARED_DATA)")
    return root


@pytest.fixture(scope="module")
def results() -> list[PairResult]:
    pairs = load_pairs(data_root())
    return asyncio.run(score_pairs(pairs, workdir=chdb_path()))


def test_pairs_load_with_their_counts() -> None:
    pairs = load_pairs(data_root())
    assert len(pairs) == 60
    assert len({p.rule_id for p in pairs}) == 60
    assert all(p.rule_path.is_file() and p.events_path.is_file() for p in pairs)
    given = [p for p in pairs if p.count_given]
    assert sum(p.expected for p in given) == 48 + 4  # 48 rules expect 1, one expects 4
    # Without a count, every event of the positive test is expected: Dtrace's test has two.
    dtrace = next(p for p in pairs if p.title == "Suspicious Kernel Dump Using Dtrace")
    assert (dtrace.count_given, dtrace.expected) == (False, 2)


def test_every_pair_fires_as_the_reference_does(results: list[PairResult]) -> None:
    failures = [(r.title, r.expected, r.matched, r.error) for r in results if not r.ok]
    assert failures == []
    assert sum(r.ok for r in results) == EXPECTED_OK
    assert all(r.ok == (r.matched == r.expected) for r in results)


def test_a_broken_pair_is_scored_as_an_error(tmp_path: Path) -> None:
    real = load_pairs(data_root())[0]
    unmapped_rule = tmp_path / "rule.yml"
    unmapped_rule.write_text(
        real.rule_path.read_text(encoding="utf-8").replace("product: windows", "product: acme_edr"),
        encoding="utf-8",
    )
    bad_events = tmp_path / "events.json"
    bad_events.write_text("[1, 2]", encoding="utf-8")
    pairs = [
        RegressionPair(
            real.rule_id, "logsource", unmapped_rule, real.events_path, 1, True, real.logsource
        ),
        RegressionPair(real.rule_id, "events", real.rule_path, bad_events, 1, True, {}),
        RegressionPair(
            real.rule_id, "too many", real.rule_path, real.events_path, 2, True, real.logsource
        ),
    ]
    scored = asyncio.run(score_pairs(pairs, workdir=chdb_path()))
    by_title = {r.title: r for r in scored}
    assert not by_title["logsource"].ok
    assert "maps to no events" in (by_title["logsource"].error or "")
    assert not by_title["events"].ok
    assert "expected JSON objects" in (by_title["events"].error or "")
    assert (by_title["too many"].matched, by_title["too many"].ok) == (1, False)
    assert by_title["too many"].error is None


def test_concatenated_events_are_read_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    path.write_text('{"a": 1}\n{\n "b": 2\n}\n', encoding="utf-8")
    assert [obj for _, obj in read_events(path)] == [{"a": 1}, {"b": 2}]
    assert [text for text, _ in read_events(path)] == ['{"a": 1}', '{\n "b": 2\n}']


def test_main_reports_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], results: list[PairResult]
) -> None:
    report = tmp_path / "report.json"
    argv = ["--data", str(data_root()), "--json", str(report), "--workdir", str(chdb_path())]
    assert main([*argv, "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "pairs ok (matched == expected) 3/3" in out
    written = json.loads(report.read_text())
    assert [r["rule_id"] for r in written] == [r.rule_id for r in results[:3]]
    assert [r["matched"] for r in written] == [r.matched for r in results[:3]]
    assert main(["--data", str(tmp_path)]) == 2  # no index there


@pytest.mark.parametrize("flat", [False, True], ids=["nested", "flat"])
def test_the_engine_fires_as_the_reference_does(flat: bool, results: list[PairResult]) -> None:
    scored = score_pairs_engine(load_pairs(data_root()), flat=flat)
    failures = [(r.title, r.expected, r.matched, r.error) for r in scored if not r.ok]
    assert failures == []
    assert sum(r.ok for r in scored) >= ENGINE_EXPECTED_OK
    # Beyond its own pair, each rule matches the same other events as the chDB pipeline.
    assert [(r.rule_id, r.cross) for r in scored] == [(r.rule_id, r.cross) for r in results]


def test_the_engine_reports_what_it_cannot_score(tmp_path: Path) -> None:
    real = load_pairs(data_root())[0]
    linux_rule = tmp_path / "rule.yml"
    linux_rule.write_text(
        real.rule_path.read_text(encoding="utf-8").replace("product: windows", "product: linux"),
        encoding="utf-8",
    )
    bad_events = tmp_path / "events.json"
    bad_events.write_text("[1, 2]", encoding="utf-8")
    pairs = [
        RegressionPair(
            real.rule_id, "linux", linux_rule, real.events_path, 1, True, real.logsource
        ),
        RegressionPair(real.rule_id, "events", real.rule_path, bad_events, 1, True, {}),
        RegressionPair(
            real.rule_id, "too many", real.rule_path, real.events_path, 2, True, real.logsource
        ),
    ]
    by_title = {r.title: r for r in score_pairs_engine(pairs)}
    assert not by_title["linux"].ok
    assert by_title["linux"].error == "skipped by the engine: product linux"
    assert not by_title["events"].ok
    assert "expected JSON objects" in (by_title["events"].error or "")
    assert (by_title["too many"].matched, by_title["too many"].ok) == (1, False)
    # The same rule's events stand twice in the input: the first pair's copy counts as cross.
    assert by_title["too many"].cross == 1


def test_main_scores_through_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(data_root()), "--engine", "--flat", "--limit", "5"]) == 0
    assert "pairs ok (matched == expected) 5/5" in capsys.readouterr().out
