"""Run a suite on a subject with inspect_ai, and read the figures back from its log.

Each run is one inspect_ai task: the suite's cases are its dataset, a solver asks the subject
(a tool in this process, a specialist over ACP, the orchestrator) and keeps the answer as the
sample's output, and a scorer turns the answer into the sample's figures; the task's metric
aggregates them (:func:`evals.scoring.summary`). The log is inspect_ai's own (``inspect view
--log-dir DIR`` shows it), with the run's subject, backend, prompt version and the git commit in
its metadata, so that two runs can be compared case by case (:mod:`evals.compare`).

The subject's model, when there is one, is reached by the platform's own OpenAI-compatible
client (the code path production runs), so inspect_ai's own model is ``none``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspect_ai import Task, eval_async
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import SampleScore, Score, Target, metric, scorer
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util import display_type

from evals.data import shared_data_root
from evals.scoring import summary
from evals.subjects import Answer, Backend, Fleet, SubjectKind
from evals.suites import SUITES, Case, Suite, fixed_order

DEFAULT_LOG_DIR = Path("eval-logs")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """One ``aurora eval run``."""

    suite: str
    subject: SubjectKind = "tool"
    agent: str | None = None
    """The specialist of the ``specialist`` subject (default: the suite's)."""
    backend: Backend = field(default_factory=Backend)
    prompt_version: str | None = None
    full: bool = False
    """All the cases; else the suite's fast subset."""
    limit: int | None = None
    log_dir: Path = DEFAULT_LOG_DIR
    data_root: Path | None = None
    running_agents: bool = False
    """Call the agents the platform runs (its settings) instead of starting them for the run."""
    max_samples: int = 8
    """Cases in flight at once."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run measured, and where its log is."""

    suite: str
    subject: str
    figures: dict[str, float]
    log: str
    cases: int
    errors: int
    seconds: float


def select(suite: Suite, options: RunOptions) -> list[Case]:
    """The cases a run scores: the fast subset or all, then at most ``limit``."""
    cases = suite.cases(options.data_root or shared_data_root())
    if not cases:
        raise ValueError(f"suite {suite.name} has no cases")
    chosen = fixed_order(cases)
    if not options.full:
        chosen = chosen[: suite.fast]
    if options.limit is not None:
        chosen = chosen[: options.limit]
    return chosen


def as_json(value: Any) -> str:
    """``value`` as a sample's output or target text in the log."""
    return json.dumps(value, sort_keys=True, default=str)


def git_commit() -> str | None:
    """The checkout's commit, when the code runs from one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH, no input
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


class Asker:
    """Answers one case with the run's subject."""

    def __init__(
        self, suite: Suite, options: RunOptions, fleet: Fleet | None, backend: Backend
    ) -> None:
        self.suite = suite
        self.options = options
        self.fleet = fleet
        self.backend = backend
        self.errors = 0
        """Cases whose subject failed (no answer, or an error instead of one)."""
        self.agent = options.agent or suite.agent

    async def answer(self, case: Case) -> tuple[dict[str, Any], Answer]:
        result, got = await self._answer(case)
        if got.error is not None:
            self.errors += 1
        return result, got

    async def _answer(self, case: Case) -> tuple[dict[str, Any], Answer]:
        subject = self.options.subject
        if subject == "tool":
            started = time.perf_counter()
            try:
                result = await self.suite.tool(case)
            except Exception as err:  # recorded as the sample's failure
                latency = (time.perf_counter() - started) * 1000
                return self.suite.nothing(case), Answer(None, False, latency, error=repr(err))
            return result, Answer(result, True, (time.perf_counter() - started) * 1000)
        if subject == "specialist" and self.suite.own_specialist:
            return await self.suite.specialist(case, self.backend, self.options.prompt_version)
        if self.fleet is None or case.subject is None:
            return self.suite.nothing(case), Answer(None, False, 0.0, error="no subject")
        if subject == "specialist":
            assert self.agent is not None
            got = await self.fleet.ask(
                self.agent, case.subject, prompt_version=self.options.prompt_version
            )
            if got.finding is None:
                return self.suite.nothing(case), got
            return self.suite.from_finding(case, got.finding), got
        got = await self.fleet.investigate(case.subject, f"EVAL-{case.id}")
        if got.finding is None:
            return self.suite.nothing(case), got
        return self.suite.from_receipt(case, got.finding), got


def build_task(suite: Suite, cases: Sequence[Case], asker: Asker, backend: Backend) -> Task:
    """The inspect_ai task of one run."""
    by_id = {case.id: case for case in cases}

    @solver
    def ask_subject() -> Any:
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            case = by_id[str(state.sample_id)]
            result, got = await asker.answer(case)
            state.output = ModelOutput.from_content(
                model=asker.options.subject, content=as_json(result)
            )
            state.metadata["answer"] = result
            state.metadata["call"] = {
                "valid": got.valid,
                "latency_ms": round(got.latency_ms, 3),
                "tokens": got.tokens,
                "error": got.error,
            }
            return state

        return solve

    @metric
    def figures() -> Any:
        def compute(scores: list[SampleScore]) -> dict[str, float]:
            values = [s.score.value for s in scores if isinstance(s.score.value, dict)]
            return summary([{k: float(v) for k, v in value.items()} for value in values])

        return compute

    @scorer(metrics=[figures()])
    def judge() -> Any:
        async def score(state: TaskState, target: Target) -> Score:
            case = by_id[str(state.sample_id)]
            call = state.metadata["call"]
            value = suite.score(case, state.metadata["answer"])
            value["latency_ms"] = float(call["latency_ms"])
            value["tokens"] = float(call["tokens"])
            value["cost"] = call["tokens"] * backend.price_per_million / 1_000_000
            value["valid"] = float(bool(call["valid"]))
            value["error"] = float(call["error"] is not None)
            return Score(
                value=value,
                answer=state.output.completion[:2000],
                explanation=call["error"],
            )

        return score

    samples = [
        Sample(
            id=case.id,
            input=case.input[:20_000] or case.id,
            target=as_json(case.expected)[:20_000],
            metadata=dict(case.metadata),
        )
        for case in cases
    ]
    return Task(
        dataset=MemoryDataset(samples, name=suite.name),
        solver=ask_subject(),
        scorer=judge(),
        name=suite.name,
    )


@contextlib.asynccontextmanager
async def subject_fleet(suite: Suite, options: RunOptions) -> AsyncIterator[Fleet | None]:
    """The specialists the run's subject needs, for the length of the run."""
    if options.subject == "tool" or (options.subject == "specialist" and suite.own_specialist):
        yield None
        return
    agent = options.agent or suite.agent
    if options.subject == "specialist":
        if agent is None:
            raise ValueError(f"suite {suite.name} names no specialist: pass --agent")
        agents: tuple[str, ...] = (agent,)
    else:
        from agents.catalog import CATALOGUE

        agents = tuple(e.name for e in CATALOGUE if e.name != "hunter")
    if options.running_agents:
        from core.settings import load_settings

        async with Fleet.running(load_settings(), agents, options.backend) as fleet:
            yield fleet
    else:
        async with Fleet.started(agents, options.backend) as fleet:
            yield fleet


async def run_async(options: RunOptions) -> RunResult:
    """Run one suite as ``options`` say; the figures and the log's location."""
    suite = SUITES.get(options.suite)
    if suite is None:
        raise ValueError(f"unknown suite {options.suite!r}; known: {', '.join(sorted(SUITES))}")
    if options.subject not in suite.subjects:
        raise ValueError(
            f"suite {suite.name} runs on {', '.join(suite.subjects)}, not {options.subject}"
        )
    cases = select(suite, options)
    # inspect_ai's progress display would fight the command's output: its documented switch,
    # read on first use (a caller that sets INSPECT_DISPLAY keeps its choice).
    os.environ.setdefault("INSPECT_DISPLAY", "none")
    display_type()
    started = time.perf_counter()
    async with (
        suite.environment(options.backend) as backend,
        subject_fleet(suite, dataclasses.replace(options, backend=backend)) as fleet,
    ):
        asker = Asker(suite, options, fleet, backend)
        task = build_task(suite, cases, asker, backend)
        logs = await eval_async(
            task,
            model="none",
            log_dir=str(options.log_dir),
            max_samples=options.max_samples,
            fail_on_error=False,
            # No live sample buffer: its SQLite connections, opened per thread, outlive the
            # run; the log is written whole when the run ends.
            log_realtime=False,
            metadata={
                "aurora": {
                    "suite": suite.name,
                    "subject": options.subject,
                    "agent": asker.agent if options.subject == "specialist" else None,
                    "backend": backend.describe(),
                    "prompt_version": options.prompt_version,
                    "cases": "all" if options.full else f"fast ({suite.fast})",
                    "commit": git_commit(),
                }
            },
        )
    log = logs[0]
    if log.status != "success" or log.results is None:
        message = log.error.message if log.error else log.status
        raise RuntimeError(f"the eval did not complete: {message}")
    figures = {name: float(m.value) for name, m in log.results.scores[0].metrics.items()}
    # Counted here, not read back from log.samples: inspect_ai loads those with its
    # synchronous reader, which under a running loop patches asyncio for the whole process.
    errors = asker.errors
    return RunResult(
        suite=suite.name,
        subject=options.subject,
        figures=figures,
        log=log.location,
        cases=len(cases),
        errors=errors,
        seconds=time.perf_counter() - started,
    )


def run(options: RunOptions) -> RunResult:
    """:func:`run_async` in a new event loop."""
    return asyncio.run(run_async(options))
