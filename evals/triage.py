"""Triage eval: malicious vs benign verdicts on labelled attack logs.

The dataset is EVTX-to-MITRE-Attack in the shared data
(``logs/evtx_to_mitre_attack/jsonl/<tactic>/<technique>-<name>/ID<ids>-<title>.jsonl``). A
file's name lists the event ids of its attack (``ID800-4103-4104-...``, ``ID4688,4674-...``,
``ID 5376, 5379, ...``): its events of those ids are the attack, the others the benign activity
around it.

**Samples.** One sample per event window: a maximal run of consecutive events (in the file's
order) with the same label. A window is what a host sends for triage, and a run keeps an
attack's events together (a brute force is 54 failed logons, a ticket sweep 24 requests: one
event alone shows no burst), while a benign window is the activity around the attack with no
attack event in it, so its label is never in doubt. One sample per event would strip the
burst rules of their context; one per file would leave no benign sample. 51 windows: 33
malicious, 18 benign.

**Subject.** Each window goes to the real endpoint specialist (built-in analysis, through its
ACP request and finding, in process), and the finding is judged by the orchestrator's rule
(:func:`orchestrator.verdict.judge`): :func:`verdict_of` turns a finding or a receipt into a
label (``malicious`` for a suspicious or malicious verdict) and a probability of malicious.
The baseline (:func:`severity_baseline`) is the rule it replaced: the highest severity decides
(medium and up: malicious) and the confidence is the finding's.

**Split and calibration.** Technique folders are split by SHA-256 of the folder name (even
first byte → ``tune``, odd → ``test``). The rule's weights are fitted on ``tune`` only
(:func:`calibrate`: class-balanced logistic regression, L2-regularised); ``test`` is the
figure to quote, leave-one-source-out (each folder scored by weights fitted on all the others)
beside it. The endpoint's own rules were written on these logs, so every figure here is
in-sample for the detector; only the verdict's weights are held out.

Usage::

    python -m evals.triage                    # accuracy and Brier, baseline and rule, per split
    python -m evals.triage --calibrate        # fit the weights on the tune half
    python -m evals.triage --json report.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import math
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from agents.acp.finding import Finding
from agents.endpoint.agent import Endpoint
from agents.runtime.specialist import AgentDeps, build_server
from core.schemas import Severity
from core.settings import Settings
from orchestrator.verdict import (
    CALIBRATED,
    Weights,
    agent_features,
    judge,
    shipped_high_impact,
    signals_of,
)
from tools.attack import AttackKB
from tools.logs.windows import event_id_of

DATASET_RELATIVE_PATH: Final = Path("logs/evtx_to_mitre_attack/jsonl")
FITTED: Final = ("prior", "detection", "impact", "decoded")
"""The weights the labelled logs can fit (they hold no intel, sighting or model finding)."""
L2: Final = 1.0
"""Ridge penalty on the fitted weights (not the prior): few samples, so keep weights small."""
_IDS: Final = re.compile(r"^ID[\s-]*((?:\d+[\s,\-]*)+)")

type Label = Literal["malicious", "benign"]
type Split = Literal["tune", "test"]


@dataclass(frozen=True, slots=True)
class TriageSample:
    """One window of events with its label."""

    id: str
    """``<technique folder>/<file>#<window>``."""
    technique: str
    """The technique folder (``T1003-Credential dumping``): the sample's source."""
    split: Split
    label: Label
    events: tuple[dict[str, Any], ...]


def split_of(technique: str) -> Split:
    """The half a technique folder belongs to (SHA-256 of its name)."""
    return "tune" if hashlib.sha256(technique.encode()).digest()[0] % 2 == 0 else "test"


def attack_ids(file_name: str) -> frozenset[int]:
    """The event ids a file's name lists (``ID800-4103-4104-LSASS dump...`` → 800, 4103,
    4104); empty when the name lists none."""
    found = _IDS.match(file_name)
    return frozenset(int(x) for x in re.findall(r"\d+", found.group(1))) if found else frozenset()


def load_triage_samples(data_root: Path) -> list[TriageSample]:
    """Every window of every labelled log under ``data_root`` (the shared data folder), in
    path order. FileNotFoundError when the dataset is not there."""
    base = data_root / DATASET_RELATIVE_PATH
    if not base.is_dir():
        raise FileNotFoundError(f"{DATASET_RELATIVE_PATH} not found under {data_root}")
    samples: list[TriageSample] = []
    for path in sorted(base.glob("*/*/*.jsonl")):
        ids = attack_ids(path.name)
        if not ids:
            continue
        technique = path.parent.name
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        runs = itertools.groupby(events, key=lambda event: event_id_of(event) in ids)
        for index, (attack, run) in enumerate(runs):
            samples.append(
                TriageSample(
                    id=f"{technique}/{path.stem}#{index}",
                    technique=technique,
                    split=split_of(technique),
                    label="malicious" if attack else "benign",
                    events=tuple(run),
                )
            )
    return samples


