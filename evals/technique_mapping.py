"""Technique mapping eval: TRAM's labelled threat-report sentences against ``AttackKB.map_text``.

The dataset (``cti/tram_single_label_train.json`` in the shared data) holds 3,562 sentences
from 148 threat reports, each labelled with one of 50 ATT&CK techniques. The mapper chooses
among every active Enterprise technique (about 690), not among the 50 labels. A label that
ATT&CK has revoked since TRAM was written is scored as its replacement (T1574.002 DLL
Side-Loading became T1574.001 in v18).

Sentences are split by report, deterministically (SHA-256 of the report title, even → ``tune``,
odd → ``test``), so that no report lends its wording to both halves. The mapper's weights and
:data:`tools.attack.mapping.RECOMMENDED_MIN_SCORE` were tuned on ``tune`` only; ``test`` is the
number to quote.

Metrics, per split:

- top-1 accuracy: the best-ranked technique is the label (no threshold); also at parent level
  (``T1059.003`` counts for ``T1059``) for reference;
- thresholded: the best technique is predicted when its score reaches the threshold, else
  nothing. Micro precision = correct / predicted, recall = correct / sentences. Macro
  averages per-label precision and recall two ways: over the dataset's labels (a prediction
  of another technique then costs micro precision only), and over every label true or
  predicted, as scikit-learn does, which also charges each technique the mapper predicted
  outside the label set (0 where a denominator is 0).

Usage::

    python -m evals.technique_mapping                 # both halves and all
    python -m evals.technique_mapping --sweep         # thresholds on the tune half
    python -m evals.technique_mapping --threshold 0.8 --json report.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tools.attack import AttackKB
from tools.attack.mapping import RECOMMENDED_MIN_SCORE

DATASET_RELATIVE_PATH = Path("cti/tram_single_label_train.json")
Split = Literal["tune", "test", "all"]


@dataclass(frozen=True)
class Sentence:
    """One labelled sentence; ``label`` is the current id of its technique."""

    text: str
    label: str
    original_label: str
    document: str
    split: Literal["tune", "test"]


@dataclass(frozen=True)
class Prediction:
    """The mapper's best technique for a sentence (None when it found nothing) and its score."""

    sentence: Sentence
    technique_id: str | None
    score: float


@dataclass(frozen=True)
class Scores:
    """The metrics of one split at one threshold."""

    split: str
    sentences: int
    labels: int
    top1_accuracy: float
    top1_parent_accuracy: float
    threshold: float
    predicted: int
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    label_macro_precision: float
    label_macro_recall: float
    label_macro_f1: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_dataset_path() -> Path:
    """The dataset in the shared data: ``$AURORA_SHARED_DATA`` or ``../shared/data``."""
    configured = os.environ.get("AURORA_SHARED_DATA")
    root = (
        Path(configured)
        if configured
        else Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    )
    return root / DATASET_RELATIVE_PATH


def split_of(document: str) -> Literal["tune", "test"]:
    """The half a report's sentences belong to: fixed by the report title alone."""
    return "tune" if hashlib.sha256(document.encode("utf-8")).digest()[-1] % 2 == 0 else "test"


def load_sentences(path: Path, kb: AttackKB) -> list[Sentence]:
    """The labelled sentences at ``path``, labels mapped to their current ATT&CK ids."""
    sentences = []
    for item in json.loads(path.read_text(encoding="utf-8")):
        original = str(item["label"])
        document = str(item.get("doc_title", ""))
        sentences.append(
            Sentence(
                text=str(item["text"]),
                label=kb.canonical_id(original) or original,
                original_label=original,
                document=document,
                split=split_of(document),
            )
        )
    return sentences


def predict(kb: AttackKB, sentences: Iterable[Sentence]) -> list[Prediction]:
    """The mapper's top technique for each sentence."""
    predictions = []
    for sentence in sentences:
        top = kb.map_text(sentence.text, limit=1)
        predictions.append(
            Prediction(sentence, top[0].technique_id if top else None, top[0].score if top else 0.0)
        )
    return predictions


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score(predictions: Sequence[Prediction], *, threshold: float, split: str) -> Scores:
    """Top-1 and thresholded metrics of ``predictions`` (see the module docstring)."""
    total = len(predictions)
    gold = Counter(p.sentence.label for p in predictions)
    top1 = sum(p.technique_id == p.sentence.label for p in predictions)
    parent = sum(
        p.technique_id is not None
        and p.technique_id.split(".")[0] == p.sentence.label.split(".")[0]
        for p in predictions
    )
    made = [p for p in predictions if p.technique_id is not None and p.score >= threshold]
    correct = [p for p in made if p.technique_id == p.sentence.label]
    predicted_as = Counter(p.technique_id for p in made)
    correct_as = Counter(p.sentence.label for p in correct)
    micro_precision = len(correct) / len(made) if made else 0.0
    micro_recall = len(correct) / total if total else 0.0
    # As scikit-learn averages: over every label that is either true or predicted.
    everywhere = _macro(
        sorted(set(gold) | {str(label) for label in predicted_as}), gold, predicted_as, correct_as
    )
    # Over the dataset's own labels only: a prediction outside them costs micro precision.
    labelled = _macro(sorted(gold), gold, predicted_as, correct_as)
    return Scores(
        split=split,
        sentences=total,
        labels=len(gold),
        top1_accuracy=top1 / total if total else 0.0,
        top1_parent_accuracy=parent / total if total else 0.0,
        threshold=threshold,
        predicted=len(made),
        micro_precision=micro_precision,
        micro_recall=micro_recall,
        micro_f1=_f1(micro_precision, micro_recall),
        macro_precision=everywhere[0],
        macro_recall=everywhere[1],
        macro_f1=everywhere[2],
        label_macro_precision=labelled[0],
        label_macro_recall=labelled[1],
        label_macro_f1=labelled[2],
    )


