"""SigmaHQ's regression pairs scored through the real pipeline: each rule against the real
events it must match.

The pairs are ``sigma/regression_index.json`` and ``sigma/regression/`` of the shared data: 60
SigmaHQ rules, each with a positive test (the Windows events, as the ``evtx`` package writes
them, that the reference implementation matches) and the expected match count. Every event is
read by the ingest parser (:func:`tools.logs.parse_object`, format detected as the gateway
does) and stored in the log store on embedded chDB, tagged with its pair; every rule is
converted (:func:`tools.sigma.convert`, scoped to its logsource) and its condition counted over
its pair's events. A pair is ``ok`` when the rule matches exactly as many events as expected.
Where the index gives no count (SigmaHQ's runner only asks that the rule match), every event of
the positive test is expected to match: each was captured as a match.

Also reported, not scored: ``cross``, the events of the other pairs the rule matches (the 60
samples are all Sysmon events of other detections: a rule firing on many of them is broad).

:func:`score_pairs_engine` scores the same pairs through the in-process engine
(:class:`tools.sigma.engine.SigmaEngine`, which the endpoint analysis runs): each rule alone in an
engine, matched on every pair's events, as given (the nested layout) or rewritten in the flat
layout of the shared attack logs (``flat``), which must not change a match.

    .venv/bin/python -m evals.sigma_regression [--data DIR] [--json report.json] [--limit N]
        [--engine [--flat]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import AuroraError
from core.logstore.store import LogStore
from core.settings import Settings
from evals.data import shared_data_root
from tools.logs import EventRejected, parse_object
from tools.logs.windows import read_windows
from tools.sigma import convert
from tools.sigma.engine import EventView, SigmaEngine, view_of

INDEX = Path("sigma/regression_index.json")


@dataclass(frozen=True, slots=True)
class RegressionPair:
    """One SigmaHQ rule and the events of its positive test."""

    rule_id: str
    title: str
    rule_path: Path
    events_path: Path
    expected: int
    """The index's match count, or (none given) the number of events in the test."""
    count_given: bool
    """Whether the index gave the count."""
    logsource: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class PairResult:
    """How one pair scored: ``ok`` when the rule matched exactly ``expected`` of its events."""

    rule_id: str
    title: str
    expected: int
    matched: int
    error: str | None
    """Why the pair could not be scored (the rule was refused, an event was rejected)."""
    ok: bool
    cross: int = 0
    """Events of the other pairs the rule matched."""
    logsource: str = ""


def default_data_root() -> Path:
    """The shared data: ``$AURORA_SHARED_DATA`` or ``../shared/data`` beside the project."""
    return shared_data_root()


