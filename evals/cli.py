"""``aurora eval``: list the suites, run one, compare two runs, gate a release on the figures.

    aurora eval list
    aurora eval run SUITE [--subject tool|specialist|orchestrator] [--agent NAME]
                          [--model M --base-url URL [--api-key-env VAR]] [--prompt-version vN]
                          [--full | --limit N] [--log-dir DIR] [--json FILE]
    aurora eval compare LOG_A LOG_B
    aurora eval gate [--thresholds FILE] [--full] [--ci]
    aurora eval fetch --base-url URL [--dest DIR] [--dataset NAME ...]
    aurora eval verify [--data DIR]

Installed with the ``evals`` extra (``pip install -e '.[evals]'``). The command line is
declared in :mod:`gateway.cli` (so that ``aurora`` starts without importing inspect_ai); the
commands are here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from core.settings import Settings
from evals import datasets
from evals.compare import compare, load_run, render
from evals.data import ENV, DataMissing, shared_data_root
from evals.runner import DEFAULT_LOG_DIR, RunOptions, RunResult, run_async
from evals.subjects import Backend
from evals.suites import SUITES

SHOWN_FIGURES = (
    "samples",
    "score",
    "precision",
    "recall",
    "f1",
    "precision_hierarchy",
    "recall_hierarchy",
    "f1_hierarchy",
    "accuracy",
    "brier",
    "attack_success_rate",
    "false_block_rate",
    "detector_recall",
    "schema_validity",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens",
    "cost",
)


def backend_of(args: argparse.Namespace) -> Backend:
    """The run's backend from the command line."""
    if not args.model and not args.base_url:
        return Backend()
    if not args.base_url:
        raise ValueError("--model needs --base-url (the OpenAI-compatible endpoint)")
    return Backend(
        kind="llm",
        model=args.model,
        base_url=args.base_url,
        api_key=os.environ.get(args.api_key_env) or None,
        price_per_million=args.price_per_million,
    )


def format_figures(result: RunResult) -> str:
    """A run's figures as the command prints them."""
    lines = [
        f"suite {result.suite}, subject {result.subject}: {result.cases} cases "
        f"({result.errors} failed) in {result.seconds:.1f} s"
    ]
    known = [name for name in SHOWN_FIGURES if name in result.figures]
    others = sorted(set(result.figures) - set(SHOWN_FIGURES))
    for name in [*known[:2], *others, *known[2:]]:
        lines.append(f"  {name:<22}{result.figures[name]:>12.4f}")
    lines += [f"log: {result.log}", "view: inspect view --log-dir <the log's folder>"]
    return "\n".join(lines)


async def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    for suite in SUITES.values():
        print(f"{suite.name:<22}{suite.description}")
        agent = f"; specialist: {suite.agent}" if suite.agent else ""
        print(f"{'':<22}subjects: {', '.join(suite.subjects)}{agent}; fast subset {suite.fast}")
    return 0


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        options = RunOptions(
            suite=args.suite,
            subject=args.subject,
            agent=args.agent,
            backend=backend_of(args),
            prompt_version=args.prompt_version,
            full=args.full,
            limit=args.limit,
            log_dir=args.log_dir,
            running_agents=args.running_agents,
            max_samples=args.max_samples,
        )
        result = await run_async(options)
    except (ValueError, DataMissing) as err:
        print(f"aurora eval: {err}", file=sys.stderr)
        return 2
    print(format_figures(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1) + "\n", encoding="utf-8")
    return 0


async def cmd_compare(settings: Settings, args: argparse.Namespace) -> int:
    try:
        comparison = compare(await load_run(args.a), await load_run(args.b))
    except (ValueError, OSError) as err:
        print(f"aurora eval compare: {err}", file=sys.stderr)
        return 2
    print(render(comparison, show=args.show))
    return 0


