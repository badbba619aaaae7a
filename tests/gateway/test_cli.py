"""The ``aurora`` parser: every command names the function that runs it, in the module it is
imported from when it runs (the commands themselves run as processes in tests/e2e)."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser, main, resolve


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[str, str]:
    """Each leaf command of ``parser`` (``"user create"``) and the function its ``run`` names."""
    found: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= commands(sub, (*path, name))
    if not found and path:
        found[" ".join(path)] = parser.get_default("run")
    return found


def test_every_command_names_a_coroutine_function_of_its_module() -> None:
    named = commands(build_parser())
    assert set(named) == {
        "up",
        "demo",
        "gateway",
        "db upgrade",
        "db current",
        "user create",
        "user passwd",
        "user list",
        "user delete",
        "agent run",
        "agent list",
        "agent token",
        "evidence purge",
        "evidence export",
        "evidence transfer",
        "evidence rotate-key",
        "mcp",
        "token",
        "rules fetch",
        "console vendor",
        "eval list",
        "eval run",
        "eval compare",
        "eval gate",
        "eval fetch",
        "eval verify",
    }
    modules = {run.partition(":")[0] for run in named.values()}
    assert modules == {
        "gateway.launcher",
        "gateway.admin",
        "gateway.demo",
        "tools.sigma.corpus",
        "evals.cli",
        "gateway.console.vendor",
    }
    for command, run in named.items():
        assert inspect.iscoroutinefunction(resolve(run)), command


def test_a_command_is_parsed_with_what_its_function_needs() -> None:
    parser = build_parser()
    export = parser.parse_args(
        ["evidence", "export", "EVD-1", "--to", "copy.zip", "--reason", "lab", "--actor", "bob"]
    )
    assert (export.run, export.action, export.to) == (
        "gateway.admin:cmd_evidence_hand_over",
        "export",
        "copy.zip",
    )
    transfer = parser.parse_args(
        ["evidence", "transfer", "EVD-1", "--to", "DFIR lab", "--reason", "r", "--actor", "bob"]
    )
    assert (transfer.run, transfer.action) == ("gateway.admin:cmd_evidence_hand_over", "transfer")
    demo = parser.parse_args(["demo", "--builtin"])
    assert (demo.run, demo.timeout, demo.data, demo.keep) == (
        "gateway.demo:cmd_demo",
        120.0,
        None,
        False,
    )


def test_an_unknown_function_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(AttributeError):
        resolve("gateway.admin:cmd_nothing")
    with pytest.raises(ModuleNotFoundError):
        resolve("gateway.nowhere:cmd_up")


def test_eval_without_the_evals_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "evals.cli" or m.startswith("inspect_ai")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("evals.runner", "evals.compare"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # as if it were not installed
    assert main(["eval", "list"]) == 2
    assert "pip install -e '.[evals]'" in capsys.readouterr().err


def test_a_bad_configuration_is_named_without_echoing_the_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("AURORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AURORA_JWT_SECRET", "a-secret-nobody-may-read-0123456789abcdef")
    monkeypatch.setenv("AURORA_CLICKHOUSE_CLUSTER", "soc")
    monkeypatch.setenv("AURORA_PORT", "eighty")
    assert main(["gateway"]) == 2
    said = capsys.readouterr().err
    assert "AURORA_PORT: Input should be a valid integer" in said
    assert "a-secret-nobody-may-read" not in said
    # The cluster is checked once the fields are valid.
    monkeypatch.setenv("AURORA_PORT", "8080")
    assert main(["gateway"]) == 2
    said = capsys.readouterr().err
    assert "AURORA_CLICKHOUSE_CLUSTER=soc needs AURORA_CLICKHOUSE_URL" in said
    assert "a-secret-nobody-may-read" not in said