def _macro(
    labels: Sequence[str],
    gold: Counter[str],
    predicted_as: Counter[str | None],
    correct_as: Counter[str],
) -> tuple[float, float, float]:
    """Macro precision, recall and F1 over ``labels`` (0 where a denominator is 0)."""
    if not labels:
        return 0.0, 0.0, 0.0
    precisions = [correct_as[x] / predicted_as[x] if predicted_as[x] else 0.0 for x in labels]
    recalls = [correct_as[x] / gold[x] if gold[x] else 0.0 for x in labels]
    f1s = [_f1(p, r) for p, r in zip(precisions, recalls, strict=True)]
    return sum(precisions) / len(labels), sum(recalls) / len(labels), sum(f1s) / len(labels)


def evaluate(
    kb: AttackKB, sentences: Sequence[Sentence], *, threshold: float = RECOMMENDED_MIN_SCORE
) -> dict[str, Scores]:
    """Scores of the tune half, the test half and all sentences."""
    predictions = predict(kb, sentences)
    halves: dict[str, list[Prediction]] = {
        "tune": [p for p in predictions if p.sentence.split == "tune"],
        "test": [p for p in predictions if p.sentence.split == "test"],
        "all": predictions,
    }
    return {name: score(part, threshold=threshold, split=name) for name, part in halves.items()}


def render(scores: Scores) -> str:
    """One split's metrics as a few lines."""
    return (
        f"{scores.split:<5} {scores.sentences:>5} sentences, {scores.labels} labels\n"
        f"  top-1 accuracy {scores.top1_accuracy:.3f}"
        f"   (parent level {scores.top1_parent_accuracy:.3f})\n"
        f"  at score >= {scores.threshold:.2f}: {scores.predicted} predicted\n"
        f"    micro  P {scores.micro_precision:.3f}  R {scores.micro_recall:.3f}"
        f"  F1 {scores.micro_f1:.3f}\n"
        f"    macro over the dataset's labels  P {scores.label_macro_precision:.3f}"
        f"  R {scores.label_macro_recall:.3f}  F1 {scores.label_macro_f1:.3f}\n"
        f"    macro over labels true or predicted  P {scores.macro_precision:.3f}"
        f"  R {scores.macro_recall:.3f}  F1 {scores.macro_f1:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m evals.technique_mapping``."""
    parser = argparse.ArgumentParser(description="Score ATT&CK technique mapping on TRAM.")
    parser.add_argument("--dataset", type=Path, default=None, help="tram_single_label_train.json")
    parser.add_argument("--threshold", type=float, default=RECOMMENDED_MIN_SCORE)
    parser.add_argument("--sweep", action="store_true", help="print a threshold sweep (tune half)")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    args = parser.parse_args(argv)

    path: Path = args.dataset or default_dataset_path()
    if not path.is_file():
        print(f"dataset not found: {path} (set AURORA_SHARED_DATA or --dataset)", file=sys.stderr)
        return 2
    kb = AttackKB.load()
    sentences = load_sentences(path, kb)
    remapped = Counter(
        f"{s.original_label}→{s.label}" for s in sentences if s.label != s.original_label
    )
    if remapped:
        print("revoked labels scored as their replacement:", dict(remapped))
    predictions = predict(kb, sentences)
    if args.sweep:
        tune = [p for p in predictions if p.sentence.split == "tune"]
        print("threshold sweep on the tune half (micro P / R / F1, macro F1):")
        for step in range(0, 20):
            threshold = step / 20
            s = score(tune, threshold=threshold, split="tune")
            print(
                f"  {threshold:.2f}  {s.micro_precision:.3f} / {s.micro_recall:.3f} / "
                f"{s.micro_f1:.3f}   {s.macro_f1:.3f}"
            )
    results = {
        name: score(part, threshold=args.threshold, split=name)
        for name, part in (
            ("tune", [p for p in predictions if p.sentence.split == "tune"]),
            ("test", [p for p in predictions if p.sentence.split == "test"]),
            ("all", predictions),
        )
    }
    for scores in results.values():
        print(render(scores))
    if args.json:
        payload = {
            "dataset": DATASET_RELATIVE_PATH.as_posix(),
            "attack_source": kb.source,
            "scores": {name: s.as_dict() for name, s in results.items()},
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