@dataclass(frozen=True, slots=True)
class Gate:
    """One line of the thresholds file: a run and the bounds its figures must keep."""

    suite: str
    subject: str = "tool"
    agent: str | None = None
    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)
    ci: bool = True
    """Run by CI's gate (``--ci``); the others take minutes and run on demand."""

    def failures(self, figures: dict[str, float]) -> list[str]:
        """Each bound ``figures`` break (a missing figure breaks its bound)."""
        broken = []
        for name, bound in self.minimum.items():
            value = figures.get(name)
            if value is None or value < bound:
                broken.append(f"{name} {value} < {bound}")
        for name, bound in self.maximum.items():
            value = figures.get(name)
            if value is None or value > bound:
                broken.append(f"{name} {value} > {bound}")
        return broken


def default_thresholds() -> Path:
    return Path(str(files("evals").joinpath("thresholds.toml")))


def load_gates(path: Path) -> list[Gate]:
    """The gates of a thresholds file (``[[gate]]`` tables: suite, subject, agent, min, max)."""
    raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    gates = []
    for item in raw.get("gate", []):
        suite = str(item["suite"])
        if suite not in SUITES:
            raise ValueError(f"{path}: unknown suite {suite!r}")
        gates.append(
            Gate(
                suite=suite,
                subject=str(item.get("subject", "tool")),
                agent=item.get("agent"),
                minimum={k: float(v) for k, v in (item.get("min") or {}).items()},
                maximum={k: float(v) for k, v in (item.get("max") or {}).items()},
                ci=bool(item.get("ci", True)),
            )
        )
    return gates


async def run_gates(
    gates: list[Gate], *, full: bool = False, log_dir: Path = DEFAULT_LOG_DIR
) -> list[tuple[Gate, RunResult, list[str]]]:
    """Run every gate on the built-in backend; each with its result and broken bounds."""
    outcomes = []
    for gate in gates:
        result = await run_async(
            RunOptions(
                suite=gate.suite,
                subject=gate.subject,  # type: ignore[arg-type]
                agent=gate.agent,
                full=full,
                log_dir=log_dir,
            )
        )
        outcomes.append((gate, result, gate.failures(result.figures)))
    return outcomes


async def cmd_gate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        gates = load_gates(args.thresholds or default_thresholds())
        if args.ci:
            gates = [gate for gate in gates if gate.ci]
        outcomes = await run_gates(gates, full=args.full, log_dir=args.log_dir)
    except (ValueError, DataMissing) as err:
        print(f"aurora eval gate: {err}", file=sys.stderr)
        return 2
    failed = 0
    for gate, _result, broken in outcomes:
        mark = "FAIL" if broken else "ok"
        print(f"{mark:<5}{gate.suite} ({gate.subject}): " + (", ".join(broken) or "within bounds"))
        failed += bool(broken)
    return 1 if failed else 0


async def cmd_fetch(settings: Settings, args: argparse.Namespace) -> int:
    dest = args.dest or (
        Path(os.environ[ENV]) if os.environ.get(ENV) else settings.data_dir / "eval-data"
    )
    try:
        fetched = await asyncio.to_thread(datasets.fetch, args.base_url, dest, args.dataset or None)
    except (datasets.FetchRefused, OSError) as err:
        print(f"aurora eval fetch: {err}", file=sys.stderr)
        return 1
    for name, count in fetched.items():
        print(f"{name}: {count} file(s) fetched, every file checked against its SHA-256")
    print(f"datasets in {dest}; point the suites at it with: export {ENV}={dest}")
    return 0


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    root = args.data or shared_data_root()
    listed = datasets.manifest()
    problems = await asyncio.to_thread(datasets.verify, root, listed)
    for dataset in listed:
        wrong = problems[dataset.name]
        state = "ok" if not wrong else f"{len(wrong)} of {len(dataset.files)} files wrong"
        print(f"{dataset.name:<18}{state:<28}{dataset.upstream} ({dataset.licence})")
        for line in wrong[:5]:
            print(f"    {line}")
    return 1 if any(problems.values()) else 0
