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

Document mode (``--documents``): whole reports assembled from the same sentences, grouped by
report in the dataset's order (paragraphs of a few sentences; a fragment without final
punctuation as a list item), each labelled with the set of its sentences' labels. The split is
the same, by report. Three ways of reading a report are scored on each half, micro-averaged
over reports, exact and with ATT&CK hierarchy credit side by side (the credit compares both
sides at the parent technique: ``T1059.001`` and ``T1059`` agree):

- ``whole-top3``: the old behaviour, ``map_text`` of the whole text, best 3 at the sentence
  threshold (what the agents did);
- ``whole``: the same without the top 3 (every technique the sentence threshold passes);
- ``document``: ``AttackKB.map_document`` (sentence by sentence, aggregated per report).

``--calibrate`` searches the aggregation weights and the document threshold on the tune half
only and prints the best point; the shipped defaults (``tools.attack.document.DocumentWeights``
and :data:`tools.attack.mapping.DOCUMENT_MIN_SCORE`) are that point. TRAM's reports hold only
labelled sentences: a real report's unlabelled sentences would cost some precision.

Usage::

    python -m evals.technique_mapping                 # both halves and all
    python -m evals.technique_mapping --sweep         # thresholds on the tune half
    python -m evals.technique_mapping --threshold 0.8 --json report.json
    python -m evals.technique_mapping --documents [--calibrate]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from evals.data import shared_data_root
from tools.attack import AttackKB
from tools.attack.document import DocumentWeights, SentenceMatches
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
    root = shared_data_root()
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


# -- document mode --------------------------------------------------------------------------

PARAGRAPH_SENTENCES = 5
"""Sentences per paragraph of an assembled report."""
OLD_CONTEXT_LIMIT = 3
"""How many techniques the agents kept of a whole text before document mapping."""


@dataclass(frozen=True)
class Report:
    """A whole report assembled from its labelled sentences; ``labels`` are current ids."""

    id: str
    title: str
    text: str
    labels: frozenset[str]
    split: Literal["tune", "test"]


@dataclass(frozen=True)
class DocumentScores:
    """Micro-averaged set metrics over reports, exact and with hierarchy credit."""

    method: str
    split: str
    reports: int
    predicted: int
    """Techniques predicted, over all reports."""
    expected: int
    precision: float
    recall: float
    f1: float
    hierarchy_precision: float
    hierarchy_recall: float
    hierarchy_f1: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def assemble(sentences: Sequence[str]) -> str:
    """Sentences as a report's text: paragraphs of up to :data:`PARAGRAPH_SENTENCES`, where a
    fragment without final punctuation (many of TRAM's are table cells or list items) is an
    item of a list between paragraphs."""
    blocks: list[str] = []
    prose: list[str] = []
    items: list[str] = []
    for sentence in sentences:
        flat = " ".join(sentence.split())
        if flat.endswith((".", "!", "?", '"', "'")):
            if items:
                blocks.append("\n".join(items))
                items = []
            prose.append(flat)
            if len(prose) == PARAGRAPH_SENTENCES:
                blocks.append(" ".join(prose))
                prose = []
        else:
            if prose:
                blocks.append(" ".join(prose))
                prose = []
            items.append(f"- {flat}")
    blocks += [" ".join(prose)] if prose else []
    blocks += ["\n".join(items)] if items else []
    return "\n\n".join(blocks)


def load_reports(data_root: Path, kb: AttackKB | None = None) -> list[Report]:
    """TRAM's reports in the shared data at ``data_root`` (see :func:`reports_from`)."""
    return reports_from(data_root / DATASET_RELATIVE_PATH, kb)


def reports_from(path: Path, kb: AttackKB | None = None) -> list[Report]:
    """The reports of the TRAM sentences at ``path``, assembled from their sentences in the
    dataset's order (:func:`assemble`), ordered by title; labels mapped to current ids
    (``kb``, else the shipped knowledge base)."""
    kb = kb or AttackKB.load()
    grouped: dict[str, list[Sentence]] = {}
    for sentence in load_sentences(path, kb):
        grouped.setdefault(sentence.document, []).append(sentence)
    return [
        Report(
            id="tram-" + hashlib.sha256(title.encode("utf-8")).hexdigest()[:12],
            title=title,
            text=assemble([s.text for s in sentences]),
            labels=frozenset(s.label for s in sentences),
            split=split_of(title),
        )
        for title, sentences in sorted(grouped.items())
    ]


