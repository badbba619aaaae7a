"""Labelled attack logs → techniques: how well the endpoint detections generalise.

Each shared folder ``logs/evtx_to_mitre_attack/jsonl/<tactic>/<technique>-<name>/*.jsonl`` is
one source labelled with one technique (``T1098.xxx`` means T1098). A source is scored on the
techniques found in its events: ``exact`` when the label is among them, ``hierarchy`` when a
found technique shares the label's parent technique (T1003 for T1003.001, and back).

Two analyses are scored, each in-sample and leave-one-source-out (LOSO):

- ``agent``: the endpoint agent's built-in rule scan (:func:`agents.endpoint.agent.scan_events`:
  Sigma rules over events and decoded layers, obfuscation, image and counting rules);
- ``engine``: the Sigma engine alone over the events.

LOSO: a rule that records the folders that informed it (AuroraSOC's own Sigma rules, in
``aurora_informed_by``; the counting rules, in
:data:`agents.endpoint.events.BURST_INFORMED_BY`) is set aside when that folder is scored.
SigmaHQ rules were not written on these logs. The old hand-written rules scored 19/30
(hierarchy) in-sample on the same folders, the baseline printed beside the figures.

Run: ``python -m evals.attack_logs [DATA_ROOT]`` (default: the shared data).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from agents.endpoint.agent import scan_events
from agents.endpoint.events import BURST_INFORMED_BY
from evals.data import shared_data_root
from tools.logs.windows import WinEvent, normalise_event
from tools.sigma.corpus import default_engine
from tools.sigma.engine import RuleInfo, SigmaEngine, level_rank

DATASET: Final[str] = "logs/evtx_to_mitre_attack/jsonl"
OLD_RULES_IN_SAMPLE: Final[tuple[int, int]] = (19, 30)
"""The hand-written rules' figure (hierarchy credit) on these folders before they were
replaced by Sigma rules: they were written on these logs, so it is in-sample only."""


@dataclass(frozen=True, slots=True)
class LogSource:
    """One labelled folder: its name, the technique it shows, its events."""

    folder: str
    technique: str
    events: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SourceScore:
    folder: str
    technique: str
    found: tuple[str, ...]
    exact: bool
    hierarchy: bool


def _label(folder: str) -> str:
    head = folder.split("-", 1)[0].strip()
    return head.removesuffix(".xxx").upper()


def load_sources(data_root: Path) -> list[LogSource]:
    """The labelled folders under ``data_root`` (the shared data directory), sorted."""
    base = data_root / DATASET
    sources: list[LogSource] = []
    for folder in sorted(p for p in base.glob("*/*") if p.is_dir()):
        events = [
            json.loads(line)
            for path in sorted(folder.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        sources.append(LogSource(folder.name, _label(folder.name), events))
    return sources


def score_source(source: LogSource, found_techniques: Iterable[str]) -> SourceScore:
    """Score the techniques found in a source against its label."""
    found = tuple(sorted({t.upper() for t in found_techniques}))
    parent = source.technique.split(".", 1)[0]
    return SourceScore(
        folder=source.folder,
        technique=source.technique,
        found=found,
        exact=source.technique in found,
        hierarchy=any(t.split(".", 1)[0] == parent for t in found),
    )


def informed_by(info: RuleInfo) -> tuple[str, ...]:
    """The shared folders an own rule says informed it."""
    value = info.custom.get("aurora_informed_by") or ()
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else (str(value),)


def _events(source: LogSource) -> list[WinEvent]:
    return [normalise_event(raw, index) for index, raw in enumerate(source.events)]


def found_by_engine(engine: SigmaEngine, source: LogSource) -> set[str]:
    events = _events(source)
    return {t for m in engine.match(events) if level_rank(m.level) >= 1 for t in m.techniques}


def found_by_agent(engine: SigmaEngine, source: LogSource, *, loso: bool) -> set[str]:
    scan = scan_events(_events(source), engine)
    return {
        t
        for hit in scan.rule_hits
        if not (loso and source.folder in BURST_INFORMED_BY.get(hit.rule.id, ()))
        for t in hit.rule.techniques
    }


def evaluate(data_root: Path, engine: SigmaEngine | None = None) -> dict[str, Any]:
    """Every figure of the suite: per analysis and mode, exact and hierarchy hits out of the
    sources, with the per-source detail."""
    engine = engine or default_engine()
    sources = load_sources(data_root)
    report: dict[str, Any] = {
        "sources": len(sources),
        "baseline_old_rules_in_sample": {
            "hierarchy": OLD_RULES_IN_SAMPLE[0],
            "of": OLD_RULES_IN_SAMPLE[1],
        },
        "rules": engine.stats.loaded,
        "skipped_rules": dict(engine.stats.skipped),
    }
    for analysis in ("agent", "engine"):
        for mode in ("in_sample", "loso"):
            scores: list[SourceScore] = []
            for source in sources:
                subject = engine
                if mode == "loso":
                    folder = source.folder

                    def informed(info: RuleInfo, folder: str = folder) -> bool:
                        return folder in informed_by(info)

                    subject = engine.without(informed)
                found = (
                    found_by_agent(subject, source, loso=mode == "loso")
                    if analysis == "agent"
                    else found_by_engine(subject, source)
                )
                scores.append(score_source(source, found))
            report[f"{analysis}_{mode}"] = {
                "exact": sum(s.exact for s in scores),
                "hierarchy": sum(s.hierarchy for s in scores),
                "of": len(scores),
                "per_source": [
                    {
                        "folder": s.folder,
                        "technique": s.technique,
                        "exact": s.exact,
                        "hierarchy": s.hierarchy,
                        "found": list(s.found),
                    }
                    for s in scores
                ],
            }
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else shared_data_root()
    if not (root / DATASET).is_dir():
        print("attack logs: shared data not found (pass its directory)", file=sys.stderr)
        return 2
    report = evaluate(root)
    old = report["baseline_old_rules_in_sample"]
    print(f"sources: {report['sources']}; rules: {report['rules']}")
    print(f"old hand-written rules, in-sample (recorded): {old['hierarchy']}/{old['of']}")
    for analysis in ("agent", "engine"):
        a, b = report[f"{analysis}_in_sample"], report[f"{analysis}_loso"]
        print(
            f"{analysis:6}  in-sample exact {a['exact']}/{a['of']} hierarchy "
            f"{a['hierarchy']}/{a['of']}  |  LOSO exact {b['exact']}/{b['of']} hierarchy "
            f"{b['hierarchy']}/{b['of']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