def read_events(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(text, object) of each JSON object in ``path``: one, or several one after another."""
    decoder = json.JSONDecoder()
    content = path.read_text(encoding="utf-8-sig")
    events: list[tuple[str, dict[str, Any]]] = []
    position = 0
    while True:
        while position < len(content) and content[position].isspace():
            position += 1
        if position >= len(content):
            return events
        start = position
        value, position = decoder.raw_decode(content, position)
        if not isinstance(value, dict):
            raise ValueError(f"{path.name}: expected JSON objects, found {type(value).__name__}")
        events.append((content[start:position], value))


def load_pairs(data_root: Path) -> list[RegressionPair]:
    """Every pair of the index under ``data_root`` (the shared data directory), in index
    order; one per positive test (each of the 60 rules has one)."""
    sigma = data_root / "sigma"
    index = json.loads((data_root / INDEX).read_text(encoding="utf-8"))
    pairs: list[RegressionPair] = []
    for entry in index:
        for test in entry["tests"]:
            events_path = sigma / test["json_path"]
            count = test.get("match_count")
            pairs.append(
                RegressionPair(
                    rule_id=entry["rule_id"],
                    title=entry["rule_title"],
                    rule_path=sigma / entry["rule_path"],
                    events_path=events_path,
                    expected=int(count) if count is not None else len(read_events(events_path)),
                    count_given=count is not None,
                    logsource=dict(entry["logsource"]),
                )
            )
    return pairs


def _logsource(pair: RegressionPair) -> str:
    parts = (pair.logsource.get(k) for k in ("product", "category", "service"))
    return "/".join(part or "-" for part in parts)


async def score_pairs(pairs: Sequence[RegressionPair], *, workdir: Path) -> list[PairResult]:
    """Score ``pairs`` through the ingest parser, a log store on embedded chDB and the
    converted, logsource-scoped rules. ``workdir`` is chDB's data path (a process may open only
    one: give the one it already uses, if any); the pairs get a database of their own there,
    dropped afterwards."""
    settings = Settings(
        data_dir=workdir,
        chdb_path=workdir,
        clickhouse_database=f"regression_{uuid.uuid4().hex[:8]}",
        log_retention_days=0,
    )
    store = LogStore.from_settings(settings)
    await store.start()
    try:
        rejected: dict[int, str] = {}
        for number, pair in enumerate(pairs):
            try:
                events = [
                    parse_object(obj, raw=text, source=f"pair-{number}")
                    for text, obj in read_events(pair.events_path)
                ]
            except (EventRejected, ValueError) as err:
                rejected[number] = f"event rejected: {err}"
                continue
            await store.insert(events)
        results: list[PairResult] = []
        for number, pair in enumerate(pairs):
            results.append(await _score(store, number, pair, rejected.get(number)))
        return results
    finally:
        await store.drop()
        await store.close()


async def _score(
    store: LogStore, number: int, pair: RegressionPair, rejected: str | None
) -> PairResult:
    def failed(error: str) -> PairResult:
        return PairResult(
            pair.rule_id, pair.title, pair.expected, 0, error, False, 0, _logsource(pair)
        )

    if rejected is not None:
        return failed(rejected)
    try:
        conversion = convert(pair.rule_path.read_text(encoding="utf-8"))
    except AuroraError as err:
        return failed(f"{err.code}: {err.message}: {err.detail}")
    if conversion.logsource_error is not None:
        return failed(conversion.logsource_error)
    result = await store.query(
        f"SELECT source = {{own:String}} AS own, count() FROM {store.table}"
        f" WHERE ({conversion.condition}) GROUP BY own",
        {"own": f"pair-{number}"},
    )
    counts = {bool(own): int(count) for own, count in result.result_rows}
    matched = counts.get(True, 0)
    return PairResult(
        rule_id=pair.rule_id,
        title=pair.title,
        expected=pair.expected,
        matched=matched,
        error=None,
        ok=matched == pair.expected,
        cross=counts.get(False, 0),
        logsource=_logsource(pair),
    )


def flat_layout(obj: dict[str, Any]) -> dict[str, Any]:
    """A Windows event in the flat layout (``EventID``, ``Channel``, ``Provider_Name``... and the
    event data side by side), the names :func:`tools.logs.windows.read_windows` gives both."""
    return dict(read_windows(obj).view)


def score_pairs_engine(pairs: Sequence[RegressionPair], *, flat: bool = False) -> list[PairResult]:
    """Score ``pairs`` through the in-process engine: each pair's rule loaded alone into a
    :class:`SigmaEngine` and matched on every pair's events (``flat``: rewritten by
    :func:`flat_layout`). A rule the engine does not load is an error with the reason it was
    skipped (a logsource it does not evaluate, an unsupported modifier); an event that is not a
    Windows event is an error of its pair."""
    views: list[tuple[int, EventView]] = []
    rejected: dict[int, str] = {}
    for number, pair in enumerate(pairs):
        try:
            objects = [obj for _, obj in read_events(pair.events_path)]
            pair_views = [
                view_of(flat_layout(o) if flat else o, len(views) + i)
                for i, o in enumerate(objects)
            ]
        except ValueError as err:
            rejected[number] = f"event rejected: {err}"
            continue
        views += [(number, view) for view in pair_views]
    results: list[PairResult] = []
    for number, pair in enumerate(pairs):

        def failed(error: str, pair: RegressionPair = pair) -> PairResult:
            return PairResult(
                pair.rule_id, pair.title, pair.expected, 0, error, False, 0, _logsource(pair)
            )

        if number in rejected:
            results.append(failed(rejected[number]))
            continue
        engine = SigmaEngine.load([pair.rule_path])
        if not engine.stats.loaded:
            reasons = ", ".join(sorted(engine.stats.skipped)) or "no rule"
            results.append(failed(f"skipped by the engine: {reasons}"))
            continue
        own = cross = 0
        for owner, view in views:
            if engine.match_view(view):
                if owner == number:
                    own += 1
                else:
                    cross += 1
        results.append(
            PairResult(
                rule_id=pair.rule_id,
                title=pair.title,
                expected=pair.expected,
                matched=own,
                error=None,
                ok=own == pair.expected,
                cross=cross,
                logsource=_logsource(pair),
            )
        )
    return results


def render(results: Sequence[PairResult]) -> str:
    lines = [f"{'rule':<70} {'logsource':<28} {'exp':>3} {'got':>3} {'cross':>5}"]
    for r in results:
        mark = "ok" if r.ok else "FAIL"
        lines.append(
            f"{r.title[:70]:<70} {r.logsource[:28]:<28} {r.expected:>3} {r.matched:>3}"
            f" {r.cross:>5}  {mark}{'  ' + r.error if r.error else ''}"
        )
    ok = sum(r.ok for r in results)
    fired = sum(r.matched > 0 for r in results)
    lines.append(
        f"pairs ok (matched == expected) {ok}/{len(results)}; rules that fired on their events"
        f" {fired}/{len(results)}; errors {sum(r.error is not None for r in results)}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data directory")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pairs")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="chDB's data path (default: a temporary one)"
    )
    parser.add_argument(
        "--engine", action="store_true", help="score through the in-process engine, not chDB"
    )
    parser.add_argument(
        "--flat", action="store_true", help="with --engine: events in the flat layout"
    )
    args = parser.parse_args(argv)
    data = args.data or default_data_root()
    if not (data / INDEX).is_file():
        print(f"no regression index at {data / INDEX}", file=sys.stderr)
        return 2
    pairs = load_pairs(data)[: args.limit]
    started = time.perf_counter()
    if args.engine:
        results = score_pairs_engine(pairs, flat=args.flat)
    elif args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(score_pairs(pairs, workdir=args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="aurora-regression-") as scratch:
            results = asyncio.run(score_pairs(pairs, workdir=Path(scratch)))
    print(render(results))
    print(f"took {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
