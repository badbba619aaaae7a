"""The import direction of ARCHITECTURE.md §3, and the packaging the README promises."""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "gateway", "agents", "tools", "orchestrator", "prompts", "evals")
# Which top-level packages each package may import (besides itself).
ALLOWED = {
    "core": set(),
    "tools": {"core"},
    "prompts": {"core"},
    "agents": {"core", "tools", "prompts"},
    "orchestrator": {"core", "agents", "tools", "prompts"},
    "evals": {"core", "agents", "tools", "prompts", "orchestrator"},
    "gateway": {"core", "agents", "tools", "prompts", "orchestrator"},
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package: str) -> None:
    assert (ROOT / package / "__init__.py").is_file()
    offenders = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in (ROOT / package).rglob("*.py")
        if (bad := imported_packages(path) - ALLOWED[package] - {package})
    }
    assert offenders == {}


def test_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.13"
    assert {"dev", "postgres", "vllm"} <= set(project["project"]["optional-dependencies"])
    assert project["project"]["scripts"]["aurora"] == "gateway.cli:main"
    assert (ROOT / ".python-version").read_text().strip() == "3.13"
    assert project["tool"]["mypy"]["strict"] is True