# -- verdicts ---------------------------------------------------------------------------------


def _label(verdict: str) -> Label:
    return "malicious" if verdict in ("suspicious", "malicious") else "benign"


def verdict_of(finding_or_receipt: Finding | Mapping[str, Any]) -> tuple[Label, float]:
    """The label and the probability of malicious of a receipt (its ``verdict`` and
    ``confidence``) or of one finding (judged as an investigation of that finding alone)."""
    if isinstance(finding_or_receipt, Mapping) and "verdict" in finding_or_receipt:
        verdict = str(finding_or_receipt["verdict"])
        confidence = float(finding_or_receipt.get("confidence") or 0.0)
        if verdict == "inconclusive":
            return "benign", 0.5
    else:
        finding = (
            finding_or_receipt
            if isinstance(finding_or_receipt, Finding)
            else Finding.model_validate(finding_or_receipt)
        )
        judged = judge([finding], failed=0)
        verdict, confidence = judged.verdict, judged.confidence
    label = _label(verdict)
    return label, confidence if label == "malicious" else 1.0 - confidence


def severity_baseline(finding: Finding) -> tuple[Label, float]:
    """The rule the verdict replaced: malicious from medium severity, with the finding's
    confidence in that."""
    label: Label = "malicious" if finding.severity >= Severity.MEDIUM else "benign"
    return label, finding.confidence if label == "malicious" else 1.0 - finding.confidence


# -- scoring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """Accuracy and Brier score of verdicts, with how many samples of each label."""

    samples: int
    malicious: int
    accuracy: float
    balanced_accuracy: float
    brier: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "samples": self.samples,
            "malicious": self.malicious,
            "accuracy": round(self.accuracy, 3),
            "balanced_accuracy": round(self.balanced_accuracy, 3),
            "brier": round(self.brier, 3),
        }


def score(pairs: Sequence[tuple[Label, tuple[Label, float]]]) -> Score:
    """Score ``(truth, (predicted, probability of malicious))`` pairs: accuracy, balanced
    accuracy (the mean of the two labels' recalls) and Brier score (mean squared error of the
    probability against 1 for malicious, 0 for benign)."""
    if not pairs:
        return Score(0, 0, 0.0, 0.0, 0.0)
    recalls = []
    for wanted in ("malicious", "benign"):
        of_label = [predicted == truth for truth, (predicted, _) in pairs if truth == wanted]
        if of_label:
            recalls.append(sum(of_label) / len(of_label))
    return Score(
        samples=len(pairs),
        malicious=sum(truth == "malicious" for truth, _ in pairs),
        accuracy=sum(predicted == truth for truth, (predicted, _) in pairs) / len(pairs),
        balanced_accuracy=sum(recalls) / len(recalls),
        brier=sum((p - (truth == "malicious")) ** 2 for truth, (_, p) in pairs) / len(pairs),
    )


# -- the subject: the endpoint specialist ---------------------------------------------------------


async def endpoint_findings(
    samples: Sequence[TriageSample], attack: AttackKB, data_dir: Path
) -> list[Finding]:
    """The endpoint specialist's finding on each sample's events (its ACP method, in process,
    built-in analysis)."""
    settings = Settings(data_dir=data_dir)
    server = build_server(Endpoint(AgentDeps(settings=settings, attack=attack)), settings, None)
    findings = []
    for number, sample in enumerate(samples):
        frame = {
            "jsonrpc": "2.0",
            "method": "analyze_endpoint",
            "params": {"host": {"hostname": "triage-host"}, "events": list(sample.events)},
            "id": number,
        }
        raw = await server.dispatch(json.dumps(frame))
        reply = json.loads(raw or "{}")
        if "result" not in reply:
            raise RuntimeError(f"{sample.id}: the endpoint agent refused it: {reply.get('error')}")
        findings.append(Finding.model_validate(reply["result"]))
    return findings


# -- calibration ----------------------------------------------------------------------------------


def features_of(finding: Finding, high_impact: frozenset[str]) -> dict[str, float]:
    """The rule's features of one finding (:func:`orchestrator.verdict.agent_features`)."""
    return agent_features(signals_of(finding, high_impact))


