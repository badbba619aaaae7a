"""The import rules of ARCHITECTURE.md §3, held by import-linter contracts (``pyproject.toml``,
``[tool.importlinter]``): the layers, no specialist importing another, no gateway domain
importing another's services or routes. The same run is a step of ``.ci/run``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("core", "gateway", "agents", "tools", "orchestrator", "prompts", "evals")
# Which top-level packages each package may import (besides itself): what the layers
# contract must say, no more and no less.
ALLOWED = {
    "core": set(),
    "tools": {"core"},
    "prompts": {"core"},
    "agents": {"core", "tools", "prompts"},
    "orchestrator": {"core", "agents", "tools", "prompts"},
    "evals": {"core", "agents", "tools", "prompts", "orchestrator"},
    "gateway": {"core", "agents", "tools", "prompts", "orchestrator"},
}
SPECIALISTS = ("endpoint", "hunter", "malware", "network", "responder", "threat_intel")
DOMAINS = (
    "alerts",
    "auth",
    "cases",
    "detections",
    "edr",
    "fleet",
    "investigations",
    "network",
    "siem",
    "soar",
    "system",
    "users",
)
DETECTIONS_SERVICE = ("rules", "runs", "suppressions", "metrics", "events")
_IMPORT_LINE = re.compile(r"^-\s+(\S+) -> (\S+) \(l\.\d+\)$", re.MULTILINE)


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages under ``root`` with this project's contracts."""
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_project_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    kept = len(contracts["contracts"])
    assert f"Contracts: {kept} kept, 0 broken." in result.stdout


def _write(root: Path, module: str, source: str = "") -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(root).parents:
        init = root / parent / "__init__.py"
        if parent != Path(".") and not init.exists():
            init.write_text("")
    path.write_text(source)


def test_the_contracts_forbid_exactly_what_the_rules_forbid(tmp_path: Path) -> None:
    # A tree of stand-ins where every package imports every other, plus one import each rule
    # forbids and one each allows; the linter must report exactly the forbidden ones.
    for package in PACKAGES:
        for other in PACKAGES:
            if other != package:
                _write(tmp_path, f"{package}.uses_{other}", f"import {other}\n")
    for specialist in SPECIALISTS:
        _write(tmp_path, f"agents.{specialist}.agent", "import agents.runtime\n")
    _write(tmp_path, "agents.runtime.evidence", "import tools\n")
    _write(tmp_path, "agents.endpoint.rules", "from agents.malware import agent\n")
    for domain in DOMAINS:
        _write(tmp_path, f"gateway.{domain}.service")
        _write(tmp_path, f"gateway.{domain}.routes", f"from gateway.{domain} import service\n")
        _write(tmp_path, f"gateway.{domain}.api", f"from gateway.{domain}.service import *\n")
    for concern in DETECTIONS_SERVICE:
        _write(tmp_path, f"gateway.detections.{concern}")
    _write(tmp_path, "gateway.cases.service", "import gateway.alerts.service\n")
    _write(tmp_path, "gateway.alerts.service", "from gateway.detections import runs\n")
    _write(tmp_path, "gateway.siem.service", "import gateway.detections.routes\n")
    _write(tmp_path, "gateway.investigations.service", "import gateway.alerts.api\n")
    _write(tmp_path, "gateway.app", "import gateway.alerts.routes\nimport gateway.cases.service\n")

    result = lint(tmp_path)

    reported = set(_IMPORT_LINE.findall(result.stdout))
    layers = {
        (f"{package}.uses_{other}", other)
        for package in PACKAGES
        for other in PACKAGES
        if other != package and other not in ALLOWED[package]
    }
    assert result.returncode == 1
    assert reported == layers | {
        ("agents.endpoint.rules", "agents.malware.agent"),
        ("gateway.cases.service", "gateway.alerts.service"),
        ("gateway.siem.service", "gateway.detections.routes"),
        ("gateway.alerts.service", "gateway.detections.runs"),
    }
    assert "Contracts: 0 kept, 3 broken." in result.stdout
