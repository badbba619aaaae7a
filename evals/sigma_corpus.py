"""Sigma corpus eval: convert every SigmaHQ rule and run each condition in chDB.

The corpus is ``sigma/sigma_rules_all.tgz`` in the shared data (3,754 rules), read in place. Each
rule ends in exactly one of:

- runnable: :func:`tools.sigma.convert_all` gave conditions (and, for a correlation, a
  ``GROUP BY`` query) that execute against an empty log table created with the schema's own
  ``create_table_sql`` in an embedded chDB (``SELECT count() ... WHERE <condition>``);
- rejected: AURORA-4222 at parse or conversion, grouped by pySigma's error (or our reason);
- failed to run: the SQL was produced but ClickHouse refused it (a bug to fix: reported by error).

Printed: totals, the conversion rate overall and per log source (``product/category`` or
``product/service``), and the rejection reasons.

Usage::

    python -m evals.sigma_corpus                      # whole corpus
    python -m evals.sigma_corpus --limit 300          # first 300 rules
    python -m evals.sigma_corpus --json report.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import SigmaValidationFailed
from core.logstore.schema import create_table_sql
from evals.data import shared_data_root
from tools.sigma import Conversion, convert_all

CORPUS_RELATIVE_PATH = Path("sigma/sigma_rules_all.tgz")
DATABASE, TABLE = "sigma_eval", "logs"
QUOTED_TABLE = f"`{DATABASE}`.`{TABLE}`"
Outcome = Literal["runnable", "rejected", "failed"]


def default_corpus_path() -> Path:
    """The corpus in the shared data: ``$AURORA_SHARED_DATA`` or ``../shared/data``."""
    root = shared_data_root()
    return root / CORPUS_RELATIVE_PATH


def iter_rules(path: Path, limit: int | None = None) -> Iterator[tuple[str, str]]:
    """(member name, YAML text) of every ``.yml`` rule in the tarball, in archive order."""
    with tarfile.open(path, "r:gz") as archive:
        count = 0
        for member in archive:
            if not member.isfile() or not member.name.endswith((".yml", ".yaml")):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            yield member.name, handle.read().decode("utf-8")
            count += 1
            if limit is not None and count >= limit:
                return


_LOGSOURCE = re.compile(r"^logsource:\s*\n((?:[ \t]+.*\n?)+)", re.MULTILINE)


def logsource_of(text: str) -> str:
    """``product/category`` (or ``product/service``) read from the YAML, for rules pySigma
    rejects too; ``correlation`` for a rule without a log source."""
    match = _LOGSOURCE.search(text)
    if match is None:
        return "correlation" if "correlation:" in text else "-/-"
    values: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("product", "category", "service"):
            values[key] = value.split("#", 1)[0].strip().strip("'\"")
    return f"{values.get('product', '-')}/{values.get('category') or values.get('service', '-')}"


@dataclass
class Result:
    name: str
    logsource: str
    outcome: Outcome
    reason: str = ""
    queries: int = 0


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    def by_logsource(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for r in self.results:
            table[r.logsource][r.outcome] += 1
        return dict(table)

    def reasons(self, outcome: Outcome) -> Counter[str]:
        return Counter(r.reason for r in self.results if r.outcome == outcome)

    def as_dict(self) -> dict[str, Any]:
        total = len(self.results)
        return {
            "total": total,
            "runnable": self.count("runnable"),
            "rejected": self.count("rejected"),
            "failed": self.count("failed"),
            "rate": self.count("runnable") / total if total else 0.0,
            "by_logsource": {k: dict(v) for k, v in sorted(self.by_logsource().items())},
            "rejected_reasons": dict(self.reasons("rejected").most_common()),
            "failed_reasons": dict(self.reasons("failed").most_common()),
        }


def reason_of(error: SigmaValidationFailed) -> str:
    """A rejection grouped by pySigma's exception and message, with rule-specific values cut."""
    issues = error.detail.get("errors", []) if isinstance(error.detail, dict) else []
    if not issues:
        return error.message
    first = issues[0]
    message = re.sub(r"'[^']*'", "'…'", str(first.get("message", "")))
    return f"{first.get('type', 'error')}: {message}"[:160]


def statements(conversion: Conversion) -> list[str]:
    if conversion.correlation is not None:
        return [conversion.correlation.query(QUOTED_TABLE, conversion.condition)]
    return [conversion.count_sql(QUOTED_TABLE)]


def run(path: Path, limit: int | None = None) -> Report:
    """Convert and execute every rule of the corpus at ``path``."""
    import clickhouse_connect

    report = Report()
    with tempfile.TemporaryDirectory(prefix="aurora-sigma-eval-") as data:
        client = clickhouse_connect.get_client(interface="chdb", path=data)
        client.command(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
        client.command(create_table_sql(DATABASE, TABLE, retention_days=0))
        try:
            for name, text in iter_rules(path, limit):
                report.results.append(evaluate(client, name, text))
        finally:
            client.close()
    return report


def evaluate(client: Any, name: str, text: str) -> Result:
    """One rule's outcome."""
    logsource = logsource_of(text)
    try:
        conversions = convert_all(text)
    except SigmaValidationFailed as err:
        return Result(name, logsource, "rejected", reason_of(err))
    queries = [sql for conversion in conversions for sql in statements(conversion)]
    for sql in queries:
        try:
            client.query(sql)
        except Exception as err:  # any ClickHouse refusal is this eval's finding
            first_line = re.sub(r"\s+", " ", str(err))[:200]
            return Result(name, logsource, "failed", first_line, len(queries))
    return Result(name, logsource, "runnable", queries=len(queries))


def render(report: Report) -> str:
    summary = report.as_dict()
    lines = [
        f"rules: {summary['total']}  runnable: {summary['runnable']}  "
        f"rejected: {summary['rejected']}  failed to run: {summary['failed']}  "
        f"conversion rate: {summary['rate']:.1%}",
        "",
        "per log source (runnable / total):",
    ]
    table = sorted(report.by_logsource().items(), key=lambda item: -sum(item[1].values()))
    for logsource, counts in table:
        total = sum(counts.values())
        runnable = counts["runnable"]
        lines.append(f"  {logsource:<45} {runnable:>5} / {total:<5} {runnable / total:6.1%}")
    outcomes: tuple[Outcome, ...] = ("rejected", "failed")
    for outcome in outcomes:
        reasons = report.reasons(outcome)
        if reasons:
            lines += ["", f"{outcome} by reason:"]
            lines += [f"  {n:>5}  {reason}" for reason, n in reasons.most_common()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m evals.sigma_corpus``."""
    parser = argparse.ArgumentParser(description="Convert the SigmaHQ corpus and run it in chDB.")
    parser.add_argument("--corpus", type=Path, default=None, help="sigma_rules_all.tgz")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rules")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)
    path: Path = args.corpus or default_corpus_path()
    if not path.is_file():
        print(f"corpus not found: {path} (set AURORA_SHARED_DATA or --corpus)", file=sys.stderr)
        return 2
    report = run(path, args.limit)
    print(render(report))
    if args.json:
        payload = {"corpus": CORPUS_RELATIVE_PATH.as_posix(), **report.as_dict()}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
