"""CI's release gate: the fast subsets of the suites marked ``ci`` in ``evals/thresholds.toml``,
on the built-in backend, must keep their figures within bounds. Run as a user runs it, in its
own process: ``aurora eval gate --ci``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals import cli
from tests.conftest import PROJECT_ROOT, shared_data_dir


@pytest.mark.skipif(
    shared_data_dir() is None, reason="the suites' datasets are in the shared data folder"
)
def test_the_ci_gates_hold(tmp_path: Path) -> None:
    gates = [gate for gate in cli.load_gates(cli.default_thresholds()) if gate.ci]
    assert {gate.suite for gate in gates} >= {"technique-sentences", "ioc", "injection"}
    environment = {
        **os.environ,
        "AURORA_SHARED_DATA": str(shared_data_dir()),
        "AURORA_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "eval", "gate", "--ci", "--log-dir", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(gates)
    assert all(line.startswith("ok ") for line in lines), lines