def calibrate(
    rows: Sequence[tuple[Mapping[str, float], Label]],
    *,
    base: Weights = CALIBRATED,
    l2: float = L2,
    steps: int = 20_000,
    rate: float = 0.05,
) -> Weights:
    """Fit :data:`FITTED` by class-balanced, L2-regularised logistic regression (gradient
    descent from zero: deterministic) on ``(features, label)`` rows; the other weights are
    ``base``'s, intel, sighting and claim rescaled to the fitted detection weight."""
    counts = {label: sum(1 for _, y in rows if y == label) for label in ("malicious", "benign")}
    if not all(counts.values()):
        raise ValueError("calibration needs samples of both labels")
    balance = {label: len(rows) / (2 * n) for label, n in counts.items()}
    names = FITTED[1:]
    w = dict.fromkeys(FITTED, 0.0)
    for _ in range(steps):
        grad = dict.fromkeys(FITTED, 0.0)
        for features, label in rows:
            z = w["prior"] + sum(w[n] * features.get(n, 0.0) for n in names)
            error = (1.0 / (1.0 + math.exp(-z)) - (label == "malicious")) * balance[label]
            grad["prior"] += error
            for n in names:
                grad[n] += error * features.get(n, 0.0)
        for n in FITTED:
            penalty = l2 * w[n] if n != "prior" else 0.0
            w[n] -= rate * (grad[n] + penalty) / len(rows)
    scale = w["detection"] / base.detection if base.detection else 1.0
    return replace(
        base,
        prior=round(w["prior"], 3),
        detection=round(w["detection"], 3),
        impact=round(w["impact"], 3),
        decoded=round(w["decoded"], 3),
        intel=round(base.intel * scale, 3),
        sighting=round(base.sighting * scale, 3),
        claim=round(base.claim * scale, 3),
    )


def _judged(weights: Weights, high_impact: frozenset[str]) -> Callable[[Finding], Any]:
    def run(finding: Finding) -> tuple[Label, float]:
        judged = judge([finding], failed=0, high_impact=high_impact, weights=weights)
        label = _label(judged.verdict)
        return label, judged.probability

    return run


def report(
    samples: Sequence[TriageSample],
    findings: Sequence[Finding],
    *,
    weights: Weights = CALIBRATED,
    high_impact: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Baseline and rule, per split; the rule also leave-one-source-out (each technique folder
    judged with weights fitted on the other folders)."""
    impact = shipped_high_impact() if high_impact is None else high_impact
    rule = _judged(weights, impact)
    out: dict[str, Any] = {
        "weights": {name: getattr(weights, name) for name in Weights.__dataclass_fields__}
    }
    for split in ("tune", "test", "all"):
        chosen = [
            (s, f) for s, f in zip(samples, findings, strict=True) if split in ("all", s.split)
        ]
        out[split] = {
            "baseline": score([(s.label, severity_baseline(f)) for s, f in chosen]).as_dict(),
            "rule": score([(s.label, rule(f)) for s, f in chosen]).as_dict(),
        }
    rows = [(features_of(f, impact), s.label) for s, f in zip(samples, findings, strict=True)]
    held_out: list[tuple[Label, tuple[Label, float]]] = []
    for technique in sorted({s.technique for s in samples}):
        train = [r for r, s in zip(rows, samples, strict=True) if s.technique != technique]
        if len({label for _, label in train}) < 2:
            continue
        fitted = _judged(calibrate(train, base=weights), impact)
        held_out += [
            (s.label, fitted(f))
            for s, f in zip(samples, findings, strict=True)
            if s.technique == technique
        ]
    out["leave_one_source_out"] = {"rule": score(held_out).as_dict()}
    return out


def _print(result: Mapping[str, Any]) -> None:
    print(f"{'split':<22} {'subject':<9} {'n':>4} {'mal':>4} {'acc':>6} {'bal':>6} {'brier':>6}")
    for split in ("tune", "test", "all", "leave_one_source_out"):
        for subject, figures in result[split].items():
            print(
                f"{split:<22} {subject:<9} {figures['samples']:>4} {figures['malicious']:>4} "
                f"{figures['accuracy']:>6.3f} {figures['balanced_accuracy']:>6.3f} "
                f"{figures['brier']:>6.3f}"
            )


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, help="the shared data folder")
    parser.add_argument("--calibrate", action="store_true", help="fit the weights on tune")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(list(argv) if argv is not None else None)
    from evals.data import shared_data_root

    samples = load_triage_samples(args.data or shared_data_root())
    attack = AttackKB.load()
    with tempfile.TemporaryDirectory() as scratch:
        findings = asyncio.run(endpoint_findings(samples, attack, Path(scratch)))
    impact = shipped_high_impact()
    weights = CALIBRATED
    if args.calibrate:
        tune = [
            (features_of(f, impact), s.label)
            for s, f in zip(samples, findings, strict=True)
            if s.split == "tune"
        ]
        weights = calibrate(tune)
        print("fitted on tune:", {n: getattr(weights, n) for n in Weights.__dataclass_fields__})
    result = report(samples, findings, weights=weights, high_impact=impact)
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
