"""CI's release gate: the fast subsets of the suites marked ``ci`` in ``evals/thresholds.toml``,
on the built-in backend, must keep their figures within bounds."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from evals import cli
from tests.conftest import shared_data_dir

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*MemoryObjectReceiveStream:pytest.PytestUnraisableExceptionWarning"
)


@pytest.mark.skipif(
    shared_data_dir() is None, reason="the suites' datasets are in the shared data folder"
)
async def test_the_ci_gates_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_SHARED_DATA", str(shared_data_dir()))
    gates = [gate for gate in cli.load_gates(cli.default_thresholds()) if gate.ci]
    assert {gate.suite for gate in gates} >= {"technique-sentences", "ioc", "injection"}
    outcomes = await cli.run_gates(gates, log_dir=tmp_path)
    gc.collect()
    broken = {
        f"{gate.suite} ({gate.subject})": failures for gate, _, failures in outcomes if failures
    }
    assert not broken, broken
    assert all(result.errors == 0 for _, result, _ in outcomes)
