"""Compare two runs of a suite case by case: ``aurora eval compare A B``.

A prompt or a model change is judged on evidence, not on two headline numbers: the runs' cases
are paired by id, each case's ``primary`` figure (see :mod:`evals.scoring`) is compared, and the
report lists the cases that flipped either way and a paired bootstrap confidence interval of the
mean difference (B - A) over the cases both runs scored. An interval that holds zero says the
runs cannot be told apart on these cases.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog, read_eval_log_async

from evals.scoring import percentile

RESAMPLES = 10_000
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Run:
    """What a comparison needs of one run's log."""

    location: str
    meta: dict[str, Any]
    figures: dict[str, float]
    primary: dict[str, float]
    """Case id → its ``primary`` figure."""


@dataclass(slots=True)
class Comparison:
    a: Run
    b: Run
    improved: list[tuple[str, float, float]] = field(default_factory=list)
    worsened: list[tuple[str, float, float]] = field(default_factory=list)
    unchanged: int = 0
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    mean_difference: float = 0.0
    interval: tuple[float, float] = (0.0, 0.0)
    confidence: float = 0.95

    @property
    def paired(self) -> int:
        return len(self.improved) + len(self.worsened) + self.unchanged

    @property
    def significant(self) -> bool:
        """The interval leaves out zero."""
        low, high = self.interval
        return low > 0 or high < 0


async def load_run(path: str | Path) -> Run:
    """The run in inspect_ai's log at ``path``. (Async: inspect_ai's synchronous reader,
    called under a running loop, patches asyncio for the rest of the process.)"""
    log: EvalLog = await read_eval_log_async(str(path))
    if log.status != "success" or log.results is None or not log.results.scores:
        raise ValueError(f"{path}: the run did not complete ({log.status})")
    figures = {name: float(m.value) for name, m in log.results.scores[0].metrics.items()}
    primary: dict[str, float] = {}
    for sample in log.samples or ():
        for score in (sample.scores or {}).values():
            if isinstance(score.value, dict) and "primary" in score.value:
                primary[str(sample.id)] = float(score.value["primary"])
    meta = dict((log.eval.metadata or {}).get("aurora") or {})
    return Run(str(path), meta, figures, primary)


def compare(
    a: Run, b: Run, *, resamples: int = RESAMPLES, confidence: float = 0.95, seed: int = 13
) -> Comparison:
    """The case-by-case comparison of ``a`` and ``b`` (see the module docstring)."""
    if a.meta.get("suite") != b.meta.get("suite"):
        raise ValueError(
            f"the runs are of different suites ({a.meta.get('suite')} and {b.meta.get('suite')})"
        )
    result = Comparison(a, b, confidence=confidence)
    differences = []
    for case, before in sorted(a.primary.items()):
        after = b.primary.get(case)
        if after is None:
            result.only_a.append(case)
            continue
        differences.append(after - before)
        if after > before + EPSILON:
            result.improved.append((case, before, after))
        elif after < before - EPSILON:
            result.worsened.append((case, before, after))
        else:
            result.unchanged += 1
    result.only_b = sorted(set(b.primary) - set(a.primary))
    if differences:
        result.mean_difference = sum(differences) / len(differences)
        result.interval = bootstrap_interval(differences, resamples, confidence, seed)
    return result


def bootstrap_interval(
    differences: list[float], resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``differences`` (paired: each resample
    draws whole cases)."""
    rng = random.Random(seed)  # noqa: S311 - resampling, not secrecy
    count = len(differences)
    means = []
    for _ in range(resamples):
        total = 0.0
        for _ in range(count):
            total += differences[rng.randrange(count)]
        means.append(total / count)
    tail = (1 - confidence) / 2
    return percentile(means, tail), percentile(means, 1 - tail)


def render(comparison: Comparison, *, show: int = 20) -> str:
    """The comparison as text."""
    a, b = comparison.a, comparison.b
    lines = [
        f"A: {a.location}",
        f"   {_describe(a.meta)}",
        f"B: {b.location}",
        f"   {_describe(b.meta)}",
        "",
        f"{'figure':<24}{'A':>10}{'B':>10}{'B - A':>10}",
    ]
    for name in sorted(set(a.figures) & set(b.figures)):
        before, after = a.figures[name], b.figures[name]
        lines.append(f"{name:<24}{before:>10.4f}{after:>10.4f}{after - before:>+10.4f}")
    low, high = comparison.interval
    lines += [
        "",
        f"paired cases: {comparison.paired}  improved: {len(comparison.improved)}  "
        f"worsened: {len(comparison.worsened)}  unchanged: {comparison.unchanged}",
        f"mean difference (B - A) of the per-case score: {comparison.mean_difference:+.4f}, "
        f"{comparison.confidence:.0%} CI [{low:+.4f}, {high:+.4f}] "
        f"({'B differs from A' if comparison.significant else 'no difference shown'})",
    ]
    if comparison.only_a or comparison.only_b:
        lines.append(
            f"cases in one run only: A {len(comparison.only_a)}, B {len(comparison.only_b)}"
        )
    for title, flips in (("improved", comparison.improved), ("worsened", comparison.worsened)):
        if flips:
            lines.append(f"{title}:")
            lines += [f"  {case}: {x:.3f} -> {y:.3f}" for case, x, y in flips[:show]]
            if len(flips) > show:
                lines.append(f"  ... and {len(flips) - show} more")
    return "\n".join(lines)


def _describe(meta: dict[str, Any]) -> str:
    backend = meta.get("backend") or {}
    parts = [
        f"suite {meta.get('suite')}",
        f"subject {meta.get('subject')}" + (f" ({meta['agent']})" if meta.get("agent") else ""),
        f"backend {backend.get('kind')}" + (f" {backend['model']}" if backend.get("model") else ""),
        f"prompt {meta.get('prompt_version') or 'latest'}",
        f"cases {meta.get('cases')}",
        f"commit {meta.get('commit') or '?'}",
    ]
    return ", ".join(parts)
