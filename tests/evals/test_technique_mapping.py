"""The technique-mapping eval: its metrics, and the mapper's score on TRAM's test half."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.technique_mapping import (
    DATASET_RELATIVE_PATH,
    Prediction,
    Sentence,
    evaluate,
    load_sentences,
    main,
    score,
    split_of,
)
from tests.conftest import shared_data_dir
from tools.attack import AttackKB

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
