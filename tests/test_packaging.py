"""The packaging the README promises: Python 3.13, the extras, the ``aurora`` command, strict
types, and every top-level package a real package."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "gateway", "agents", "tools", "orchestrator", "prompts", "evals")


def test_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.13"
    assert {"dev", "postgres", "vllm"} <= set(project["project"]["optional-dependencies"])
    assert project["project"]["scripts"]["aurora"] == "gateway.cli:main"
    assert (ROOT / ".python-version").read_text().strip() == "3.13"
    assert project["tool"]["mypy"]["strict"] is True


@pytest.mark.parametrize("package", PACKAGES)
def test_package_is_packaged_and_linted(package: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert (ROOT / package / "__init__.py").is_file()
    assert f"{package}*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert package in project["tool"]["mypy"]["packages"]
    assert package in project["tool"]["importlinter"]["root_packages"]