def _parent(technique: str) -> str:
    return technique.split(".", 1)[0]


def score_documents(
    predicted: Sequence[Collection[str]],
    expected: Sequence[Collection[str]],
    *,
    method: str = "",
    split: str = "",
) -> DocumentScores:
    """Micro precision, recall and F1 of per-report technique sets (``predicted[i]`` against
    ``expected[i]``), exact and with hierarchy credit (both sides at the parent technique)."""
    if len(predicted) != len(expected):
        raise ValueError("one predicted set per expected set")
    tp = fp = fn = htp = hfp = hfn = 0
    for got, wanted in zip(predicted, expected, strict=True):
        g, w = set(got), set(wanted)
        tp, fp, fn = tp + len(g & w), fp + len(g - w), fn + len(w - g)
        gp, wp = {_parent(t) for t in g}, {_parent(t) for t in w}
        htp, hfp, hfn = htp + len(gp & wp), hfp + len(gp - wp), hfn + len(wp - gp)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    h_precision, h_recall = _ratio(htp, htp + hfp), _ratio(htp, htp + hfn)
    return DocumentScores(
        method=method,
        split=split,
        reports=len(expected),
        predicted=sum(len(set(p)) for p in predicted),
        expected=sum(len(set(e)) for e in expected),
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        hierarchy_precision=h_precision,
        hierarchy_recall=h_recall,
        hierarchy_f1=_f1(h_precision, h_recall),
    )


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


CALIBRATION_GRID: dict[str, tuple[float, ...]] = {
    # Not calibrated: TRAM labels one technique per sentence, so it can only ever reward a
    # sentence voting for its best technique alone (1 scores ~1 point of F1 above 2 on tune);
    # a report's sentence often describes two ("ran PowerShell to create a scheduled task").
    "per_sentence": (2,),
    "sentence_floor": (0.5, 0.6, 0.65, 0.7, 0.75, 0.8),
    "support": (0.0, 0.25, 0.5, 1.0),
    "family_support": (0.0, 0.25, 0.5, 1.0),
    "min_score": tuple(round(0.5 + step * 0.025, 3) for step in range(19)),
}
"""The points :func:`calibrate` tries (``max_support`` stays at its default)."""


def document_methods(kb: AttackKB) -> dict[str, Callable[[Report], set[str]]]:
    """The ways of reading a report that document mode compares, by name."""
    return {
        "whole-top3": lambda r: {
            m.technique_id
            for m in kb.map_text(r.text, limit=OLD_CONTEXT_LIMIT, min_score=RECOMMENDED_MIN_SCORE)
        },
        "whole": lambda r: {
            m.technique_id
            for m in kb.map_text(
                r.text, limit=len(kb.techniques()), min_score=RECOMMENDED_MIN_SCORE
            )
        },
        "document": lambda r: {t.id for t in kb.map_document(r.text)},
    }


def calibrate(
    kb: AttackKB,
    reports: Sequence[Report],
    grid: Mapping[str, Sequence[float]] = CALIBRATION_GRID,
) -> tuple[DocumentWeights, DocumentScores]:
    """The ``grid`` point (the keys of :data:`CALIBRATION_GRID`) with the best exact micro F1
    on ``reports`` (ties: the best F1 with hierarchy credit, then the first in grid order),
    and its scores. Pass the tune half only."""
    deepest = int(max(grid["per_sentence"]))
    floor = min(grid["sentence_floor"])
    mapped: list[SentenceMatches] = [
        kb.map_sentences(r.text, limit=deepest, min_score=floor) for r in reports
    ]
    expected = [r.labels for r in reports]
    best: tuple[DocumentWeights, DocumentScores] | None = None
    for per_sentence, sentence_floor, support, family_support, min_score in itertools.product(
        grid["per_sentence"],
        grid["sentence_floor"],
        grid["support"],
        grid["family_support"],
        grid["min_score"],
    ):
        weights = replace(
            DocumentWeights(),
            per_sentence=int(per_sentence),
            sentence_floor=sentence_floor,
            support=support,
            family_support=family_support,
            min_score=min_score,
        )
        predicted = [{t.id for t in kb.aggregate(m, weights)} for m in mapped]
        scores = score_documents(predicted, expected, method="document", split="tune")
        if best is None or (scores.f1, scores.hierarchy_f1) > (best[1].f1, best[1].hierarchy_f1):
            best = (weights, scores)
    if best is None:
        raise ValueError("an empty calibration grid")
    return best


