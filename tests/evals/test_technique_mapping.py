"""The technique-mapping eval: its metrics, and the mapper's score on TRAM's test half."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.technique_mapping import (
    DATASET_RELATIVE_PATH,
    Prediction,
    Sentence,
    assemble,
    calibrate,
    evaluate,
    evaluate_documents,
    load_reports,
    load_sentences,
    main,
    score,
    score_documents,
    split_of,
)
from tests.conftest import shared_data_dir
from tools.attack import AttackKB, DocumentWeights, split_sentences

# Measured on the test half (1,597 sentences, threshold 0.65): top-1 0.565, micro P 0.755,
# R 0.503, F1 0.604. Floors a few points below: a regression guard, not the target.
MIN_TOP1 = 0.53
MIN_MICRO_PRECISION = 0.70
MIN_MICRO_F1 = 0.56


def sentence(label: str, split: str = "test") -> Sentence:
    return Sentence(text="t", label=label, original_label=label, document="d", split=split)  # type: ignore[arg-type]


def test_split_is_by_report_and_fixed() -> None:
    assert split_of("BumbleBee Roasts Its Way to Domain Admin") == split_of(
        "BumbleBee Roasts Its Way to Domain Admin"
    )
    halves = {split_of(f"report {n}") for n in range(20)}
    assert halves == {"tune", "test"}


def test_score_metrics() -> None:
    predictions = [
        Prediction(sentence("T1"), "T1", 0.9),  # right, confident
        Prediction(sentence("T1"), "T2", 0.9),  # wrong, confident
        Prediction(sentence("T2"), "T2", 0.5),  # right, below threshold
        Prediction(sentence("T3"), None, 0.0),  # nothing found
        Prediction(sentence("T3.001"), "T3", 0.9),  # right parent only
    ]
    scores = score(predictions, threshold=0.8, split="test")
    assert scores.top1_accuracy == pytest.approx(2 / 5)
    assert scores.top1_parent_accuracy == pytest.approx(3 / 5)
    assert scores.predicted == 3
    assert scores.micro_precision == pytest.approx(1 / 3)
    assert scores.micro_recall == pytest.approx(1 / 5)
    assert scores.micro_f1 == pytest.approx(0.25)
    # Dataset labels T1, T2, T3, T3.001: precision 1/1, 0/1, 0/1, 0 (never predicted);
    # recall 1/2, 0/1, 0/1, 0/1.
    assert scores.label_macro_precision == pytest.approx(0.25)
    assert scores.label_macro_recall == pytest.approx(0.125)
    # Every predicted label is also a true one here, so both averages agree.
    assert scores.macro_precision == pytest.approx(0.25)
    assert scores.macro_recall == pytest.approx(0.125)
    outside = score([*predictions, Prediction(sentence("T1"), "T9", 0.9)], threshold=0.8, split="x")
    # T9 (predicted, never true) joins the second average only.
    assert outside.label_macro_precision == pytest.approx(0.25)
    assert outside.macro_precision == pytest.approx(0.2)
    empty = score([], threshold=0.5, split="test")
    assert (empty.top1_accuracy, empty.micro_f1, empty.macro_f1) == (0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    """One knowledge base for the module: its mapper is built on first use (a second or more)."""
    return AttackKB.load()


def dataset_path() -> Path:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent (../shared/data or AURORA_SHARED_DATA)")
    return data / DATASET_RELATIVE_PATH


def test_mapping_scores_on_tram_test_half(kb: AttackKB) -> None:
    sentences = load_sentences(dataset_path(), kb)
    assert len(sentences) == 3562
    # The one label ATT&CK revoked since TRAM is scored as its replacement.
    assert {s.original_label for s in sentences if s.label != s.original_label} == {"T1574.002"}
    test = [s for s in sentences if s.split == "test"]
    assert len(test) == 1597
    scores = evaluate(kb, test)["test"]
    assert scores.top1_accuracy >= MIN_TOP1
    assert scores.micro_precision >= MIN_MICRO_PRECISION
    assert scores.micro_f1 >= MIN_MICRO_F1


def test_main_without_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dataset", str(tmp_path / "absent.json")]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_main_writes_json(tmp_path: Path, kb: AttackKB, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AttackKB, "load", lambda *_args, **_kwargs: kb)  # the module's, mapped
    path = tmp_path / "tram.json"
    rows = json.loads(dataset_path().read_text())[:40]
    path.write_text(json.dumps(rows))
    out = tmp_path / "report.json"
    assert main(["--dataset", str(path), "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert set(payload["scores"]) == {"tune", "test", "all"}
    assert payload["scores"]["all"]["sentences"] == 40


# -- document mode -------------------------------------------------------------------------

# Measured on the test half of whole reports (74): the old reading (whole text, top 3 at the
# sentence threshold) exact F1 0.371 (R 0.246); map_document 0.668 (P 0.727, R 0.618), with
# hierarchy credit 0.733; the tune half 0.667. The floors sit a few points below.
MIN_DOCUMENT_F1 = 0.62
MIN_GAIN_OVER_OLD = 0.25
"""Measured gain 0.297 (0.668 against 0.371)."""
MAX_TUNE_TEST_GAP = 0.05


def test_assemble_makes_paragraphs_and_lists_the_splitter_reads_back() -> None:
    sentences = [
        "The actor sent a phishing email.",
        "It carried a macro.",
        "download multiple tools",
        "Batch files create a new admin user",
        "Mimikatz dumped credentials.",
        *[f"Sentence number {n} ends here." for n in range(6)],
    ]
    text = assemble(sentences)
    assert text.startswith(
        "The actor sent a phishing email. It carried a macro.\n\n"
        "- download multiple tools\n- Batch files create a new admin user\n\n"
        "Mimikatz dumped credentials. Sentence number 0 ends here."
    )
    assert text.count("\n\n") == 3  # a paragraph holds five sentences at most
    assert [s.text for s in split_sentences(text)] == sentences


def test_score_documents_exact_and_with_hierarchy_credit() -> None:
    scores = score_documents(
        [{"T1059.001", "T1003", "T1486"}, set()],
        [{"T1059.001", "T1003.001"}, {"T1490"}],
        method="m",
        split="test",
    )
    assert (scores.reports, scores.predicted, scores.expected) == (2, 3, 3)
    # Exact: 1 of 3 predicted is right, 1 of 3 expected found.
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(1 / 3)
    assert scores.f1 == pytest.approx(1 / 3)
    # At parent level T1003 matches T1003.001: predicted {T1059, T1003, T1486}, expected
    # {T1059, T1003} and {T1490}.
    assert scores.hierarchy_precision == pytest.approx(2 / 3)
    assert scores.hierarchy_recall == pytest.approx(2 / 3)
    empty = score_documents([], [])
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="one predicted set"):
        score_documents([set()], [])


def test_reports_are_tram_reports_by_title(kb: AttackKB) -> None:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent (../shared/data or AURORA_SHARED_DATA)")
    reports = load_reports(data, kb)
    sentences = load_sentences(data / DATASET_RELATIVE_PATH, kb)
    assert len(reports) == 148
    assert sum(r.split == "test" for r in reports) == 74
    assert len({r.id for r in reports}) == 148
    for report in reports[:20]:
        own = [s for s in sentences if s.document == report.title]
        assert report.labels == {s.label for s in own}
        assert report.split == split_of(report.title)
    # The splitter reads the assembled reports back into (almost) their sentences: 3,565
    # for 3,562, 134 of 148 reports exactly.
    read = sum(len(split_sentences(r.text)) for r in reports)
    assert abs(read - len(sentences)) <= 0.02 * len(sentences)


def test_documents_on_the_held_out_half_beat_the_old_reading(kb: AttackKB) -> None:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent (../shared/data or AURORA_SHARED_DATA)")
    reports = load_reports(data, kb)
    scores = {
        (s.method, s.split): s
        for s in evaluate_documents(kb, reports, methods=["whole-top3", "document"])
    }
    old, new = scores["whole-top3", "test"], scores["document", "test"]
    assert old.predicted <= 3 * old.reports
    assert new.f1 >= MIN_DOCUMENT_F1
    assert new.f1 - old.f1 >= MIN_GAIN_OVER_OLD
    assert new.recall > 2 * old.recall
    assert new.hierarchy_f1 >= new.f1
    assert abs(scores["document", "tune"].f1 - new.f1) <= MAX_TUNE_TEST_GAP


def test_calibrate_picks_the_best_grid_point(kb: AttackKB) -> None:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent (../shared/data or AURORA_SHARED_DATA)")
    tune = [r for r in load_reports(data, kb) if r.split == "tune"][:12]
    grid = {
        "per_sentence": (2,),
        "sentence_floor": (0.5,),
        "support": (0.0, 0.5),
        "family_support": (0.0,),
        "min_score": (0.5, 0.7, 0.95),
    }
    weights, best = calibrate(kb, tune, grid)
    assert weights.min_score in grid["min_score"]
    assert weights.support in grid["support"]
    expected = [r.labels for r in tune]
    for support in grid["support"]:
        for threshold in grid["min_score"]:
            other = DocumentWeights(support=support, min_score=threshold)
            found = [{t.id for t in kb.map_document(r.text, weights=other)} for r in tune]
            assert score_documents(found, expected).f1 <= best.f1
    chosen = [{t.id for t in kb.map_document(r.text, weights=weights)} for r in tune]
    assert score_documents(chosen, expected).f1 == pytest.approx(best.f1)


def test_main_documents_writes_json(
    tmp_path: Path, kb: AttackKB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AttackKB, "load", lambda *_args, **_kwargs: kb)
    path = tmp_path / "tram.json"
    rows = json.loads(dataset_path().read_text())[:80]
    path.write_text(json.dumps(rows))
    out = tmp_path / "report.json"
    assert main(["--dataset", str(path), "--documents", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    methods = {(row["method"], row["split"]) for row in payload["documents"]}
    assert {("whole-top3", "test"), ("document", "all"), ("whole", "tune")} <= methods
    everything = next(
        r for r in payload["documents"] if r["method"] == "document" and r["split"] == "all"
    )
    assert everything["reports"] == len({row["doc_title"] for row in rows})
