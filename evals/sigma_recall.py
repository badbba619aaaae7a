"""Per-technique recall of the SigmaHQ corpus over labelled attack logs, through the real
pipeline: the ingest parser, the log store (embedded chDB) and the Sigma conversion.

The labelled logs are ``logs/evtx_to_mitre_attack/jsonl/<tactic>/<technique>-<name>/*.jsonl``
of the shared data (each folder: the Windows events of one attack technique). Every event is
parsed and stored with its technique as ``source``; every rule of the corpus that converts runs
once, grouped by source. For each technique folder the report says:

- ``detected``: at least one rule fired on at least one of its events;
- ``attributed``: a rule tagged with that technique (or its parent, or a sub-technique of it)
  fired on its events;
- ``event recall``: the share of its events at least one rule fired on.

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


def related(tag: str, technique: str) -> bool:
    return tag == technique or tag.split(".")[0] == technique.split(".")[0]


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
        rules = 0
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
        for source, ids in hit_ids.items():
            techniques[source].events_hit = len(ids)
        await store.drop()
        await store.close()
        print(f"rules run: {rules}", file=sys.stderr)
        return techniques


def render(techniques: dict[str, Technique]) -> str:
    lines = [f"{'technique folder':<62} {'events':>6} {'hit':>5} {'rules':>5} {'attr':>5}"]
    for entry in sorted(techniques.values(), key=lambda t: t.folder):
        lines.append(
            f"{entry.folder[:62]:<62} {entry.events:>6} {entry.events_hit:>5} "
            f"{len(entry.rules_fired):>5} {len(entry.attributed):>5}"
        )
    total = len(techniques)
    detected = sum(1 for t in techniques.values() if t.rules_fired)
    attributed = sum(1 for t in techniques.values() if t.attributed)
    events = sum(t.events for t in techniques.values())
    hit = sum(t.events_hit for t in techniques.values())
    lines.append(
        f"techniques detected {detected}/{total} ({detected / total:.3f}); attributed to the "
        f"labelled technique {attributed}/{total} ({attributed / total:.3f}); events hit "
        f"{hit}/{events} ({hit / max(events, 1):.3f})"
    )
    return "\n".join(lines)


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
                        "rules_fired": sorted(t.rules_fired),
                        "attributed": sorted(t.attributed),
                    }
                    for t in techniques.values()
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