def evaluate_documents(
    kb: AttackKB, reports: Sequence[Report], *, methods: Sequence[str] | None = None
) -> list[DocumentScores]:
    """Each method's scores (:func:`document_methods`) on the tune half, the test half and
    all reports, in that order per method."""
    readers = document_methods(kb)
    results = []
    for name in methods or list(readers):
        predicted = [readers[name](r) for r in reports]
        for split in ("tune", "test", "all"):
            chosen = [i for i, r in enumerate(reports) if split in ("all", r.split)]
            results.append(
                score_documents(
                    [predicted[i] for i in chosen],
                    [reports[i].labels for i in chosen],
                    method=name,
                    split=split,
                )
            )
    return results


def render_documents(scores: Sequence[DocumentScores]) -> str:
    """Document-mode scores as a table: exact beside hierarchy credit."""
    lines = [
        f"{'method':<11} {'split':<5} {'reports':>7} {'per rep':>7}   "
        f"{'exact P':>7} {'R':>5} {'F1':>5}   {'hier. P':>7} {'R':>5} {'F1':>5}"
    ]
    for s in scores:
        lines.append(
            f"{s.method:<11} {s.split:<5} {s.reports:>7} {s.predicted / max(1, s.reports):>7.1f}"
            f"   {s.precision:>7.3f} {s.recall:>5.3f} {s.f1:>5.3f}"
            f"   {s.hierarchy_precision:>7.3f} {s.hierarchy_recall:>5.3f} {s.hierarchy_f1:>5.3f}"
        )
    return "\n".join(lines)


def documents_main(args: argparse.Namespace, kb: AttackKB, path: Path) -> int:
    """``--documents``: the three readings of each report, and ``--calibrate`` on tune."""
    reports = reports_from(path, kb)
    sizes = Counter(r.split for r in reports)
    print(f"{len(reports)} reports ({sizes['tune']} tune, {sizes['test']} test)")
    if args.calibrate:
        started = time.perf_counter()
        weights, tuned = calibrate(kb, [r for r in reports if r.split == "tune"])
        print(f"calibrated on tune in {time.perf_counter() - started:.1f}s: {weights}")
        print(render_documents([tuned]))
    results = evaluate_documents(kb, reports)
    print(render_documents(results))
    if args.json:
        payload = {
            "dataset": DATASET_RELATIVE_PATH.as_posix(),
            "attack_source": kb.source,
            "documents": [s.as_dict() for s in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m evals.technique_mapping``."""
    parser = argparse.ArgumentParser(description="Score ATT&CK technique mapping on TRAM.")
    parser.add_argument("--dataset", type=Path, default=None, help="tram_single_label_train.json")
    parser.add_argument("--threshold", type=float, default=RECOMMENDED_MIN_SCORE)
    parser.add_argument("--sweep", action="store_true", help="print a threshold sweep (tune half)")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    parser.add_argument("--documents", action="store_true", help="score whole reports")
    parser.add_argument(
        "--calibrate", action="store_true", help="with --documents: calibrate on the tune half"
    )
    args = parser.parse_args(argv)

    path: Path = args.dataset or default_dataset_path()
    if not path.is_file():
        print(f"dataset not found: {path} (set AURORA_SHARED_DATA or --dataset)", file=sys.stderr)
        return 2
    kb = AttackKB.load()
    if args.documents:
        return documents_main(args, kb, path)
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
