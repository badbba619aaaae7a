"""Per-technique recall of the SigmaHQ corpus over labelled attack logs, through the real
pipeline: the ingest parser, the log store (embedded chDB) and the Sigma conversion.

The labelled logs are ``logs/evtx_to_mitre_attack/jsonl/<tactic>/<technique>-<name>/*.jsonl``
of the shared data (each folder: the Windows events of one attack technique). Every event is
parsed and stored with its technique as ``source``; every rule of the corpus that converts runs
once, grouped by source. Each rule's condition is scoped to its logsource
(:mod:`tools.sigma.logsource`); a rule whose logsource maps to nothing matches no event and is
not run. For each technique folder the report says:

- ``detected``: a rule tagged with the folder's technique, its parent or one of its
  sub-techniques (:func:`related`) fired on at least one of its events;
- ``unattributed``: the rules that fired on its events without such a tag, reported apart: a
  rule firing is no detection of the technique unless it says it is about that technique;
- ``event recall``: the share of its events an attributed rule fired on (and, apart, any rule).

    .venv/bin/python -m evals.sigma_recall [--data DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.errors import SigmaValidationFailed
from core.logstore.store import LogStore
from core.settings import Settings
from evals.sigma_corpus import default_corpus_path, iter_rules
from tools.logs import parse_payload
from tools.sigma import convert

TECHNIQUE = re.compile(r"^(T\d{4}(?:\.\d{3})?)")


@dataclass(slots=True)
class Technique:
    technique: str
    folder: str
    events: int = 0
    rules_fired: set[str] = field(default_factory=set)
    attributed: set[str] = field(default_factory=set)
    events_hit: int = 0
    """Events any rule fired on."""
    events_attributed: int = 0
    """Events an attributed rule fired on."""

    @property
    def detected(self) -> bool:
        return bool(self.attributed)

    @property
    def unattributed(self) -> set[str]:
        return self.rules_fired - self.attributed


def related(tag: str, technique: str) -> bool:
    """Whether a rule's ATT&CK tag credits ``technique``: the same technique, its parent
    (``T1059`` for ``T1059.001``) or one of its sub-techniques; a sibling sub-technique
    (``T1059.003`` for ``T1059.001``) is not credited."""
    tag, technique = tag.upper(), technique.upper()
    return tag in (technique, technique.split(".")[0]) or tag.split(".")[0] == technique


async def evaluate(data: Path, corpus: Path, limit: int | None) -> dict[str, Technique]:
    root = data / "logs" / "evtx_to_mitre_attack" / "jsonl"
    with tempfile.TemporaryDirectory(prefix="aurora-recall-") as scratch:
        settings = Settings(
            data_dir=Path(scratch),
            chdb_path=Path(scratch) / "chdb",
            clickhouse_database=f"recall_{uuid.uuid4().hex[:8]}",
            log_retention_days=0,
        )
        store = LogStore.from_settings(settings)
        await store.start()
        techniques: dict[str, Technique] = {}
        for path in sorted(root.rglob("*.jsonl")):
            folder = path.parent.name
            match = TECHNIQUE.match(folder)
            if match is None:
                continue
            key = folder
            entry = techniques.setdefault(key, Technique(match.group(1), folder))
            parsed = parse_payload(
                path.read_bytes(), content_type="application/x-ndjson", source=key, format=None
            )
            await store.insert(parsed.events)
            entry.events += len(parsed.events)
        start = datetime(1990, 1, 1, tzinfo=UTC)
        end = datetime.now(UTC) + timedelta(days=1)
        hit_ids: dict[str, set[str]] = defaultdict(set)
        attributed_ids: dict[str, set[str]] = defaultdict(set)
        rules = unmapped = 0
        for _, text in iter_rules(corpus, limit):
            try:
                conversion = convert(text)
            except SigmaValidationFailed:
                continue
            if conversion.correlation is not None or conversion.meta.product not in {
                "windows",
                None,
            }:
                continue
            if conversion.logsource_error is not None:
                unmapped += 1  # its condition matches no event
                continue
            rules += 1
            result = await store.query(
                f"SELECT source, groupArray(toString(id)) FROM {store.table} "
                f"WHERE ({conversion.condition}) AND timestamp >= {{s:DateTime64(3)}} "
                "AND timestamp < {e:DateTime64(3)} GROUP BY source",
                {"s": start.replace(tzinfo=None), "e": end.replace(tzinfo=None)},
            )
            title = conversion.meta.title
            for source, ids in result.result_rows:
                entry = techniques[source]
                entry.rules_fired.add(title)
                hit_ids[source].update(ids)
                if any(related(t, entry.technique) for t in conversion.meta.techniques):
                    entry.attributed.add(title)
                    attributed_ids[source].update(ids)
        for source, ids in hit_ids.items():
            techniques[source].events_hit = len(ids)
            techniques[source].events_attributed = len(attributed_ids[source])
        await store.drop()
        await store.close()
        print(
            f"rules run: {rules}; not run (logsource maps to nothing): {unmapped}", file=sys.stderr
        )
        return techniques


def render(techniques: dict[str, Technique]) -> str:
    lines = [
        f"{'technique folder':<62} {'events':>6} {'hit':>5} {'attr hit':>8} "
        f"{'rules':>5} {'attr':>5} {'unattr':>6}"
    ]
    for entry in sorted(techniques.values(), key=lambda t: t.folder):
        lines.append(
            f"{entry.folder[:62]:<62} {entry.events:>6} {entry.events_hit:>5} "
            f"{entry.events_attributed:>8} {len(entry.rules_fired):>5} "
            f"{len(entry.attributed):>5} {len(entry.unattributed):>6}"
        )
    summary = summarise(techniques)
    total = summary["techniques"]
    lines.append(
        f"techniques detected (an attributed rule fired) {summary['detected']}/{total}"
        f" ({summary['detected'] / max(total, 1):.3f}); only unattributed rules fired"
        f" {summary['unattributed_only']}/{total}; nothing fired {summary['silent']}/{total}"
    )
    lines.append(
        f"events hit by attributed rules {summary['events_attributed']}/{summary['events']}"
        f" ({summary['events_attributed'] / max(summary['events'], 1):.3f}); by any rule"
        f" {summary['events_hit']}/{summary['events']}"
        f" ({summary['events_hit'] / max(summary['events'], 1):.3f})"
    )
    lines.append(
        f"unattributed firing: {summary['unattributed_rules']} distinct rules,"
        f" {summary['unattributed_pairs']} (rule, technique folder) pairs"
    )
    return "\n".join(lines)


def summarise(techniques: dict[str, Technique]) -> dict[str, int]:
    """The report's totals: techniques detected (attributed), with only unattributed firing,
    with nothing firing; events; unattributed rules and (rule, folder) pairs."""
    entries = list(techniques.values())
    return {
        "techniques": len(entries),
        "detected": sum(t.detected for t in entries),
        "unattributed_only": sum(bool(t.rules_fired) and not t.detected for t in entries),
        "silent": sum(not t.rules_fired for t in entries),
        "events": sum(t.events for t in entries),
        "events_hit": sum(t.events_hit for t in entries),
        "events_attributed": sum(t.events_attributed for t in entries),
        "unattributed_rules": len(set().union(*(t.unattributed for t in entries))),
        "unattributed_pairs": sum(len(t.unattributed) for t in entries),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data directory")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N rules")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    corpus = (
        default_corpus_path() if args.data is None else args.data / "sigma" / "sigma_rules_all.tgz"
    )
    data = args.data or corpus.parent.parent
    if not corpus.exists():
        print(f"no Sigma corpus at {corpus}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    techniques = asyncio.run(evaluate(data, corpus, args.limit))
    print(render(techniques))
    print(f"took {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    t.folder: {
                        "technique": t.technique,
                        "events": t.events,
                        "events_hit": t.events_hit,
                        "events_attributed": t.events_attributed,
                        "detected": t.detected,
                        "attributed": sorted(t.attributed),
                        "unattributed": sorted(t.unattributed),
                    }
                    for t in techniques.values()
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
