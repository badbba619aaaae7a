"""``aurora eval``: runs on inspect_ai, figures, comparisons and the gate, on a small suite of
the test's own (so that none of it needs the shared data), through every kind of subject."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agents.catalog import Subject
from evals import cli
from evals.compare import bootstrap_interval, compare, load_run, render
from evals.runner import RunOptions, run_async
from evals.scoring import compare_techniques, percentile, summary, verdict_score
from evals.subjects import Backend
from evals.suites import SUITES, Case, TechniqueSuite, fixed_order, register
from gateway.cli import main as aurora
from tests.fakes.openai_server import ScriptedOpenAI

# inspect_ai leaves objects of its own for the garbage collector to close: anyio memory
# streams, and the event loops (with their self-pipe sockets) its synchronous helpers run on.
# The fixture below collects them at the end of each test, under these filters.
pytestmark = [
    pytest.mark.filterwarnings(
        f"ignore:Exception ignored in.*{leftover}:pytest.PytestUnraisableExceptionWarning"
    )
    for leftover in ("MemoryObjectReceiveStream", "socket.socket", "BaseEventLoop")
]

PHISHING = "The actor sent spearphishing emails with a malicious Word attachment to employees."
POWERSHELL = "The loader runs PowerShell scripts with an encoded command to download a payload."


class Toy(TechniqueSuite):
    """Two sentences; the tool answers from a table the test sets, so runs can differ."""

    name = "toy-techniques"
    description = "two sentences (tests)"
    subjects = ("tool", "specialist", "orchestrator")
    agent = "threat_intel"
    fast = 2
    answers: Mapping[str, list[str]] = {}

    def cases(self, root: Path) -> list[Case]:
        return [
            Case(
                id="phish", input=PHISHING, expected=["T1566.001"], subject=Subject(text=PHISHING)
            ),
            Case(
                id="ps", input=POWERSHELL, expected=["T1059.001"], subject=Subject(text=POWERSHELL)
            ),
        ]

    async def tool(self, case: Case) -> dict[str, Any]:
        return {"techniques": list(self.answers.get(case.id, []))}


@pytest.fixture
def toy() -> Iterator[Toy]:
    suite = Toy()
    register(suite)
    # What exists before the test is set aside, so that the collection below walks only what
    # the test made (a worker's heap late in the suite is large: a full walk took seconds).
    gc.freeze()
    try:
        yield suite
    finally:
        del SUITES[suite.name]
        # Collect inspect_ai's leftovers now, under this module's warning filter, not in
        # whichever test happens to run when the collector next passes.
        gc.collect()
        gc.unfreeze()
    # A synchronous inspect_ai reader called under a running loop applies nest_asyncio, which
    # patches asyncio for the rest of the process (and leaks the loops of every later test).
    assert asyncio.run.__module__ == "asyncio.runners"


def test_hierarchy_credit_is_reported_beside_exact() -> None:
    exact, hierarchy = compare_techniques(["T1059.003", "T1566"], ["T1059.001", "T1566.001"])
    assert (exact.tp, exact.fp, exact.fn) == (0, 2, 2)
    assert (hierarchy.tp, hierarchy.fp, hierarchy.fn) == (2, 0, 0)


def test_summary_micro_averages_and_brier() -> None:
    figures = summary(
        [
            {"primary": 1.0, "tp": 1, "fp": 0, "fn": 0, "latency_ms": 10.0},
            {"primary": 0.0, "tp": 0, "fp": 1, "fn": 1, "latency_ms": 30.0},
        ]
    )
    assert figures["precision"] == figures["recall"] == 0.5
    assert figures["latency_p50_ms"] == 20.0
    verdicts = summary(
        [verdict_score("malicious", 0.9, "malicious"), verdict_score("benign", 0.5, "malicious")]
    )
    assert verdicts["accuracy"] == 0.5
    assert verdicts["brier"] == pytest.approx((0.01 + 0.25) / 2)
    assert percentile([], 0.5) == 0.0


def test_bootstrap_interval_holds_the_mean_and_excludes_zero_for_a_clear_gain() -> None:
    low, high = bootstrap_interval([1.0] * 30 + [0.0] * 10, 2000, 0.95, seed=1)
    assert 0 < low < 0.75 < high <= 1.0
    low, high = bootstrap_interval([1.0, -1.0] * 20, 2000, 0.95, seed=1)
    assert low < 0 < high


async def test_two_tool_runs_compare_case_by_case(toy: Toy, tmp_path: Path) -> None:
    toy.answers = {"phish": ["T1566.001"], "ps": []}
    first = await run_async(RunOptions(suite=toy.name, log_dir=tmp_path))
    toy.answers = {"phish": ["T1566.001"], "ps": ["T1059"]}
    second = await run_async(RunOptions(suite=toy.name, log_dir=tmp_path))
    assert first.figures["recall"] == 0.5
    assert first.figures["f1_hierarchy"] == pytest.approx(2 / 3)
    assert second.figures["recall"] == 0.5  # T1059 is not T1059.001 ...
    assert second.figures["recall_hierarchy"] == 1.0  # ... but it is its parent

    result = compare(await load_run(first.log), await load_run(second.log), resamples=500)
    assert result.paired == 2
    assert result.unchanged == 2
    text = render(result)
    assert "f1_hierarchy" in text
    assert "paired cases: 2" in text

    toy.answers = {"phish": [], "ps": ["T1059.001"]}
    third = await run_async(RunOptions(suite=toy.name, log_dir=tmp_path))
    flips = compare(await load_run(first.log), await load_run(third.log), resamples=500)
    assert [c for c, *_ in flips.improved] == ["ps"]
    assert [c for c, *_ in flips.worsened] == ["phish"]


async def test_a_specialist_is_called_over_acp_with_its_builtin_analysis(
    toy: Toy, tmp_path: Path
) -> None:
    result = await run_async(RunOptions(suite=toy.name, subject="specialist", log_dir=tmp_path))
    assert result.errors == 0
    assert result.figures["schema_validity"] == 1.0
    run = await load_run(result.log)
    assert run.meta["agent"] == "threat_intel"
    assert run.meta["backend"] == {"kind": "builtin"}


async def test_the_llm_backend_is_the_platforms_client_with_tokens_cost_and_prompt_version(
    toy: Toy, tmp_path: Path
) -> None:
    wanted = {"phish": "T1566.001", "ps": "T1059.001"}
    async with ScriptedOpenAI(models=("aurora-eval",)) as fake:
        # One case in flight at a time, in the run's fixed order: each reply meets its case.
        for case in fixed_order(toy.cases(tmp_path)):
            technique = wanted[case.id]
            fake.reply_json(
                {
                    "summary": "as the sentence says",
                    "severity": "medium",
                    "confidence": 0.6,
                    "mitre_techniques": [technique],
                },
                usage=(900, 100),
            )
        backend = Backend(
            kind="llm", model="aurora-eval", base_url=fake.base_url, price_per_million=2.0
        )
        result = await run_async(
            RunOptions(
                suite=toy.name,
                subject="specialist",
                backend=backend,
                prompt_version="v1",
                log_dir=tmp_path,
                max_samples=1,
            )
        )
        prompts = [r.messages[0]["content"] for r in fake.chat_requests]
    assert result.figures["tokens"] == 2000
    assert result.figures["cost"] == pytest.approx(0.004)
    assert result.figures["recall"] == 1.0  # the model's techniques, validated against ATT&CK
    assert len(prompts) == 2
    meta = (await load_run(result.log)).meta
    assert meta["backend"] == {"kind": "llm", "model": "aurora-eval", "base_url": fake.base_url}
    assert meta["prompt_version"] == "v1"


async def test_the_orchestrator_subject_runs_the_graph_in_dry_run(toy: Toy, tmp_path: Path) -> None:
    result = await run_async(RunOptions(suite=toy.name, subject="orchestrator", log_dir=tmp_path))
    assert result.errors == 0
    assert result.cases == 2
    # The receipt's text_techniques: what the investigation's text describes.
    assert result.figures["recall_hierarchy"] == 1.0


async def test_a_subject_the_suite_cannot_run_is_refused(toy: Toy, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runs on"):
        await run_async(RunOptions(suite="ioc", subject="orchestrator", log_dir=tmp_path))


def test_the_command_line_runs_compares_and_gates(
    toy: Toy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toy.answers = {"phish": ["T1566.001"], "ps": ["T1059.001"]}
    figures = tmp_path / "figures.json"
    logs = tmp_path / "logs"
    assert aurora(["eval", "run", toy.name, "--log-dir", str(logs), "--json", str(figures)]) == 0
    assert "f1" in capsys.readouterr().out
    first = json.loads(figures.read_text())
    assert first["figures"]["f1"] == 1.0

    toy.answers = {"phish": ["T1566.001"]}
    assert aurora(["eval", "run", toy.name, "--log-dir", str(logs), "--json", str(figures)]) == 0
    second = json.loads(figures.read_text())
    capsys.readouterr()
    assert aurora(["eval", "compare", first["log"], second["log"]]) == 0
    out = capsys.readouterr().out
    assert "worsened: 1" in out
    assert "ps: 1.000 -> 0.000" in out

    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text(f'[[gate]]\nsuite = "{toy.name}"\nmin = {{ f1 = 0.9 }}\n')
    assert aurora(["eval", "gate", "--thresholds", str(thresholds), "--log-dir", str(logs)]) == 1
    assert "FAIL" in capsys.readouterr().out
    toy.answers = {"phish": ["T1566.001"], "ps": ["T1059.001"]}
    assert aurora(["eval", "gate", "--thresholds", str(thresholds), "--log-dir", str(logs)]) == 0

    assert aurora(["eval", "run", "no-such-suite", "--log-dir", str(logs)]) == 2
    assert "unknown suite" in capsys.readouterr().err


def test_the_shipped_thresholds_name_known_suites() -> None:
    gates = cli.load_gates(cli.default_thresholds())
    assert gates
    assert all(g.minimum or g.maximum for g in gates)


async def test_a_model_that_gives_no_valid_finding_costs_schema_validity(
    toy: Toy, tmp_path: Path
) -> None:
    async with ScriptedOpenAI(models=("aurora-eval",)) as fake:
        fake.reply_text("I think it is phishing.")
        fake.reply_text("Still not JSON.")  # asked again with the schema enforced
        backend = Backend(kind="llm", model="aurora-eval", base_url=fake.base_url)
        result = await run_async(
            RunOptions(
                suite=toy.name, subject="specialist", backend=backend, log_dir=tmp_path, limit=1
            )
        )
    assert result.figures["schema_validity"] == 0.0  # the agent fell back to built-in analysis
